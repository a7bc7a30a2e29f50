"""Game days: every incident playbook against the real fault it exists for, injected on the lab.

Each test injects the fault (node killed, bad release deployed, state file corrupted, a token leaked and used), runs
the playbook and asserts the incident record and the notifications, the mitigation, the nodes' state afterwards and
that no data was lost (flows and executions counted before and after). The time from the fault to the verified
mitigation (the timeline event with data.mitigated) is measured and written to reports/game-days.json — measured, not
asserted. Processes profile only (the systemd profile runs the weekly procedures; see README)."""

from __future__ import annotations

import datetime
import json
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import qflow_ops
from labtest import LAB_INVENTORY, LAB_NODES, ROOT, SYSTEMD, hostvars, lab, lab_url, node_pid, wait_until

pytestmark = [pytest.mark.skipif(SYSTEMD, reason="game days run on the processes profile (lab CLI faults, pids)"),
              pytest.mark.early]  # make test: first phase, beside make check (long, mostly waiting; holds under contention)

MEASUREMENTS = ROOT / "reports" / "game-days.json"
OPERATORS = ["squid:ops:lab-operator", "squid:ops:qflow-ops"]


# ------------------------------------------------------------------ helpers
def _hv(node):
    return hostvars(LAB_INVENTORY, node)


