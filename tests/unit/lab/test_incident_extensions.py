"""Incident extensions of the reference node (contract §2.5 releases, §3.4 operating modes, auth log, sleep step)
and of the lab CLI (release, corrupt, heal clears modes)."""
import json
import os
import re
import sqlite3
import stat
import time

import pytest

from qflow_lab import cli, releases, render, systemd_profile as sp
from qflow_lab.node import VERSION
from qflow_lab.node.engine import ModeRefused, sleep_seconds
from qflow_lab.node.modes import MODES, all_disabled, write_modes_file
from qflow_lab.node.server import Node
from qflow_lab.node.store import Store
from qflow_lab.tokens import make_token

from _lab_helpers import SECRET, request

ADMIN = "squid:ops:lab-operator"


def tok(perms=("*",), identity=ADMIN):
    return make_token(SECRET, identity, list(perms), 600)


READER = ("flow:read", "flow:execute", "flow:create")  # every flow permission, no admin


def body(raw):
    return json.loads(raw)


def err(resp, status, code):
    st, _, raw = resp
    assert st == status, raw
    b = body(raw)
    assert b["success"] is False and b["error"]["code"] == code, b
    return b["error"]


def ok(resp, status=200):
    st, _, raw = resp
    assert st == status, raw
    return body(raw)["data"]


