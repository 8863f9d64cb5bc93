"""Grafana dashboards for Opta LMX, written as typed code (grafana-foundation-sdk).

`python -m grafana.dashboards` writes grafana/dashboards/*.json; the JSON is committed so
users import it without Python, and a test fails when it drifts from this code.
"""
