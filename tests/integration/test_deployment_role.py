"""The role qflow.ops.deployment.

- Release dir backend on the processes lab, node qflow-node-5 only: a bad release (defect crash) is deployed with
  `qflow-lab release`, then a small playbook runs the role's history and rollback entry points in four steps (check,
  real, check, real). node-5 is left healthy on release 0.1.0. Needs the lab's release support (node contract section
  2.5: QFLOW_RELEASE_DIR, `qflow-lab release`); processes lab only (on profile systemd the release dir lives in the
  containers).
- Kubernetes backend against a FAKE Kubernetes API (k8s_fake_rollout: ReplicaSets and the controller's revision
  bookkeeping on top of k8s_fake_api) with the real kubernetes.core.k8s_rollback, and a stub node for the health gate;
  the cluster is one context of a kubeconfig with two (qflow_k8s_context, qflow_k8s_kubeconfig), the other one (the
  current context) unreachable. A StatefulSet is restarted by the service role and refused by the deployment role.
  Needs no lab.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from labtest import BIN, LAB_INVENTORY, SYSTEMD, hostvars, lab, node_pid, run_cmd, wait_until

NODE = "qflow-node-5"
GOOD = "0.1.0"
BAD = "0.2.0"

processes_lab_only = pytest.mark.skipif(SYSTEMD, reason="release dirs of the processes lab only (qflow-node-5)")

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


def run(tmp_path, check=False, play=None, inventory=None, host=NODE, env=None):
    """ansible-playbook (json callback): (rc, changed count, facts, failure messages)."""
    path = tmp_path / "rollback.yml"
    path.write_text(yaml.safe_dump(play or PLAY, sort_keys=False))
    proc = run_cmd([str(BIN / "ansible-playbook"), "-i", inventory or str(LAB_INVENTORY), str(path), "--diff"]
                   + (["--check"] if check else []),
                   env=dict(env or {}, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"), timeout=600)
    try:
        out = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        raise AssertionError("no JSON from ansible-playbook (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    facts, failures = None, []
    for play in out["plays"]:
        for task in play["tasks"]:
            res = task["hosts"].get(host, {})
            if task["task"]["name"] == "Facts":
                facts = res.get("msg")
            if res.get("failed"):
                failures.append(res.get("msg", ""))
    return proc.returncode, out["stats"].get(host, {}).get("changed", 0), facts, failures


@processes_lab_only
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


# --- kubernetes backend, against the fake API ----------------------------------------------------------------------

class StubNode:
    """/health, /health/live, /health/ready of a ready node (the health gate after the rollout)."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                data = {"/health": {"status": "healthy", "version": GOOD}, "/health/live": {"status": "alive"},
                        "/health/ready": {"status": "ready", "checks": {}}}.get(self.path)
                body = json.dumps({"success": data is not None, "data": data}).encode()
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def dead_url():
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return "http://127.0.0.1:%d" % sock.getsockname()[1]


# No cluster from the environment (run_cmd adds to os.environ): only the inventory's qflow_k8s_* can name one.
NO_CLUSTER_ENV = {"K8S_AUTH_KUBECONFIG": "", "K8S_AUTH_CONTEXT": "", "KUBECONFIG": ""}


def two_cluster_kubeconfig(tmp_path, url):
    """A kubeconfig whose context prod is the fake API and whose current context (other) is unreachable: a task
    without qflow_k8s_context, or one that ignored it, fails to connect."""
    from k8s_fake_api import kubeconfig  # noqa: E402
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig(None, contexts={"prod": url, "other": dead_url()}, current="other"))
    return path


K8S_PLAY = [{
    "name": "History and rollback of a Deployment",
    "hosts": "localhost",
    "connection": "local",
    "gather_facts": False,
    "tasks": PLAY[0]["tasks"],
}]


