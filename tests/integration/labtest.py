"""Helpers of the integration tests (a module name of its own: `conftest` is ambiguous when tests/unit runs too)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
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
RECEIVER = "http://127.0.0.1:19095"
SYSTEMD_LAB_DIR = Path(os.environ.get("QFLOW_LAB_SYSTEMD_DIR") or ROOT / ".lab-systemd")
# Profile systemd, deploy systemd: the modules run inside the node containers (over SSH), so the inventory's paths
# are container paths. They are bind mounts of <lab>/nodes/<node>/<sub> (lab/README.md, "Profile systemd").
CONTAINER_MOUNTS = (("/etc/qflow", "etc"), ("/var/lib/qflow", "data"), ("/var/log/qflow", "log"),
                    ("/var/backups/qflow", "backups"), ("/var/lib/qflow-lab", "lab"), ("/var/lib/ipfs", "ipfs"))
SCRATCH = "/var/lib/qflow-lab/scratch"  # per-test dirs on a node (container side), under the mount "lab"
if SYSTEMD:  # docker compose v2 is a CLI plugin in the lab dir (community.docker.docker_compose_v2 needs it too)
    os.environ.setdefault("DOCKER_CONFIG", str(SYSTEMD_LAB_DIR / "docker-config"))


def in_containers():
    """True when the modules run inside the node containers (profile systemd, deploy systemd)."""
    return SYSTEMD and (os.environ.get("QFLOW_LAB_DEPLOY") or "systemd") == "systemd"


def host_path(node, path):
    """The controller-side path of a node's file given by the inventory (profile systemd, deploy systemd: a
    container path, mapped through the node's bind mounts; otherwise the path itself)."""
    path = str(path)
    if in_containers():
        for mount, sub in CONTAINER_MOUNTS:
            if path == mount or path.startswith(mount + "/"):
                return SYSTEMD_LAB_DIR / "nodes" / node / sub / path[len(mount):].lstrip("/")
        raise AssertionError("%s of %s is not under a bind mount of the container" % (path, node))
    return Path(path)


def scratch(base, node):
    """A per-test dir for node files the modules write and the test reads: (path on the node, path on the
    controller). base is under the test's tmp_path; on profile systemd (deploy systemd) it lives in the container's
    bind-mounted /var/lib/qflow-lab instead (a controller tmp dir does not exist inside the container)."""
    base = Path(base)
    if not in_containers():
        return str(base / node), base / node
    key = "-".join(p.name for p in (base.parents[1], base.parent, base))
    on_node = "%s/%s/%s" % (SCRATCH, key, node)
    return on_node, host_path(node, on_node)


def node_pid(node):
    """The node process's pid from `qflow-lab status --json` (a restart changes it), both profiles."""
    status = json.loads(lab("status", "--json", check=False).stdout)
    return {n["name"]: n.get("pid") for n in status["nodes"]}[node]


def stub_host():
    """Address for a test's stub server that the modules reach: 127.0.0.1, or (profile systemd, where the modules run
    inside the node containers) the lab network's gateway."""
    if not SYSTEMD:
        return "127.0.0.1"
    return urllib.parse.urlsplit(lab_url("prometheus")).hostname


def lab_url(name):
    """Prometheus, Alertmanager or notification receiver URL of the profile (systemd: the inventory's, on the lab
    network's gateway)."""
    if not SYSTEMD:
        return {"prometheus": PROMETHEUS, "alertmanager": ALERTMANAGER, "receiver": RECEIVER}[name]
    inv = yaml.safe_load(LAB_INVENTORY.read_text())["all"]["vars"]
    if name == "receiver":
        return inv["qflow_notify_webhook_url"].rsplit("/hooks/", 1)[0]
    return inv["qflow_%s_url" % name]


def ipfs_post(node, api, command, data=None, content_type=None, timeout=10):
    """POST api/v0/<command> to a node's IPFS RPC API and return the body. On profile systemd (deploy systemd) the
    API listens on localhost:5001 inside the container only, so the request is made there (docker exec)."""
    url = "%s/api/v0/%s" % (api, command)
    if not in_containers():
        req = urllib.request.Request(url, data=data or b"", method="POST")
        if content_type:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read()
    code = ("import sys, urllib.request\n"
            "req = urllib.request.Request(sys.argv[1], data=sys.stdin.buffer.read(), method='POST')\n"
            "if sys.argv[2]:\n    req.add_header('Content-Type', sys.argv[2])\n"
            "try:\n    r = urllib.request.urlopen(req, timeout=%d)\n"
            "except urllib.error.HTTPError as e:\n    sys.stdout.buffer.write(e.read()); sys.exit(22)\n"
            "sys.stdout.buffer.write(r.read())\n" % timeout)
    proc = subprocess.run(["docker", "exec", "-i", node, "python3", "-c", code, url, content_type or ""],
                          input=data or b"", capture_output=True, timeout=timeout + 20)
    if proc.returncode == 22:
        raise urllib.error.HTTPError(url, 500, proc.stdout.decode(errors="replace"), None, None)
    if proc.returncode != 0:
        raise AssertionError("IPFS %s on %s failed: %s" % (command, node, proc.stderr.decode(errors="replace")))
    return proc.stdout


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
