"""Helpers of the integration tests (a module name of its own: `conftest` is ambiguous when tests/unit runs too)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# QFLOW_LAB_PROFILE=systemd runs the tests against `qflow-lab --profile systemd` (inventories/lab-systemd/hosts.yml;
# QFLOW_LAB_DEPLOY=compose for its docker compose deploy); the default is the processes lab.
LAB_PROFILE = os.environ.get("QFLOW_LAB_PROFILE") or "processes"
SYSTEMD = LAB_PROFILE == "systemd"
LAB_INVENTORY = ROOT / "inventories" / ("lab-systemd" if SYSTEMD else "lab") / "hosts.yml"
LAB_NODES = int(os.environ.get("QFLOW_TEST_NODES", "8"))
PROMETHEUS = "http://127.0.0.1:19090"
ALERTMANAGER = "http://127.0.0.1:19093"
if SYSTEMD:  # docker compose v2 is a CLI plugin in the lab dir (community.docker.docker_compose_v2 needs it too)
    os.environ.setdefault("DOCKER_CONFIG", os.path.join(
        os.environ.get("QFLOW_LAB_SYSTEMD_DIR") or str(ROOT / ".lab-systemd"), "docker-config"))


def stub_host():
    """Address for a test's stub server that the modules reach: 127.0.0.1, or (profile systemd, where the modules run
    inside the node containers) the lab network's gateway."""
    if not SYSTEMD:
        return "127.0.0.1"
    return urllib.parse.urlsplit(lab_url("prometheus")).hostname


def lab_url(name):
    """Prometheus or Alertmanager URL of the profile (systemd: the inventory's, on the lab network's gateway)."""
    if not SYSTEMD:
        return {"prometheus": PROMETHEUS, "alertmanager": ALERTMANAGER}[name]
    return yaml.safe_load(LAB_INVENTORY.read_text())["all"]["vars"]["qflow_%s_url" % name]


LAST_FAULT_END = [time.time()]  # when the last injected fault was healed (the session starts with heal all)


def seconds_since_last_fault():
    return time.time() - LAST_FAULT_END[0]


def lab(*args, check=True, timeout=300):
    """Run the lab CLI; return CompletedProcess."""
    if args and args[0] == "heal":
        LAST_FAULT_END[0] = time.time()
    if SYSTEMD:
        args = args + ("--profile", "systemd")
        if args[0] == "up" and os.environ.get("QFLOW_LAB_DEPLOY"):
            args = args + ("--deploy", os.environ["QFLOW_LAB_DEPLOY"])
    proc = subprocess.run([str(BIN / "qflow-lab"), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("qflow-lab %s failed (%s):\n%s\n%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc


def wait_until(predicate, timeout=120, interval=1.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last = exc
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


def promql(query):
    url = lab_url("prometheus") + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as resp:
        data = json.load(resp)
    return [(r["metric"], float(r["value"][1])) for r in data["data"]["result"]]


def prom_value(query):
    res = promql(query)
    return res[0][1] if res else None


def alertmanager_alerts():
    with urllib.request.urlopen(lab_url("alertmanager") + "/api/v2/alerts?active=true", timeout=10) as resp:
        return json.load(resp)


def node_addr(node):
    return "127.0.%d.%d" % (2 if SYSTEMD else 1, int(node.rsplit("-", 1)[1]))


def wait_green(timeout=240):
    """Wait until no alert fires and no node's last minute holds failures from an earlier fault test."""
    def green():
        if alertmanager_alerts():
            return False
        ratios = promql("increase(qflow_flows_failed_total[1m]) / (increase(qflow_flows_completed_total[1m])"
                        " + increase(qflow_flows_failed_total[1m]) > 0)")
        if any(v > 0.02 for _, v in ratios):
            return False
        slow = promql('histogram_quantile(0.95, sum by (node, le) (increase(qflow_flow_execution_duration_seconds_bucket[1m]))) > 2')
        return not slow
    wait_until(green, timeout=timeout, interval=2, what="a green lab (no alerts, clean 1m windows)")


def hostvars(inventory, node):
    data = yaml.safe_load(Path(inventory).read_text())
    return data["all"]["children"]["qflow_nodes"]["hosts"][node] if "all" in data else data["qflow_nodes"]["hosts"][node]


def lab_hosts(data):
    """The hosts dict of the qflow_nodes group in a loaded inventory."""
    if "all" in data:
        return data["all"]["children"]["qflow_nodes"]["hosts"]
    return data["qflow_nodes"]["hosts"]


def items(result, node):
    return {c["item"]: c for c in result.report["checks"] if c["node"] == node}


def assert_all_green(result, node):
    bad = {k: v for k, v in items(result, node).items() if not v["ok"]}
    assert not bad, "expected every item on %s to pass, failed: %s" % (node, json.dumps(bad, indent=1))


def run_cmd(args, **kw):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
    env.update(kw.pop("env", {}))
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, **kw)


def clean_dir(path):
    shutil.rmtree(path, ignore_errors=True)
