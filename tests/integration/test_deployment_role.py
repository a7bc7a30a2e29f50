"""The role qflow.ops.deployment on the processes lab, node qflow-node-5 only: a bad release (defect crash) is deployed
with `qflow-lab release`, then a small playbook runs the role's history and rollback entry points in four steps
(check, real, check, real). node-5 is left healthy on release 0.1.0.

Needs the lab's release support (node contract section 2.5: QFLOW_RELEASE_DIR, `qflow-lab release`). The processes
lab only: on profile systemd the release dir lives in the containers.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest
import yaml

from labtest import BIN, LAB_INVENTORY, SYSTEMD, hostvars, lab, node_pid, run_cmd, wait_until

NODE = "qflow-node-5"
GOOD = "0.1.0"
BAD = "0.2.0"

pytestmark = pytest.mark.skipif(SYSTEMD, reason="release dirs of the processes lab only (qflow-node-5)")

PLAY = [{
    "name": "History and rollback of qflow-node-5",
    "hosts": NODE,
    "gather_facts": False,
    "tasks": [
        {"name": "History", "ansible.builtin.include_role": {"name": "qflow.ops.deployment", "tasks_from": "history"}},
        {"name": "Rollback", "ansible.builtin.include_role": {"name": "qflow.ops.deployment", "tasks_from": "rollback"}},
        {"name": "Facts", "ansible.builtin.debug": {"msg": {"history": "{{ qflow_deployment_history }}",
                                                           "rollback": "{{ qflow_deployment_rollback }}"}}},
    ],
}]


@pytest.fixture
def node5():
    """The lab is up with release support; node-5 healthy on 0.1.0 before and after (only node-5 is touched)."""
    if not LAB_INVENTORY.exists() or lab("status", check=False).returncode != 0:
        lab("up", "--nodes", os.environ.get("QFLOW_TEST_NODES", "8"), timeout=600)
    release_dir = hostvars(LAB_INVENTORY, NODE).get("qflow_release_dir")
    assert release_dir and Path(release_dir, "current").is_symlink(), (
        "the lab has no release dir for %s (qflow_release_dir in %s); qflow-lab up creates it" % (NODE, LAB_INVENTORY))
    release_dir = Path(release_dir)
    if os.readlink(release_dir / "current") != GOOD:
        lab("release", NODE, GOOD)
    lab("heal", NODE)
    yield release_dir
    if os.readlink(release_dir / "current") != GOOD:
        lab("release", NODE, GOOD, check=False)
    lab("heal", NODE, check=False)


def health(node):
    url = hostvars(LAB_INVENTORY, node)["qflow_api_url"] + "/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return json.load(resp)["data"]
    except OSError:
        return None


def ready(node):
    url = hostvars(LAB_INVENTORY, node)["qflow_api_url"] + "/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status == 200
    except OSError:
        return False


def snapshot(release_dir):
    """The release dir: link target, history bytes, releases."""
    return {"current": os.readlink(release_dir / "current"),
            "history": (release_dir / "history.jsonl").read_bytes(),
            "releases": sorted(p.name for p in release_dir.iterdir())}


def history_lines(release_dir):
    return [json.loads(line) for line in (release_dir / "history.jsonl").read_text().splitlines() if line.strip()]


def run(tmp_path, check=False):
    """ansible-playbook (json callback): (rc, changed count, facts, failure messages)."""
    path = tmp_path / "rollback.yml"
    path.write_text(yaml.safe_dump(PLAY, sort_keys=False))
    proc = run_cmd([str(BIN / "ansible-playbook"), "-i", str(LAB_INVENTORY), str(path), "--diff"]
                   + (["--check"] if check else []),
                   env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}, timeout=600)
    try:
        out = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        raise AssertionError("no JSON from ansible-playbook (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    facts, failures = None, []
    for play in out["plays"]:
        for task in play["tasks"]:
            res = task["hosts"].get(NODE, {})
            if task["task"]["name"] == "Facts":
                facts = res.get("msg")
            if res.get("failed"):
                failures.append(res.get("msg", ""))
    return proc.returncode, out["stats"].get(NODE, {}).get("changed", 0), facts, failures


def test_rollback_of_a_crashing_release_four_steps(node5, tmp_path):
    release_dir = node5
    assert ready(NODE) and health(NODE)["version"] == GOOD

    # a bad release: current -> 0.2.0, history `deployed`, the node restarts and never comes up
    lab("release", NODE, BAD, "--defect", "crash")
    assert os.readlink(release_dir / "current") == BAD
    wait_until(lambda: not ready(NODE), timeout=30, what="%s down on the crashing release" % NODE)
    before = snapshot(release_dir)
    lines_before = history_lines(release_dir)
    assert lines_before[-1]["action"] == "deployed" and lines_before[-1]["version"] == BAD

    # 1. check: the module's prediction, nothing written, no restart (the node stays down)
    rc, changed, facts, failures = run(tmp_path, check=True)
    assert rc == 0 and not failures, failures
    assert facts["history"]["current"] == BAD and facts["history"]["last_known_good"] == GOOD
    assert facts["history"]["entries"][-1]["action"] == "deployed"
    rb = facts["rollback"]
    assert rb["changed"] is True and (rb["from"], rb["to"]) == (BAD, GOOD), rb
    assert rb["restarted"] is False and rb["verified"] is False and "check mode" in rb["detail"]
    assert rb["history"][-1]["action"] == "rolled_back"  # the line the run would append
    assert snapshot(release_dir) == before and not ready(NODE)

    # 2. real: current -> 0.1.0, rolled_back then verified in the history, the node restarted and ready on 0.1.0
    rc, changed, facts, failures = run(tmp_path)
    assert rc == 0 and not failures, failures
    rb = facts["rollback"]
    assert rb["changed"] is True and (rb["from"], rb["to"]) == (BAD, GOOD), rb
    assert rb["restarted"] is True and rb["ready"] is True and rb["running"] == GOOD and rb["verified"] is True, rb
    assert os.readlink(release_dir / "current") == GOOD
    lines = history_lines(release_dir)
    assert lines[:len(lines_before)] == lines_before and len(lines) == len(lines_before) + 2
    assert [(e["action"], e["version"], e["from"], e["by"]) for e in lines[-2:]] == [
        ("rolled_back", GOOD, BAD, "qflow.ops"), ("verified", GOOD, None, "qflow.ops")]
    assert ready(NODE) and health(NODE)["version"] == GOOD
    after = snapshot(release_dir)
    pid = node_pid(NODE)

    # 3. check again, 4. real again: nothing to do, nothing written, no restart
    for check in (True, False):
        rc, changed, facts, failures = run(tmp_path, check=check)
        assert rc == 0 and not failures and changed == 0, (check, changed, failures)
        rb = facts["rollback"]
        assert rb["changed"] is False and rb["to"] == GOOD and rb["restarted"] is False, rb
        assert facts["history"]["current"] == GOOD
        assert snapshot(release_dir) == after and node_pid(NODE) == pid
    assert ready(NODE) and health(NODE)["version"] == GOOD
