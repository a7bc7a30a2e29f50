"""Monthly maintenance against the lab: check mode stops nothing; the real window reports capacity, audit,
performance and the DR test (restore + failover: one node stopped, the others kept serving); bad input."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

import qflow_ops
from labtest import SYSTEMD, hostvars, lab

NODES = ["qflow-node-1", "qflow-node-2", "qflow-node-3"]
LIMIT = ",".join(NODES)

pytestmark = [pytest.mark.skipif(SYSTEMD, reason="processes profile: node files and pids are read from the controller"),
              pytest.mark.early]  # make test: first phase, beside make check (long, mostly waiting; holds under contention)


def _pids():
    status = json.loads(lab("status", "--json", check=False).stdout)
    return {n["name"]: n["pid"] for n in status["nodes"] if n["name"] in NODES}


def _messages():
    with urllib.request.urlopen("http://127.0.0.1:19095/messages", timeout=10) as resp:
        return json.load(resp)


def _titles(since):
    return [m["body"]["attachments"][0]["title"] for m in _messages()[since:] if m["body"].get("attachments")]


def _items(result, node):
    return {c["item"]: c for c in result.report["checks"] if c["node"] == node}


def test_monthly_window_check_then_real(green_lab, tmp_path, report_dir):
    extra = {"qflow_maint_perf_window": "10m", "qflow_maint_dr_scratch_dir": str(tmp_path / "scratch")}
    pids = _pids()
    sent = len(_messages())
    r1 = qflow_ops.run("monthly-maintenance", green_lab, extravars=extra, limit=LIMIT, check=True,
                       report_dir=report_dir)
    assert r1.report is not None and r1.report["result"] == "pass", r1.stdout[-6000:]
    assert _pids() == pids, "check mode stopped or restarted a node"
    assert r1.check("qflow-node-1", "dr_failover")["value"] == "would stop and start"
    assert _titles(sent) == []

    r2 = qflow_ops.run("monthly-maintenance", green_lab, extravars=extra, limit=LIMIT, report_dir=report_dir)
    assert r2.rc == 0 and r2.ok, r2.stdout[-6000:]
    for node in NODES:
        items = _items(r2, node)
        assert {"capacity_forecast", "security_audit", "p95_latency", "dr_test_restore"} <= set(items), items.keys()
        assert items["dr_test_restore"]["value"].startswith("restored ")
        assert "cpu_percent" in items["capacity_forecast"]["detail"]
    assert r2.check("qflow-node-1", "dr_failover")["value"] == "stopped and back"
    for node in NODES[1:]:
        assert r2.check(node, "dr_serving")["value"] == "ready, flow completed"
    now = _pids()
    assert now["qflow-node-1"] != pids["qflow-node-1"], "the failover node was really stopped and started"
    assert all(now[n] == pids[n] for n in NODES[1:])
    assert _titles(sent) == ["Monthly maintenance started", "Monthly maintenance done"]
    assert not (tmp_path / "scratch" / "qflow-node-1").exists(), "the restore test cleans its scratch dir"


def test_audit_reports_an_open_env_file(lab_inventory, report_dir):
    node = "qflow-node-2"
    env = hostvars(lab_inventory, node)["qflow_env_path"]
    mode = os.stat(env).st_mode & 0o777
    os.chmod(env, 0o644)
    try:
        r = qflow_ops.run("monthly-maintenance", lab_inventory, limit=node, tags="audit", report_dir=report_dir)
    finally:
        os.chmod(env, mode)
    assert r.rc != 0
    item = r.check(node, "security_audit")
    assert item["ok"] is False and env in item["detail"] and "0644" in item["detail"], item
    assert "high" in item["value"]


def test_unknown_failover_node_stops_nothing(lab_inventory, report_dir):
    pids = _pids()
    r = qflow_ops.run("monthly-maintenance", lab_inventory, limit=LIMIT, tags="failover",
                      extravars={"qflow_maint_dr_failover_node": "qflow-node-99"}, report_dir=report_dir)
    assert r.rc != 0
    assert "qflow-node-99', which is not a node of this play" in r.stdout and "nothing was stopped" in r.stdout
    assert _pids() == pids
