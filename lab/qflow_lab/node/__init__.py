"""Reference Qflow node (stdlib + PyYAML only).

Implements docs/qflow-node-contract.md: REST API, /metrics, state.db, JSON-lines logs, lab faults.
Run with ``python -m qflow_lab.node --env-file PATH --config PATH``.
"""

VERSION = "0.1.0"