def log_lines(node):
    with open(os.path.join(node.env["QFLOW_LOG_DIR"], "qflow.log")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def wait_for(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met within %.1f s" % timeout)


class NodeFactory:
    """Nodes on one set of dirs (restartable), like the lab's: etc/ (env, config, modes), data/, log/, releases/."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        (tmp_path / "etc").mkdir()
        self.cfg = tmp_path / "etc" / "qflow-config.yaml"
        self.cfg.write_text("qflow:\n  engine:\n    maxMemoryMB: 128\n    maxConcurrentFlows: 20\n"
                            "  logging:\n    level: debug\n")
        self.faults = tmp_path / "faults.json"
        self.faults.write_text('{"faults": []}')
        self.modes_file = tmp_path / "etc" / "qflow-modes.json"
        self.release_dir = tmp_path / "releases"
        self.nodes = []

    def env(self):
        return {"NODE_ID": "unit-node", "QFLOW_JWT_SECRET": SECRET, "QFLOW_ENCRYPTION_KEY": "k",
                "QFLOW_DATA_DIR": str(self.tmp / "data"), "QFLOW_LOG_DIR": str(self.tmp / "log"),
                "QFLOW_MODES_FILE": str(self.modes_file), "QFLOW_RELEASE_DIR": str(self.release_dir)}

    def make(self, rate=0):
        return Node(self.env(), str(self.cfg), workload_rate=rate, faults_file=str(self.faults))

    def start(self, rate=0):
        n = self.make(rate)
        self.nodes.append(n)
        api, met = n.start("127.0.0.1", 0, 0)
        n.api = "http://127.0.0.1:%d" % api
        n.metrics_url = "http://127.0.0.1:%d/metrics" % met
        return n

    def stop_all(self):
        for n in self.nodes:
            n.stop()
        self.nodes = []


@pytest.fixture
def lab(tmp_path):
    f = NodeFactory(tmp_path)
    yield f
    f.stop_all()


def put_mode(node, mode, enabled, reason="unit test", token=None):
    return request(node.api, "PUT", "/api/v1/system/modes/" + mode, {"enabled": enabled, "reason": reason},
                   token=token or tok())


def modes_view(node):
    return ok(request(node.api, "GET", "/api/v1/system/modes", token=tok()))["modes"]


def flow_doc(fid="sleepy", steps=None):
    return {"id": fid, "name": fid, "version": "1.0.0", "owner": ADMIN,
            "steps": steps or [{"id": "s1", "type": "task", "action": "noop", "onSuccess": "nap"},
                               {"id": "nap", "type": "task", "action": "sleep", "params": {"seconds": 1}}],
            "metadata": {"tags": [], "category": "test", "visibility": "private", "requiredPermissions": []}}


def create_flow(node, doc):
    return ok(request(node.api, "POST", "/api/v1/flows", {"flowData": json.dumps(doc)}, token=tok()), 201)


def start_flow(node, fid, token=None):
    return request(node.api, "POST", "/api/v1/flows/%s/start" % fid, {"context": {}}, token=token or tok())


def metric(node, name_labels):
    st, _, raw = request(node.metrics_url.rsplit("/", 1)[0], "GET", "/metrics")
    assert st == 200
    m = re.search(r"^%s (\S+)$" % re.escape(name_labels), raw.decode(), re.M)
    return float(m.group(1)) if m else None


# ------------------------------------------------------------------ modes: API contract
def test_modes_default_all_disabled_and_metric(lab):
    n = lab.start()
    assert modes_view(n) == {m: {"enabled": False, "reason": None, "since": None, "by": None} for m in MODES}
    for m in MODES:
        assert metric(n, 'qflow_node_mode{mode="%s"}' % m) == 0
    assert not lab.modes_file.exists()  # nothing written until a mode changes


def test_put_mode_four_steps_and_metric(lab):
    n = lab.start()
    first = ok(put_mode(n, "emergency", True, "outage INC-1"))
    assert first["mode"] == "emergency" and first["enabled"] is True and first["changed"] is True
    assert first["reason"] == "outage INC-1" and first["by"] == ADMIN and first["since"]
    again = ok(put_mode(n, "emergency", True, "another reason"))
    assert again["changed"] is False and again["since"] == first["since"] and again["by"] == first["by"]
    assert again["reason"] == "outage INC-1"
    assert metric(n, 'qflow_node_mode{mode="emergency"}') == 1
    assert metric(n, 'qflow_node_mode{mode="lockdown"}') == 0
    off = ok(put_mode(n, "emergency", False, "resolved", token=tok(identity="squid:ops:other")))
    assert off["changed"] is True and off["enabled"] is False and off["by"] == "squid:ops:other"
    assert ok(put_mode(n, "emergency", False))["changed"] is False
    assert metric(n, 'qflow_node_mode{mode="emergency"}') == 0
    logs = [r for r in log_lines(n) if r.get("mode") == "emergency" and r["component"] == "system"]
    assert [(r["level"], r["enabled"]) for r in logs] == [("warn", True), ("info", False)]


def test_put_mode_needs_admin(lab):
    n = lab.start()
    for perms in (READER, ("flow:read",)):
        e = err(put_mode(n, "lockdown", True, token=tok(perms, "squid:user:x")), 403, "INSUFFICIENT_PERMISSIONS")
        assert e["details"]["available"] == list(perms)
    assert not lab.modes_file.exists() and modes_view(n)["lockdown"]["enabled"] is False
    # admin = auth.is_admin: '*', 'admin:*', 'flow:admin' (or 'flow:*')
    for perms in (("admin:*",), ("flow:admin",)):
        assert ok(put_mode(n, "isolation", True, token=tok(perms)))["enabled"] is True
        assert ok(put_mode(n, "isolation", False, token=tok(perms)))["enabled"] is False


def test_put_unknown_mode(lab):
    n = lab.start()
    e = err(put_mode(n, "maintenance", True), 400, "UNKNOWN_MODE")
    assert e["details"] == {"known": ["emergency", "lockdown", "isolation"]}
    assert not lab.modes_file.exists()


@pytest.mark.parametrize("payload", [{}, {"enabled": "yes"}, {"enabled": 1}, {"enabled": None},
                                     {"enabled": True, "reason": 5}, {"enabled": True, "reason": "x" * 1001},
                                     ["enabled"]])
def test_put_mode_invalid_body(lab, payload):
    n = lab.start()
    err(request(n.api, "PUT", "/api/v1/system/modes/emergency", payload, token=tok()), 400, "INVALID_REQUEST")
    assert not lab.modes_file.exists() and modes_view(n)["emergency"]["enabled"] is False


def test_modes_persist_across_restart_file_format(lab):
    n = lab.start()
    ok(put_mode(n, "lockdown", True, "breach"))
    assert stat.S_IMODE(os.stat(lab.modes_file).st_mode) == 0o640
    doc = json.loads(lab.modes_file.read_text())
    assert doc["modes"]["lockdown"]["enabled"] is True and doc["modes"]["lockdown"]["reason"] == "breach"
    assert set(doc["modes"]) == set(MODES)
    lab.stop_all()
    n2 = lab.start()
    v = modes_view(n2)
    assert v["lockdown"]["enabled"] is True and v["lockdown"]["by"] == ADMIN
    err(request(n2.api, "GET", "/api/v1/flows", token=tok(READER, "squid:user:u")), 403, "LOCKDOWN_ACTIVE")


def test_modes_default_file_next_to_env_file(tmp_path):
    f = NodeFactory(tmp_path)
    env = f.env()
    del env["QFLOW_MODES_FILE"]
    envfile = tmp_path / "etc" / "qflow.env"
    envfile.write_text("".join("%s=%s\n" % kv for kv in env.items()))
    n = Node(env, str(f.cfg), workload_rate=0, faults_file=str(f.faults), env_file=str(envfile))
    try:
        assert n.modes.path == str(tmp_path / "etc" / "qflow-modes.json")
    finally:
        n.store.close()
        n.log.close()


def test_modes_file_polled_heal_clears(lab):
    n = lab.start()
    ok(put_mode(n, "isolation", True))
    write_modes_file(str(lab.modes_file), all_disabled())  # what `qflow-lab heal` writes
    n.modes.poll_once()
    assert modes_view(n)["isolation"]["enabled"] is False
    assert ok(request(n.api, "GET", "/health"))["status"] == "healthy"
    # an unreadable file keeps the current modes
    ok(put_mode(n, "lockdown", True))
    lab.modes_file.write_text("{not json")
    n.modes.poll_once()
    assert n.modes.enabled("lockdown")


# ------------------------------------------------------------------ modes: effects
def test_emergency_refuses_starts_reads_and_control_keep_working(lab):
    n = lab.start()
    create_flow(n, flow_doc("sleepy", [{"id": "nap", "type": "task", "action": "sleep", "params": {"seconds": 30}}]))
    eid = ok(start_flow(n, "sleepy"), 201)["executionId"]
    wait_for(lambda: ok(request(n.api, "GET", "/api/v1/executions/" + eid, token=tok()))["execution"]["status"]
             == "running")
    ok(put_mode(n, "emergency", True))
    e = err(start_flow(n, "sleepy"), 503, "EMERGENCY_MODE")
    assert e["message"] == "Emergency mode is enabled: new executions are refused; reads keep working"
    with pytest.raises(ModeRefused):  # the engine refuses too (the built-in workload)
        n.engine.start(n.store.get_flow("sleepy"), {})
    assert ok(request(n.api, "GET", "/api/v1/flows", token=tok()))["flows"]
    assert ok(request(n.api, "GET", "/api/v1/system/metrics", token=tok()))
    for action, status in (("pause", "paused"), ("resume", "running"), ("abort", "aborted")):
        d = ok(request(n.api, "POST", "/api/v1/executions/%s/%s" % (eid, action), token=tok()))
        assert d["execution"]["status"] == status
    assert ok(request(n.api, "GET", "/health/ready"))["status"] == "ready"
    ok(put_mode(n, "emergency", False))
    ok(start_flow(n, "sleepy"), 201)


def test_emergency_stops_workload_logged_once(lab):
    n = lab.start(rate=40)
    wait_for(lambda: n.engine.active_count() > 0 or n.store.execution_counts())
    ok(put_mode(n, "emergency", True))
    time.sleep(0.3)
    before = sum(n.store.execution_counts().values())
    time.sleep(0.6)  # ~24 refused workload starts
    assert sum(n.store.execution_counts().values()) == before
    paused = [r for r in log_lines(n) if r["message"].startswith("Workload paused")]
    assert len(paused) == 1 and paused[0]["level"] == "warn" and paused[0]["mode"] == "emergency"
    ok(put_mode(n, "emergency", False))
    wait_for(lambda: sum(n.store.execution_counts().values()) > before)
    resumed = [r for r in log_lines(n) if r["message"].startswith("Workload resumed")]
    assert len(resumed) == 1


def test_lockdown_admin_only(lab):
    n = lab.start()
    ok(put_mode(n, "lockdown", True, "token leak"))
    user = tok(READER, "squid:user:leaked")
    for path in ("/api/v1/flows", "/api/v1/system/modes", "/api/v1/system/info"):
        e = err(request(n.api, "GET", path, token=user), 403, "LOCKDOWN_ACTIVE")
        assert e["message"] == "Security lockdown: only admin tokens are accepted"
    err(start_flow(n, "lab-heartbeat", token=user), 403, "LOCKDOWN_ACTIVE")
    assert ok(request(n.api, "GET", "/api/v1/flows", token=tok()))  # admin still works
    assert ok(request(n.api, "GET", "/health"))["status"] == "healthy"  # no token routes are not affected
    rej = [r for r in log_lines(n) if r["message"] == "Token rejected: LOCKDOWN_ACTIVE"]
    assert len(rej) == 4 and all(r["level"] == "warn" and r["component"] == "auth" for r in rej)
    assert rej[0]["identity"] == "squid:user:leaked"
    ok(put_mode(n, "lockdown", False))
    assert ok(request(n.api, "GET", "/api/v1/flows", token=user))


def test_isolation(lab):
    n = lab.start(rate=20)
    ok(put_mode(n, "isolation", True, "forensics"))
    st, _, raw = request(n.api, "GET", "/health/ready")
    b = body(raw)
    assert st == 503 and b["error"]["code"] == "NOT_READY" and b["error"]["details"]["checks"]["isolation"] is False
    assert ok(request(n.api, "GET", "/health"))["status"] == "isolated"
    assert ok(request(n.api, "GET", "/health/live"))["status"] == "alive"
    for method, path in (("GET", "/api/v1/flows"), ("GET", "/api/v1/system/info"), ("POST", "/api/v1/flows/x/start"),
                         ("GET", "/api/v1/nope"), ("GET", "/api/v1/docs")):
        e = err(request(n.api, method, path, {"context": {}}, token=tok()), 503, "NODE_ISOLATED")
    assert "system/modes" in e["message"]
    assert modes_view(n)["isolation"]["enabled"] is True  # the modes routes stay open
    assert metric(n, 'qflow_node_mode{mode="isolation"}') == 1  # /metrics keeps serving
    time.sleep(0.3)
    before = sum(n.store.execution_counts().values())
    time.sleep(0.4)
    assert sum(n.store.execution_counts().values()) == before  # workload stopped
    ok(put_mode(n, "isolation", False))
    assert ok(request(n.api, "GET", "/health/ready"))["status"] == "ready"
    assert "isolation" not in ok(request(n.api, "GET", "/health/ready"))["checks"]


# ------------------------------------------------------------------ auth log
def test_auth_log_lines_never_the_token(lab):
    n = lab.start()
    good = tok(identity="squid:ops:alice")
    request(n.api, "GET", "/api/v1/flows?limit=1", token=good)
    request(n.api, "GET", "/api/v1/flows")
    bad = make_token("wrong-secret", "squid:user:mallory", ["*"], 600)
    request(n.api, "GET", "/api/v1/flows", token=bad)
    reader = tok(("flow:read",), "squid:user:bob")
    request(n.api, "POST", "/api/v1/flows", {"flowData": "{}"}, token=reader)
    lines = [r for r in log_lines(n) if r["component"] == "auth"]
    acc = [r for r in lines if r["message"] == "Token accepted for squid:ops:alice"]
    assert len(acc) == 1 and acc[0]["level"] == "info"
    nonce = json.loads(__import__("base64").b64decode(good))["nonce"]
    assert acc[0]["nonce"] == nonce and acc[0]["method"] == "GET" and acc[0]["path"] == "/api/v1/flows"
    assert acc[0]["clientIp"] == "127.0.0.1"
    rej = {r["message"]: r for r in lines if r["message"].startswith("Token rejected")}
    assert set(rej) == {"Token rejected: MISSING_TOKEN", "Token rejected: INVALID_TOKEN",
                        "Token rejected: INSUFFICIENT_PERMISSIONS"}
    assert all(r["level"] == "warn" for r in rej.values())
    assert "identity" not in rej["Token rejected: MISSING_TOKEN"]
    inv = rej["Token rejected: INVALID_TOKEN"]
    assert inv["identity"] == "squid:user:mallory" and inv["reason"] == "Invalid token signature"
    assert rej["Token rejected: INSUFFICIENT_PERMISSIONS"]["identity"] == "squid:user:bob"
    text = open(os.path.join(n.env["QFLOW_LOG_DIR"], "qflow.log")).read()
    for t in (good, bad, reader):
        assert t not in text
        assert json.loads(__import__("base64").b64decode(t))["signature"] not in text


# ------------------------------------------------------------------ releases
def test_version_without_release_dir_is_builtin(lab):
    n = lab.start()
    assert ok(request(n.api, "GET", "/health"))["version"] == VERSION


def test_release_version_reported_and_deploy(lab):
    assert releases.ensure_initial(str(lab.release_dir)) is True
    assert releases.ensure_initial(str(lab.release_dir)) is False  # idempotent
    hist = [json.loads(x) for x in (lab.release_dir / "history.jsonl").read_text().splitlines()]
    assert [(h["action"], h["version"], h["from"], h["by"]) for h in hist] == [
        ("deployed", "0.1.0", None, "qflow-lab"), ("verified", "0.1.0", None, "qflow-lab")]
    assert os.readlink(lab.release_dir / "current") == "0.1.0"
    n = lab.start()
    assert ok(request(n.api, "GET", "/health"))["version"] == "0.1.0"
    lab.stop_all()
    assert releases.deploy(str(lab.release_dir), "0.2.0") == "0.1.0"
    assert os.readlink(lab.release_dir / "current") == "0.2.0"  # relative target
    doc = json.loads((lab.release_dir / "0.2.0" / "release.json").read_text())
    assert doc["version"] == "0.2.0" and doc["defects"] == [] and doc["createdAt"]
    n = lab.start()
    assert ok(request(n.api, "GET", "/health"))["version"] == "0.2.0"
    assert ok(request(n.api, "GET", "/api/v1/system/info", token=tok()))["version"] == "0.2.0"
    st, _, raw = request(n.metrics_url.rsplit("/", 1)[0], "GET", "/metrics")
    assert 'qflow_build_info{version="0.2.0",node_id="unit-node"} 1' in raw.decode()


def test_release_bad_version_and_defect_change_nothing(lab):
    releases.ensure_initial(str(lab.release_dir))
    before = sorted(os.listdir(lab.release_dir)), (lab.release_dir / "history.jsonl").read_text()
    for version, defects in (("../x", ()), ("current", ()), ("", ()), ("0.2.0", ("boom",))):
        with pytest.raises(releases.ReleaseError):
            releases.deploy(str(lab.release_dir), version, defects)
    assert (sorted(os.listdir(lab.release_dir)), (lab.release_dir / "history.jsonl").read_text()) == before


def test_crash_defect_refuses_start(lab):
    releases.ensure_initial(str(lab.release_dir))
    releases.deploy(str(lab.release_dir), "0.2.0", ["crash"])
    n = lab.make()
    try:
        with pytest.raises(SystemExit) as exc:
            n.start("127.0.0.1", 0, 0)
        assert "0.2.0" in str(exc.value) and "crash" in str(exc.value)
    finally:
        n.store.close()
    fatal = [r for r in log_lines(n) if r["level"] == "fatal"]
    assert len(fatal) == 1 and fatal[0]["version"] == "0.2.0"
    n.log.close()
    # rolled back by hand (current -> 0.1.0): it starts again
    releases.point_current(str(lab.release_dir), "0.1.0")
    n = lab.start()
    assert ok(request(n.api, "GET", "/health"))["version"] == "0.1.0"


def test_errors_defect_fails_every_execution(lab):
    releases.ensure_initial(str(lab.release_dir))
    releases.deploy(str(lab.release_dir), "0.3.0", ["errors"])
    n = lab.start()
    create_flow(n, flow_doc("quick", [{"id": "a", "type": "task", "action": "noop"}]))
    ids = [ok(start_flow(n, "quick"), 201)["executionId"] for _ in range(5)]

    def finished():
        exs = [ok(request(n.api, "GET", "/api/v1/executions/" + i, token=tok()))["execution"] for i in ids]
        return exs if all(e["status"] in ("completed", "failed") for e in exs) else None
    exs = wait_for(finished)
    assert {e["status"] for e in exs} == {"failed"}
    assert all("release 0.3.0" in e["error"]["message"] for e in exs)


# ------------------------------------------------------------------ sleep step
def test_sleep_step_validation():
    from qflow_lab.node import flows as flowlib
    for seconds, code in (("x", "TYPE"), (True, "TYPE"), (-1, "MINIMUM")):
        errors, _ = flowlib.validate_doc(flow_doc(steps=[{"id": "a", "type": "task", "action": "sleep",
                                                          "params": {"seconds": seconds}}]))
        assert [(e["field"], e["code"]) for e in errors] == [("/steps/0/params/seconds", code)]
    errors, _ = flowlib.validate_doc(flow_doc(steps=[{"id": "a", "type": "task", "action": "sleep",
                                                      "params": {"seconds": 100000}}]))
    assert errors == []
    assert sleep_seconds({"type": "task", "action": "sleep", "params": {"seconds": 100000}}) == 600
    assert sleep_seconds({"type": "task", "action": "sleep", "params": {"seconds": 2.5}}) == 2.5
    assert sleep_seconds({"type": "task", "action": "noop"}) is None


def test_sleep_step_runs_and_pause_stops_the_clock(lab):
    n = lab.start()
    create_flow(n, flow_doc())  # s1 noop, then nap: sleep 1 s
    t0 = time.monotonic()
    eid = ok(start_flow(n, "sleepy"), 201)["executionId"]

    def get():
        return ok(request(n.api, "GET", "/api/v1/executions/" + eid, token=tok()))["execution"]
    wait_for(lambda: get()["currentStep"] == "nap" and get()["status"] == "running")
    time.sleep(0.3)
    ok(request(n.api, "POST", "/api/v1/executions/%s/pause" % eid, token=tok()))
    time.sleep(1.5)  # longer than the whole sleep: paused, the clock does not run
    assert get()["status"] == "paused"
    ok(request(n.api, "POST", "/api/v1/executions/%s/resume" % eid, token=tok()))
    ex = wait_for(lambda: get() if get()["status"] == "completed" else None)
    assert ex["completedSteps"] == ["s1", "nap"]
    assert time.monotonic() - t0 >= 2.5  # 1 s of sleep + 1.5 s paused


# ------------------------------------------------------------------ corrupt
def _fill(data_dir, n=3000):
    s = Store(str(data_dir))
    for i in range(n):
        s.save_execution({"executionId": "e%05d" % i, "flowId": "f%d" % (i % 7), "status": "completed",
                          "context": {"triggeredBy": "x", "pad": "p" * 300}, "_startMs": i})
    return s


def test_corrupt_integrity_check_fails(tmp_path):
    s = _fill(tmp_path)
    s.close()
    path = str(tmp_path / "state.db")
    assert cli.integrity_problems(path) == []
    r = cli.corrupt_state_db(path, pages=8)
    assert r["integrity_problems"] and r["ranges"]
    first, last = r["ranges"][0]
    assert 2 <= first <= last <= r["page_count"] and last - first + 1 == 8
    assert first > r["page_count"] // 4  # in the middle
    assert cli.integrity_problems(path)


def test_corrupt_live_node_reads_fail(lab, capsys):
    s = _fill(lab.tmp / "data")
    s.close()
    n = lab.start()
    assert ok(request(n.api, "GET", "/api/v1/executions?limit=100", token=tok()))["pagination"]["total"] == 3000
    r = cli.corrupt_state_db(os.path.join(n.env["QFLOW_DATA_DIR"], "state.db"))
    assert cli.print_corrupt("unit-node", r) == 0
    out = capsys.readouterr().out
    assert "overwrote pages" in out and "integrity_check reports" in out
    codes = set()
    for flow in range(7):
        st, _, _ = request(n.api, "GET", "/api/v1/executions?limit=100&flowId=f%d" % flow, token=tok())
        codes.add(st)
    st, _, _ = request(n.api, "GET", "/api/v1/system/metrics", token=tok())
    codes.add(st)
    assert 500 in codes  # the node's own reads hit the damage


# ------------------------------------------------------------------ lab CLI
def test_render_env_keys_and_migration(tmp_path):
    env = dict(line.split("=", 1) for line in render.node_env(3, "/lab/nodes/qflow-node-3", "s", "e").splitlines())
    assert env["QFLOW_MODES_FILE"] == "/lab/nodes/qflow-node-3/etc/qflow-modes.json"
    assert env["QFLOW_RELEASE_DIR"] == "/lab/nodes/qflow-node-3/releases"
    old = tmp_path / "qflow.env"
    old.write_text("NODE_ID=qflow-node-3\nQFLOW_JWT_SECRET=s")  # no final newline
    os.chmod(old, 0o600)
    assert cli.ensure_env_keys(str(old), render.node_env_paths("/n")) == ["QFLOW_MODES_FILE", "QFLOW_RELEASE_DIR"]
    assert cli.read_env(str(old)) == {"NODE_ID": "qflow-node-3", "QFLOW_JWT_SECRET": "s",
                                      "QFLOW_MODES_FILE": "/n/etc/qflow-modes.json", "QFLOW_RELEASE_DIR": "/n/releases"}
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o600
    assert cli.ensure_env_keys(str(old), render.node_env_paths("/n")) == []
    senv = dict(line.split("=", 1) for line in sp.node_env(2, "s", "e").splitlines())
    assert senv["QFLOW_MODES_FILE"] == "/etc/qflow/qflow-modes.json"
    assert senv["QFLOW_RELEASE_DIR"] == "/var/lib/qflow-lab/releases"


def test_inventories_have_release_dir(tmp_path):
    inv = tmp_path / "hosts.yml"
    cli.write_inventory(str(inv), "/lab", 2, {"qflow-node-1": "a", "qflow-node-2": "b"})
    import yaml
    h = yaml.safe_load(inv.read_text())["all"]["children"]["qflow_nodes"]["hosts"]["qflow-node-2"]
    assert h["qflow_release_dir"] == "/lab/nodes/qflow-node-2/releases"
    doc = sp.inventory("/lab", 1, {"qflow-node-1": "t"}, "systemd", "172.30.0.1")
    assert doc["all"]["children"]["qflow_nodes"]["hosts"]["qflow-node-1"]["qflow_release_dir"] == \
        "/var/lib/qflow-lab/releases"
    doc = sp.inventory("/lab", 1, {"qflow-node-1": "t"}, "compose", "172.30.0.1")
    assert doc["all"]["children"]["qflow_nodes"]["hosts"]["qflow-node-1"]["qflow_release_dir"] == \
        "/lab/nodes/qflow-node-1/lab/releases"


def test_cli_release_no_restart_and_clear_modes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QFLOW_LAB_DIR", str(tmp_path))
    cli.write_file(cli.state_path(str(tmp_path)), '{"nodes": 1}')
    nd = cli.node_dir(str(tmp_path), "qflow-node-1")
    cli.write_file(os.path.join(nd, "etc", "qflow.env"), render.node_env(1, nd, "s", "e"), 0o600)
    releases.ensure_initial(os.path.join(nd, "releases"))
    assert cli.main(["release", "qflow-node-1", "0.2.0", "--defect", "errors", "--no-restart"]) == 0
    out = capsys.readouterr().out
    assert "release 0.2.0 with defect errors" in out and "was 0.1.0" in out and "not restarted" in out
    rd = os.path.join(nd, "releases")
    assert os.readlink(os.path.join(rd, "current")) == "0.2.0"
    assert json.load(open(os.path.join(rd, "0.2.0", "release.json")))["defects"] == ["errors"]
    last = json.loads(open(os.path.join(rd, "history.jsonl")).read().splitlines()[-1])
    assert (last["action"], last["version"], last["from"]) == ("deployed", "0.2.0", "0.1.0")
    # bad input: exit 2, nothing changed
    assert cli.main(["release", "qflow-node-1", "../evil", "--no-restart"]) == 2
    assert cli.main(["release", "qflow-node-9", "0.3.0", "--no-restart"]) == 2
    assert os.readlink(os.path.join(rd, "current")) == "0.2.0"
    assert sorted(os.listdir(rd)) == ["0.1.0", "0.2.0", "current", "history.jsonl"]
    # heal's modes part
    mf = os.path.join(nd, "etc", "qflow-modes.json")
    write_modes_file(mf, {"modes": {"lockdown": {"enabled": True, "reason": "r", "since": "t", "by": "b"}}})
    cli.clear_modes(os.path.join(nd, "etc", "qflow.env"))
    assert json.load(open(mf)) == all_disabled()


def test_cli_new_commands_dispatch_to_systemd_profile():
    for cmd in (["release", "n", "0.2.0"], ["corrupt", "n"]):
        args = cli.build_parser().parse_args(cmd + ["--profile", "systemd"])
        assert sp.command(args).__name__ == args.fn.__name__


def test_corrupt_cli_unknown_node_and_missing_db(tmp_path, monkeypatch):
    monkeypatch.setenv("QFLOW_LAB_DIR", str(tmp_path))
    cli.write_file(cli.state_path(str(tmp_path)), '{"nodes": 1}')
    assert cli.main(["corrupt", "qflow-node-2"]) == 2
    assert cli.main(["corrupt", "qflow-node-1"]) == 1  # no state.db yet
    with pytest.raises(cli.LabError):
        cli.corrupt_state_db(str(tmp_path / "nope.db"))
    con = sqlite3.connect(str(tmp_path / "tiny.db"))
    con.execute("CREATE TABLE t (x)")
    con.close()
    with pytest.raises(cli.LabError) as exc:
        cli.corrupt_state_db(str(tmp_path / "tiny.db"))
    assert "nothing worth corrupting" in str(exc.value)


def test_heal_clears_modes_and_waits_for_the_node(lab):
    n = lab.start()
    envfile = lab.tmp / "etc" / "qflow.env"
    envfile.write_text("".join("%s=%s\n" % kv for kv in lab.env().items()))
    assert cli.clear_modes(str(envfile)) is False  # nothing on: no wait needed
    ok(put_mode(n, "lockdown", True))
    ok(put_mode(n, "emergency", True))
    assert cli.modes_cleared(n.api, SECRET) is False
    assert cli.clear_modes(str(envfile)) is True
    assert json.loads(lab.modes_file.read_text()) == all_disabled()
    assert wait_for(lambda: cli.modes_cleared(n.api, SECRET), timeout=3)  # polled by the node within ~1 s
    assert n.modes.active() == []
    assert cli.modes_cleared(n.api, "wrong-secret") is False  # an answer it cannot read is not "cleared"
