"""`python -m lmx_simulator`: the simulator with its live demo scenario."""

from lmx_simulator.demo import main

raise SystemExit(main())
