"""Log review against the lab: all green, a node throwing errors, recurring patterns."""

from __future__ import annotations

import time

import qflow_ops
from labtest import assert_all_green, items, lab, seconds_since_last_fault

WINDOW = {"qflow_logs_since": "2m", "qflow_logs_max_errors_per_minute": 10}


def test_all_green(green_lab, report_dir):
    # a log window cannot be healed: review only what was logged since the last injected fault ended
    since = max(10, min(120, int(seconds_since_last_fault()) - 2))
    time.sleep(max(0, 30 - since))
    since = max(since, 30)
    result = qflow_ops.run("log-review", green_lab, extravars=dict(WINDOW, qflow_logs_since="%ds" % since),
                           report_dir=report_dir)
    assert result.rc == 0, result.stdout[-4000:]
    for node in sorted({c["node"] for c in result.report["checks"]}):
        assert set(items(result, node)) == {"error_rate", "fatal_errors", "recurring_errors"}
        assert_all_green(result, node)


def test_error_burst_is_reported_with_patterns(green_lab, report_dir):
    try:
        lab("fault", "qflow-node-2", "errors")
        # a node with the fault logs 10-30 errors / min (fewer when the 2 cores are busy), a healthy one < 1 / min
        time.sleep(60)
        result = qflow_ops.run("log-review", green_lab, report_dir=report_dir,
                               extravars=dict(WINDOW, qflow_logs_since="1m", qflow_logs_max_errors_per_minute=4))
    finally:
        lab("heal", "all", timeout=300)
    assert result.rc != 0
    node = items(result, "qflow-node-2")
    assert not node["error_rate"]["ok"], node["error_rate"]
    # recurring errors are grouped: the detail lists patterns with counts, ids replaced by placeholders
    detail = node["recurring_errors"]["detail"]
    assert "×" in detail and "<" in detail, detail
    assert_all_green(result, "qflow-node-1")
