"""The systemd profile of the lab (qflow-lab --profile systemd): real hosts in miniature.

Runs only with QFLOW_LAB_PROFILE=systemd (make test-systemd / QFLOW_LAB_PROFILE=systemd pytest tests/integration).
"""

from __future__ import annotations

import json

import pytest
import yaml

from labtest import BIN, SYSTEMD, lab_hosts, run_cmd

pytestmark = [pytest.mark.systemd, pytest.mark.skipif(not SYSTEMD, reason="needs QFLOW_LAB_PROFILE=systemd (qflow-lab --profile systemd)")]

STATUS_PLAY = """
- name: Service status through qflow.ops.service
  hosts: qflow_nodes
  gather_facts: false
  tasks:
    - name: Read the status
      ansible.builtin.include_role:
        name: qflow.ops.service
        tasks_from: status
    - name: The service runs
      ansible.builtin.assert:
        that: qflow_service_status.ok | bool
        fail_msg: "{{ qflow_service_status | to_json }}"
"""


def _deploy(inventory):
    hosts = lab_hosts(yaml.safe_load(inventory.read_text()))
    return next(iter(hosts.values()))["qflow_service_backend"], sorted(hosts)


def _ansible(inventory, module, arg):
    proc = run_cmd([str(BIN / "ansible"), "qflow_nodes", "-i", str(inventory), "-m", module, "-a", arg, "-o"],
                   timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if " | " in ln]
    return {ln.split(" | ", 1)[0]: ln for ln in lines}


def test_nodes_are_systemd_hosts(lab_inventory):
    backend, names = _deploy(lab_inventory)
    if backend != "systemd":
        pytest.skip("deploy %s: the node process is PID 1 of its container" % backend)
    pid1 = _ansible(lab_inventory, "ansible.builtin.command", "cat /proc/1/comm")
    active = _ansible(lab_inventory, "ansible.builtin.command", "systemctl is-active qflow.service ssh.service")
    files = _ansible(lab_inventory, "ansible.builtin.command",
                     "stat -c '%n %a' /etc/qflow/qflow-config.yaml /etc/qflow/qflow.env /var/lib/qflow/state.db "
                     "/var/log/qflow/qflow.log /var/backups/qflow")
    for name in names:
        assert "(stdout) systemd" in pid1[name], pid1[name]
        assert "(stdout) active\\nactive" in active[name], active[name]
        assert "/etc/qflow/qflow.env 600" in files[name] and "/var/lib/qflow/state.db" in files[name], files[name]


def test_service_role_status_runs(lab_inventory, tmp_path):
    play = tmp_path / "status.yml"
    play.write_text(STATUS_PLAY)
    proc = run_cmd([str(BIN / "ansible-playbook"), str(play), "-i", str(lab_inventory)], timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "failed=0" in proc.stdout and "unreachable=0" in proc.stdout


def test_lab_status_json(lab_inventory):
    proc = run_cmd([str(BIN / "qflow-lab"), "status", "--profile", "systemd", "--json"], timeout=120)
    status = json.loads(proc.stdout)
    assert proc.returncode == 0 and status["ok"], proc.stdout
    assert all(n["container"] == "running" and n["health"] == "ready" for n in status["nodes"])
