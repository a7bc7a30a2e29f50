"""Run qflow.ops procedures from Python and get their structured report.

    import qflow_ops
    result = qflow_ops.run("morning-health-check", "inventories/lab/hosts.yml")
    result.ok, result.rc, result.report["summary"], result.failed_checks()
"""

from qflow_ops.runner import PROCEDURES, ProcedureResult, run

__all__ = ["PROCEDURES", "ProcedureResult", "run"]
