"""Performance review against the lab: all green, slow node, cache misses."""

from __future__ import annotations

import qflow_ops
from labtest import assert_all_green, items, lab, prom_value, wait_until

WINDOW = {"qflow_perf_window": "1m"}


def _p95(metric, node):
    return prom_value('histogram_quantile(0.95, sum by (le) (increase(%s_bucket{node="%s"}[1m])))' % (metric, node))


def _cache_ratio(node):
    sel = '{node="%s"}' % node
    return prom_value("increase(qflow_storage_cache_hits_total%s[1m]) / increase(qflow_storage_cache_requests_total%s[1m])"
                      % (sel, sel))


def test_all_green(green_lab, report_dir):
    result = qflow_ops.run("performance-review", green_lab, extravars=WINDOW, report_dir=report_dir)
    assert result.rc == 0, result.stdout[-4000:]
    for node in sorted({c["node"] for c in result.report["checks"]}):
        assert set(items(result, node)) == {"p95_latency", "cache_hit_rate", "node_selection"}
        assert_all_green(result, node)


def test_slow_node_and_cache_misses(green_lab, report_dir):
    try:
        lab("fault", "qflow-node-2", "slow")
        lab("fault", "qflow-node-3", "cache")
        wait_until(lambda: (_p95("qflow_flow_execution_duration_seconds", "qflow-node-2") or 0) > 5.5, timeout=150,
                   what="slow executions on qflow-node-2")
        wait_until(lambda: (_cache_ratio("qflow-node-3") or 1) < 0.7, timeout=120, what="cache misses on qflow-node-3")
        result = qflow_ops.run("performance-review", green_lab, extravars=WINDOW, report_dir=report_dir)
    finally:
        lab("heal", "all", timeout=300)
    assert result.rc != 0
    slow = items(result, "qflow-node-2")
    assert not slow["p95_latency"]["ok"] and not slow["node_selection"]["ok"]
    assert slow["cache_hit_rate"]["ok"]
    cache = items(result, "qflow-node-3")
    assert not cache["cache_hit_rate"]["ok"]
    assert cache["p95_latency"]["ok"] and cache["node_selection"]["ok"]
    assert_all_green(result, "qflow-node-1")
    assert "Performance Tuning" in result.stdout
