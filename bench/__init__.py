"""The benchmark harness of issue 9: `python bench/run.py [--quick] [--json out.json]`.

Every party runs in its own process (`agents.Agent`): the LMX stand-in or the raw feed,
the exporter, the reference consumers. CPU is read as each process's own CPU time, so a
figure never includes the load generator that produced it.
"""
