"""qflow_ops.run: the Python entry point other tools embed."""

from __future__ import annotations

import pytest

import qflow_ops


def test_procedures_are_the_playbooks():
    assert {"morning-health-check", "performance-review", "log-review", "nightly-backup"} <= set(qflow_ops.PROCEDURES)


def test_unknown_procedure_and_missing_inventory_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown procedure 'morning'"):
        qflow_ops.run("morning", tmp_path / "x.yml")
    with pytest.raises(FileNotFoundError, match="qflow-lab up"):
        qflow_ops.run("morning-health-check", tmp_path / "missing.yml")


def test_run_returns_the_structured_report(green_lab, report_dir):
    events = []
    result = qflow_ops.run("performance-review", green_lab, extravars={"qflow_perf_window": "1m"},
                           report_dir=report_dir, event_handler=lambda e: events.append(e.get("event")) or True)
    assert result.rc == 0 and result.status == "successful" and result.ok
    assert result.report["procedure"] == "performance-review"
    assert result.report["summary"]["failed"] == 0
    assert result.report_dir == (report_dir / "performance-review" / "latest").resolve()
    assert result.check("qflow-node-1", "p95_latency")["ok"] is True
    assert "playbook_on_stats" in events
