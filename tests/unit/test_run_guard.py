"""A procedure with no Qflow node to work on fails before anything runs (Ansible alone prints "no hosts matched" and
exits 0), naming the inventory and the target; nothing is written. No lab needed: nothing is reached."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROCEDURES = sorted(p.name for p in (ROOT / "playbooks").glob("*.yml") if "-" not in p.stem)


def play(tmp_path, playbook, inventory, *args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               QFLOW_REPORT_DIR=str(tmp_path / "reports"), QFLOW_INCIDENT_DIR=str(tmp_path / "incidents"))
    return subprocess.run([str(BIN / "ansible-playbook"), str(ROOT / "playbooks" / playbook), "-i", str(inventory), *args],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def other_hosts(tmp_path):
    """An inventory with hosts, none of them in qflow_nodes (the SSH address would fail if anything tried it)."""
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  children:\n    web:\n      hosts:\n        web-1: {ansible_host: 192.0.2.10}\n")
    return path


def assert_refused(proc, tmp_path, inventory, target="qflow_nodes"):
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "No Qflow node to work on: the target '%s' matches no host of the inventory %s" % (target, inventory) in out
    assert "Nothing was run" in out
    # refused by the first task, on the controller: no node was contacted, nothing changed
    assert "UNREACHABLE" not in out and "unreachable=0" in out and "changed=1" not in out
    tasks = [line for line in out.splitlines() if line.startswith("TASK [") and "Validating arguments" not in line]
    assert len(tasks) == 1 and "Check that the procedure has Qflow nodes" in tasks[0], out[-3000:]
    assert not (tmp_path / "reports").exists() and not (tmp_path / "incidents").exists()


@pytest.mark.parametrize("playbook", PROCEDURES)
def test_no_qflow_node_is_a_failure(tmp_path, other_hosts, playbook):
    assert_refused(play(tmp_path, playbook, other_hosts), tmp_path, other_hosts)


def test_missing_inventory_is_a_failure_not_a_pass(tmp_path):
    missing = tmp_path / "nowhere" / "hosts.yml"
    proc = play(tmp_path, "weekly-maintenance.yml", missing)  # the checkout alias behaves the same
    assert_refused(proc, tmp_path, missing)


def test_target_outside_the_limit_is_a_failure(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  children:\n    qflow_nodes:\n      hosts:\n        node-a: {ansible_host: 192.0.2.11}\n"
                   "    web:\n      hosts:\n        web-1: {ansible_host: 192.0.2.10}\n")
    proc = play(tmp_path, "morning_health_check.yml", inv, "--limit", "web-1")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "within --limit web-1" in out, out[-3000:]
    assert not (tmp_path / "reports").exists()
    proc = play(tmp_path, "morning_health_check.yml", inv, "-e", "qflow_target=qflow_nodes:!node-a")
    assert_refused(proc, tmp_path, inv, target="qflow_nodes:!node-a")


def test_playbook_aliases_are_thin(tmp_path):
    """playbooks/<name-with-hyphens>.yml only imports the one definition, playbooks/<name_with_underscores>.yml."""
    for alias in (ROOT / "playbooks").glob("*-*.yml"):
        target = alias.stem.replace("-", "_") + ".yml"
        assert (ROOT / "playbooks" / target).is_file()
        lines = [line for line in alias.read_text().splitlines() if line.strip() and not line.startswith(("#", "---"))]
        assert len(lines) == 2 and lines[1].strip() == "ansible.builtin.import_playbook: %s" % target, alias
    assert len(list((ROOT / "playbooks").glob("*-*.yml"))) == len(PROCEDURES)