@pytest.mark.nolab  # the fake Kubernetes API on loopback
def test_kubernetes_rollback_four_steps(tmp_path):
    pytest.importorskip("kubernetes", reason="kubernetes.core needs the Python kubernetes library (requirements.txt)")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from k8s_fake_rollout import FakeKubeRollout  # noqa: E402

    node = StubNode()
    try:
        with FakeKubeRollout() as api:
            api.add_rollout("qflow", "qflow", ["registry.example/qflow:%s" % GOOD, "registry.example/qflow:%s" % BAD])
            assert api.deployment("qflow", "qflow")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
            inventory = tmp_path / "hosts.yml"
            inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
                "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "qflow_service_backend": "kubernetes", "qflow_k8s_namespace": "qflow",
                "qflow_k8s_deployment": "qflow",  # the older name of qflow_k8s_workload
                "qflow_k8s_kubeconfig": str(two_cluster_kubeconfig(tmp_path, api.url)), "qflow_k8s_context": "prod",
                "qflow_api_url": node.url, "qflow_service_gate_timeout": 10, "qflow_service_gate_delay": 1}}}}))
            env = NO_CLUSTER_ENV

            def go(check):
                return run(tmp_path, check=check, play=K8S_PLAY, inventory=str(inventory), host="localhost", env=env)

            before = api.deployment("qflow", "qflow")

            # 1. check: k8s_rollback in check mode patches nothing
            rc, changed, facts, failures = go(True)
            assert rc == 0 and not failures, failures
            hist = facts["history"]
            assert hist["current"] == "2" and hist["last_known_good"] == "1", hist
            assert [(e["revision"], e["images"], e["current"]) for e in hist["entries"]] == [
                (1, ["registry.example/qflow:%s" % GOOD], False), (2, ["registry.example/qflow:%s" % BAD], True)]
            rb = facts["rollback"]
            assert rb["changed"] is True and rb["from"] == "2" and rb["to"] == "1" and "check mode" in rb["detail"], rb
            assert api.deployment("qflow", "qflow") == before
            assert not [r for r in api.requests if r[0] == "PATCH" and "dryRun" not in r[2]]

            # 2. real: the template of revision 1 is back as revision 3, annotated rolled back and verified
            rc, changed, facts, failures = go(False)
            assert rc == 0 and not failures, failures
            rb = facts["rollback"]
            assert rb["changed"] is True and rb["to"] == "3" and rb["ready"] is True and rb["verified"] is True, rb
            dep = api.deployment("qflow", "qflow")
            assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/qflow:%s" % GOOD
            annotations = dep["metadata"]["annotations"]
            assert annotations["deployment.kubernetes.io/revision"] == "3"
            assert annotations["qflow.ops/rolled-back-to"] == "3" and annotations["qflow.ops/rolled-back-from"] == "2"
            assert annotations["qflow.ops/verified-revision"] == "3"
            assert any(r[0] == "PATCH" and r[3] == "application/json-patch+json" for r in api.requests)
            after = api.deployment("qflow", "qflow")

            # 3. check again, 4. real again: already rolled back, nothing patched (no rollback to the bad revision)
            for check in (True, False):
                patches = len([r for r in api.requests if r[0] == "PATCH"])
                rc, changed, facts, failures = go(check)
                assert rc == 0 and not failures and changed == 0, (check, changed, failures)
                assert facts["rollback"]["changed"] is False and "already rolled back" in facts["rollback"]["detail"]
                assert facts["history"]["current"] == "3" and facts["history"]["rolled_back_to"] == "3"
                assert api.deployment("qflow", "qflow") == after
                assert len([r for r in api.requests if r[0] == "PATCH"]) == patches
            assert not api.unknown, api.unknown
    finally:
        node.close()


STS_PLAY = [{
    "name": "Restart, then roll back, a StatefulSet",
    "hosts": "localhost",
    "connection": "local",
    "gather_facts": False,
    "tasks": [
        {"name": "Restart", "ansible.builtin.include_role": {"name": "qflow.ops.service", "tasks_from": "restart"}},
        {"name": "Facts", "ansible.builtin.debug": {"msg": {"gate": "{{ qflow_service_gate }}"}}},
        {"name": "Rollback", "ansible.builtin.include_role": {"name": "qflow.ops.deployment", "tasks_from": "rollback"}},
    ],
}]


@pytest.mark.nolab  # the fake Kubernetes API on loopback
def test_kubernetes_statefulset_restart_and_refused_rollback(tmp_path):
    pytest.importorskip("kubernetes", reason="kubernetes.core needs the Python kubernetes library (requirements.txt)")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from k8s_fake_api import FakeKubeAPI  # noqa: E402

    node = StubNode()
    try:
        with FakeKubeAPI() as api:
            api.add_statefulset("qflow", "qflow-eu-1")
            before = api.statefulset("qflow", "qflow-eu-1")
            config = two_cluster_kubeconfig(tmp_path, api.url)
            inventory = tmp_path / "hosts.yml"
            inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
                "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "qflow_service_backend": "kubernetes", "qflow_k8s_namespace": "qflow",
                "qflow_k8s_kind": "StatefulSet", "qflow_k8s_workload": "qflow-eu-1",
                "qflow_k8s_kubeconfig": str(config), "qflow_k8s_context": "prod",
                "qflow_api_url": node.url, "qflow_service_gate_timeout": 10, "qflow_service_gate_delay": 1}}}}))

            rc, changed, facts, failures = run(tmp_path, play=STS_PLAY, inventory=str(inventory), host="localhost",
                                               env=NO_CLUSTER_ENV)

            # the restart: one patch of the pod template, the rollout (a new revision) observed, the gate passed
            after = api.statefulset("qflow", "qflow-eu-1")
            assert "kubectl.kubernetes.io/restartedAt" in after["spec"]["template"]["metadata"]["annotations"]
            assert after["metadata"]["generation"] == 2 and after["status"]["observedGeneration"] == 2
            assert after["status"]["updateRevision"] != before["status"]["updateRevision"]
            assert facts["gate"]["ok"] is True, facts
            patches = [(p, ct) for m, p, q, ct in api.requests if m == "PATCH"]
            assert patches == [("/apis/apps/v1/namespaces/qflow/statefulsets/qflow-eu-1",
                                "application/strategic-merge-patch+json")], patches

            # the rollback: refused before any API call, saying what to run instead
            assert rc != 0 and len(failures) == 1, failures
            assert "StatefulSet qflow/qflow-eu-1 (qflow_k8s_kind)" in failures[0], failures
            assert ("kubectl --kubeconfig %s --context prod -n qflow rollout undo statefulset/qflow-eu-1 "
                    "--to-revision=<revision>" % config) in failures[0], failures
            assert not [r for r in api.requests if "deployments" in r[1] or "replicasets" in r[1]]
            assert api.statefulset("qflow", "qflow-eu-1") == after and not api.unknown, api.unknown
    finally:
        node.close()