def _call(node, path, token=None, method="GET", body=None, timeout=10):
    """(status, envelope) of a node API call; token None = the inventory's operator token, '' = none."""
    hv = _hv(node)
    token = hv["qflow_api_token"] if token is None else token
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(hv["qflow_api_url"] + path, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.load(exc)
        except ValueError:
            return exc.code, {}
    except (urllib.error.URLError, OSError) as exc:  # down: connection refused
        return 0, {"error": str(exc)}


def _ready(node):
    return _call(node, "/health/ready", token="")[0] == 200


def _counts(node, token=None):
    """What must survive: the node's flows (ids) and its newest 100 executions (ids). The node prunes its oldest
    finished executions beyond 5000, so a count of executions is not a measure of loss."""
    _, flows = _call(node, "/api/v1/flows?limit=100", token=token)
    _, execs = _call(node, "/api/v1/executions?limit=100", token=token)
    return {"flows": sorted(f["id"] for f in flows["data"]["flows"]),
            "executions": {e["executionId"] for e in execs["data"]["executions"]}}


def _lost(node, before, token=None):
    """The flows and executions of `before` (from _counts) the node no longer has."""
    flows = set(before["flows"]) - set(_counts(node, token)["flows"])
    gone = {e for e in before["executions"] if _call(node, "/api/v1/executions/" + e, token=token)[0] != 200}
    return {"flows": sorted(flows), "executions": sorted(gone)}


def _release(node):
    return (Path(_hv(node)["qflow_release_dir"]) / "current").resolve().name


def _modes(node):
    status, env = _call(node, "/api/v1/system/modes")
    assert status == 200, env
    return {k: v["enabled"] for k, v in env["data"]["modes"].items()}


def _messages():
    with urllib.request.urlopen(lab_url("receiver") + "/messages", timeout=10) as resp:
        return json.load(resp)


def _titles(since):
    out = []
    for m in _messages()[since:]:
        body = m.get("body") or {}
        if isinstance(body, dict) and body.get("attachments"):
            out.append(body["attachments"][0].get("title", ""))
        elif m.get("subject"):
            out.append(m["subject"])
    return out


def _incident(incident_dir):
    """The one incident written in incident_dir."""
    records = sorted(p for p in Path(incident_dir).glob("*/incident.json") if not p.parent.is_symlink())
    assert len(records) == 1, records
    return json.loads(records[0].read_text()), records[0].parent


def _steps(incident, host=None):
    return [e["step"] for e in incident["timeline"] if host is None or e.get("host") == host]


def _when(iso):
    return datetime.datetime.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()


def _measure(name, fault_at, incident, **extra):
    """Seconds from the fault to the verified mitigation, written to reports/game-days.json."""
    mitigated = [e for e in incident["timeline"] if (e.get("data") or {}).get("mitigated") is True]
    seconds = round(_when(mitigated[0]["time"]) - fault_at, 1) if mitigated else None
    data = json.loads(MEASUREMENTS.read_text()) if MEASUREMENTS.exists() else {}
    data[name] = dict(extra, fault_to_verified_mitigation_s=seconds, incident=incident["id"],
                      measured_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    MEASUREMENTS.parent.mkdir(parents=True, exist_ok=True)
    MEASUREMENTS.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return seconds


def _node_changes(result):
    return {h: n for h, n in result.stats.get("changed", {}).items() if h != "localhost" and n}


def _extra(tmp_path, **more):
    extra = {"qflow_incident_dir": str(tmp_path / "incidents"), "qflow_ir_monitor_duration": "20s",
             "qflow_p1_monitor_duration": "20s", "qflow_data_monitor_duration": "20s", "qflow_ir_gate_timeout": 45,
             "qflow_ir_diagnostics_dest": str(tmp_path / "diag-on-node"), "qflow_ir_metrics_window": "1m"}
    extra.update(more)
    return extra


@pytest.fixture
def healed():
    """Heal the game-day nodes afterwards: faults and modes off, release 0.1.0, tokens valid again."""
    yield
    for node in ("qflow-node-6", "qflow-node-7", "qflow-node-8"):
        rel = Path(_hv(node)["qflow_release_dir"])
        if (rel / "current").resolve().name != "0.1.0":
            tmp = rel / ".current.heal"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to("0.1.0")
            tmp.replace(rel / "current")
            lab("fault", node, "down", check=False)
        db = Path(_hv(node)["qflow_data_dir"]) / "state.db"
        if _integrity(db) != "ok":  # a data-corruption test that stopped half-way: a fresh database
            lab("fault", node, "down", check=False)
            for p in db.parent.glob("state.db*"):
                p.unlink()
    lab("heal", "all", timeout=300)  # faults and modes off (an isolated node is never ready for `up`)
    lab("up", "--nodes", str(LAB_NODES), timeout=600)  # re-issues the inventory tokens from the current secrets


def _integrity(db):
    try:
        with sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10) as con:
            return con.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        return str(exc)


# ------------------------------------------------------------------ P0: a node is killed
def test_p0_node_killed(green_lab, tmp_path, report_dir, healed):
    nodes, dead, alive = "qflow-node-6,qflow-node-7", "qflow-node-6", "qflow-node-7"
    before = _counts(dead)
    alive_pid = node_pid(alive)
    sent = len(_messages())
    lab("fault", dead, "down")
    fault_at = time.time()
    assert not _ready(dead)
    extra = _extra(tmp_path, qflow_incident_title="Game day: node killed")

    # 1. check mode: a preview that opens, restarts and records nothing
    r1 = qflow_ops.run("incident-p0", LAB_INVENTORY, extravars=extra, limit=nodes, check=True, report_dir=report_dir)
    assert r1.report is not None, r1.stdout[-4000:]
    assert r1.check(dead, "recover")["value"] == "would restart", r1.check(dead, "recover")
    assert not _ready(dead) and not (tmp_path / "incidents").exists() and _titles(sent) == []

    # 2. real: acknowledged, notified, emergency mode, diagnostics, restart, verified, resolved
    r2 = qflow_ops.run("incident-p0", LAB_INVENTORY, extravars=extra, limit=nodes, report_dir=report_dir)
    assert r2.rc == 0 and r2.report["result"] == "pass", r2.stdout[-8000:]
    assert r2.check(dead, "assess")["value"].startswith("degraded")
    assert _ready(dead) and node_pid(alive) == alive_pid, "the dead node restarted, the live one untouched"
    assert _modes(dead)["emergency"] is False and _modes(alive)["emergency"] is False
    incident, path = _incident(tmp_path / "incidents")
    assert incident["severity"] == "P0" and incident["status"] == "resolved", incident
    assert incident["acknowledged_at"] and incident["resolved_at"]
    for step in ("assess", "diagnostics_standard", "recover_restart", "emergency_disabled", "verify"):
        assert step in _steps(incident, dead), (step, _steps(incident))
    # the live node protected itself while the dead one was down, and was not restarted
    assert "emergency_enabled" in _steps(incident, alive) and "recover_restart" not in _steps(incident, alive)
    assert (path / "timeline.md").exists() and (path / "postmortem.md").exists()
    assert list((path / "diagnostics").glob("*-" + dead + ".tar.gz")), "the dead node's diagnostics were fetched"
    titles = _titles(sent)
    assert any("P0 incident opened" in t for t in titles) and any("resolved" in t for t in titles), titles
    assert _lost(dead, before) == {"flows": [], "executions": []}
    seconds = _measure("p0_node_killed", fault_at, incident, nodes=2)
    assert seconds is not None and seconds > 0

    # 3. check mode again and 4. real again: nothing to do on any node
    r3 = qflow_ops.run("incident-p0", LAB_INVENTORY, extravars=extra, limit=nodes, check=True, report_dir=report_dir)
    assert r3.ok and _node_changes(r3) == {}, (r3.stats, r3.stdout[-4000:])
    pids = {n: node_pid(n) for n in nodes.split(",")}
    r4 = qflow_ops.run("incident-p0", LAB_INVENTORY, extravars=extra, limit=nodes, report_dir=report_dir)
    assert r4.ok and _node_changes(r4) == {}, (r4.stats, r4.stdout[-4000:])
    assert {n: node_pid(n) for n in nodes.split(",")} == pids, "a healthy cluster is not restarted"


def test_unknown_incident_id_is_refused(green_lab, tmp_path, report_dir):
    pids = {n: node_pid(n) for n in ("qflow-node-6", "qflow-node-7")}
    r = qflow_ops.run("incident-p0", LAB_INVENTORY, limit="qflow-node-6,qflow-node-7", report_dir=report_dir,
                      extravars=_extra(tmp_path, qflow_incident_id="INC-20991231-000000-P0"))
    assert r.rc != 0
    assert "INC-20991231-000000-P0 not found" in r.stdout, r.stdout[-3000:]
    assert not list((tmp_path / "incidents").glob("*/incident.json")), "no incident was written"
    assert {n: node_pid(n) for n in pids} == pids
    assert not any(_modes(n)["emergency"] for n in pids)


# ------------------------------------------------------------------ P1: a release that fails every execution
def test_p1_bad_release_rolled_back(green_lab, tmp_path, report_dir, healed):
    nodes, bad = "qflow-node-6,qflow-node-7", "qflow-node-6"
    before = _counts(bad)
    lab("release", bad, "0.2.0-bad", "--defect", "errors")
    fault_at = time.time()
    wait_until(lambda: _call(bad, "/api/v1/executions?status=failed&limit=1")[1]["data"]["pagination"]["total"] > 5,
               timeout=60, what="failed executions on the bad release")
    time.sleep(20)  # a minute of Prometheus history shows the error rate
    r = qflow_ops.run("incident-p1", LAB_INVENTORY, limit=nodes, report_dir=report_dir,
                      extravars=_extra(tmp_path, qflow_incident_title="Game day: bad release, every execution fails"))
    assert r.rc == 0 and r.report["result"] == "pass", r.stdout[-8000:]
    assert r.check(bad, "assess")["value"].startswith("degraded"), "the assessment saw the degraded node"
    assert r.check(bad, "recover")["value"] == "rolled back to 0.1.0", r.check(bad, "recover")
    assert _release(bad) == "0.1.0" and _ready(bad)
    history = [json.loads(line) for line in (Path(_hv(bad)["qflow_release_dir"]) / "history.jsonl").read_text().splitlines()]
    assert history[-2]["action"] in ("rolled_back", "verified") and history[-1]["action"] == "verified"
    incident, _ = _incident(tmp_path / "incidents")
    assert incident["severity"] == "P1" and incident["status"] == "resolved"
    assert "recover_rollback" in _steps(incident, bad)
    assert _lost(bad, before) == {"flows": [], "executions": []}
    _measure("p1_bad_release_errors", fault_at, incident, nodes=2)


# ------------------------------------------------------------------ outage: a release that never starts
def test_outage_bad_release_rolled_back(green_lab, tmp_path, report_dir, healed):
    nodes = ["qflow-node-6", "qflow-node-7"]
    before = {n: _counts(n) for n in nodes}
    sent = len(_messages())
    for node in nodes:
        lab("release", node, "0.3.0-crash", "--defect", "crash")
    fault_at = time.time()
    assert not any(_ready(n) for n in nodes), "complete outage of the pool"
    r = qflow_ops.run("emergency-outage", LAB_INVENTORY, limit=",".join(nodes), report_dir=report_dir,
                      extravars=_extra(tmp_path, qflow_incident_title="Game day: crashing release everywhere"))
    assert r.rc == 0 and r.report["result"] == "pass", r.stdout[-8000:]
    incident, path = _incident(tmp_path / "incidents")
    assert incident["kind"] == "outage" and incident["status"] == "resolved"
    for node in nodes:
        assert _release(node) == "0.1.0" and _ready(node) and _modes(node)["emergency"] is False
        assert "recover_rollback" in _steps(incident, node) and "verify" in _steps(incident, node)
        assert _lost(node, before[node]) == {"flows": [], "executions": []}
    assert any("incident opened" in t for t in _titles(sent))
    assert (path / "postmortem.md").exists()
    _measure("outage_bad_release_crash", fault_at, incident, nodes=2)


# ------------------------------------------------------------------ data corruption
def _backup(node, backup_dir):
    hv = _hv(node)
    from labtest import run_cmd
    args = {"state": "present", "backup_dir": backup_dir, "data_dir": hv["qflow_data_dir"],
            "config_path": hv["qflow_config_path"], "node_id": node, "ipfs_api_url": hv["qflow_ipfs_api_url"]}
    proc = run_cmd(["ansible", "localhost", "-m", "qflow.ops.backup", "-a", json.dumps(args)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _sleep_executions(node, n=3):
    """Start n executions of a flow whose step sleeps 120 s (something running for pause-all)."""
    flow = {"id": "gameday-long-running", "name": "long running", "version": "1.0.0", "owner": "squid:ops:lab-operator",
            "steps": [{"id": "wait", "type": "task", "action": "sleep", "params": {"seconds": 120}}],
            "metadata": {"tags": ["gameday"], "category": "test", "visibility": "private", "requiredPermissions": []}}
    status, _ = _call(node, "/api/v1/flows", method="POST", body={"flowData": json.dumps(flow), "format": "json"})
    assert status in (201, 409)
    ids = []
    for _ in range(n):
        status, env = _call(node, "/api/v1/flows/gameday-long-running/start", method="POST",
                            body={"context": {"triggeredBy": "squid:ops:lab-operator", "triggerType": "manual"}})
        assert status == 201, env
        ids.append(env["data"]["executionId"])
    wait_until(lambda: all(_call(node, "/api/v1/executions/" + i)[1]["data"]["execution"]["status"] == "running"
                           for i in ids), timeout=30, what="long executions running")
    return ids


def test_data_corruption_restored(green_lab, inventory_copy, tmp_path, report_dir, healed):
    node = "qflow-node-8"
    backup_dir = tmp_path / "backups"
    inv = inventory_copy(lambda d: d["all"]["children"]["qflow_nodes"]["hosts"][node].update(
        qflow_backup_dir=str(backup_dir)))
    _sleep_executions(node, 2)
    before = _counts(node)  # all of it is in the backup taken next
    _backup(node, str(backup_dir))
    running = _sleep_executions(node, 3)
    archive = sorted(backup_dir.glob("*.tar.gz"))[-1]
    good = archive.read_bytes()
    state_db = Path(_hv(node)["qflow_data_dir"]) / "state.db"
    lab("corrupt", node)
    fault_at = time.time()

    # bad input first: the latest backup fails verification -> clear error, nothing restored, node not stopped
    archive.write_bytes(good[: len(good) // 2])
    corrupt_bytes, pid = state_db.read_bytes(), node_pid(node)
    bad = qflow_ops.run("data-corruption", inv, limit=node, report_dir=report_dir,
                        extravars=_extra(tmp_path / "bad", qflow_incident_title="Game day: corrupt state, bad backup"))
    assert bad.rc != 0 and bad.report["result"] == "fail", bad.stdout[-6000:]
    item = bad.check(node, "restore")
    assert item["ok"] is False and "fails verification" in item["detail"] and "nothing was restored" in item["detail"], item
    assert node_pid(node) == pid and state_db.read_bytes() == corrupt_bytes, "nothing changed on the node"

    # the real game day: a good backup, restored
    archive.write_bytes(good)
    r = qflow_ops.run("data-corruption", inv, limit=node, report_dir=report_dir,
                      extravars=_extra(tmp_path, qflow_incident_title="Game day: corrupt state file"))
    assert r.rc == 0 and r.report["result"] == "pass", r.stdout[-8000:]
    assert r.check(node, "data_verify")["value"] == "corrupt", "the corruption was found"
    assert r.check(node, "restore")["value"].startswith("restored "), r.check(node, "restore")
    assert r.check(node, "data_verify_after")["ok"] is True
    incident, _ = _incident(tmp_path / "incidents")
    assert incident["kind"] == "data-corruption" and incident["status"] == "resolved"
    for step in ("data_verify", "emergency_enabled", "data_recovery", "verify"):
        assert step in _steps(incident, node), (step, _steps(incident))
    assert _lost(node, before) == {"flows": [], "executions": []}, "everything in the backup is back"
    assert _modes(node)["emergency"] is False and _ready(node)
    _measure("data_corruption_state_db", fault_at, incident, nodes=1, paused=len(running))


# ------------------------------------------------------------------ security breach: a leaked token is used
def _token(node, identity, *perms):
    args = ["token", node, "--identity", identity]
    for p in perms:
        args += ["--permission", p]
    return lab(*args).stdout.strip()


def test_security_breach_leaked_token(green_lab, tmp_path, report_dir, healed):
    nodes, victim, other = "qflow-node-6,qflow-node-7", "qflow-node-7", "qflow-node-6"
    leaked = _token(victim, "squid:user:leaked", "flow:read", "flow:execute")
    leaked_other = _token(other, "squid:user:leaked", "flow:read", "flow:execute")
    assert _call(victim, "/api/v1/flows", token=leaked)[0] == 200  # the leaked token is used
    operator = {n: _hv(n)["qflow_api_token"] for n in nodes.split(",")}
    before = {n: _counts(n) for n in nodes.split(",")}
    sent = len(_messages())
    fault_at = time.time()
    r = qflow_ops.run("security-breach", LAB_INVENTORY, limit=nodes, report_dir=report_dir, verbosity=3,
                      extravars=_extra(tmp_path, qflow_breach_identity="squid:user:leaked", qflow_breach_window="2m",
                                       qflow_incident_title="Game day: leaked token used"))
    assert r.rc == 0 and r.report["result"] == "pass", r.stdout[-8000:]
    # isolated: out of the pool, still running (evidence), forensics fetched
    status, env = _call(victim, "/health/ready", token="")
    assert status == 503 and env["error"]["details"]["checks"]["isolation"] is False, env
    incident, path = _incident(tmp_path / "incidents")
    assert incident["kind"] == "security-breach" and incident["status"] != "resolved"
    assert 3 in [e["level"] for e in incident["escalations"]], incident["escalations"]
    assert list((path / "diagnostics").glob("*-" + victim + ".tar.gz")) and not list((path / "diagnostics").glob("*-" + other + ".tar.gz"))
    # revoked: the leaked and the old operator tokens fail everywhere
    for node in nodes.split(","):
        assert _call(node, "/api/v1/flows", token=operator[node])[0] == 401
    assert _call(other, "/api/v1/flows", token=leaked_other)[0] == 401
    # lockdown: a fresh non-admin token is refused, a fresh admin one works
    user = _token(other, "squid:user:fresh", "flow:read")
    status, env = _call(other, "/api/v1/flows", token=user)
    assert status == 403 and env["error"]["code"] == "LOCKDOWN_ACTIVE", env
    admin = _token(other, "squid:ops:lab-operator")
    assert _call(other, "/api/v1/flows", token=admin)[0] == 200
    assert _call(other, "/api/v1/system/modes", token=admin)[1]["data"]["modes"]["lockdown"]["enabled"] is True
    assert any("Security breach" in t for t in _titles(sent)), _titles(sent)
    assert _lost(other, before[other], token=admin) == {"flows": [], "executions": []}
    # no token (old, leaked or fresh) and no signing secret in the -vvv output
    assert "eyJpZGVudGl0eSI6" not in r.stdout, "a token was printed"
    for node in nodes.split(","):
        for line in Path(_hv(node)["qflow_env_path"]).read_text().splitlines():
            key, _, value = line.partition("=")
            if key.startswith("QFLOW_JWT_SECRET") and value:
                assert value not in r.stdout
    _measure("security_breach_leaked_token", fault_at, incident, nodes=2)


def test_unknown_node_to_isolate_is_refused(green_lab, tmp_path, report_dir):
    pids = {n: node_pid(n) for n in ("qflow-node-6", "qflow-node-7")}
    r = qflow_ops.run("security-breach", LAB_INVENTORY, limit="qflow-node-6,qflow-node-7", report_dir=report_dir,
                      extravars=_extra(tmp_path, qflow_ir_isolate=["qflow-node-99"]))
    assert r.rc != 0 and "qflow-node-99" in r.stdout and "not in the inventory" in r.stdout, r.stdout[-3000:]
    assert {n: node_pid(n) for n in pids} == pids
    assert not any(_modes(n)["isolation"] or _modes(n)["lockdown"] for n in pids)
    assert not list((tmp_path / "incidents").glob("*/incident.json"))


# ------------------------------------------------------------------ daily security check
def test_security_daily_check_flags_unknown_identity(green_lab, tmp_path, report_dir):
    node = "qflow-node-4"  # a node the other game days leave alone (their identities are in its log otherwise)
    extra = {"qflow_ir_auth_window": "2m", "qflow_ir_known_identities": OPERATORS}
    r1 = qflow_ops.run("security-daily-check", LAB_INVENTORY, limit=node, report_dir=report_dir, extravars=extra)
    assert r1.report is not None and r1.check(node, "auth_identities")["ok"] is True, r1.stdout[-4000:]
    leaked = _token(node, "squid:user:leaked", "flow:read")
    assert _call(node, "/api/v1/flows", token=leaked)[0] == 200
    r2 = qflow_ops.run("security-daily-check", LAB_INVENTORY, limit=node, report_dir=report_dir, extravars=extra)
    assert r2.rc != 0 and r2.report["result"] == "fail"
    item = r2.check(node, "auth_identities")
    assert item["ok"] is False and "squid:user:leaked" in item["detail"], item
    assert _node_changes(r2) == {}
