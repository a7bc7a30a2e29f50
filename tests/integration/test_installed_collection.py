"""The collection as users install it: built from this checkout while the lab is up, installed into an empty
collections path, and run from another directory, by FQCN with ansible-playbook and through a pip-installed qflow_ops
(the checkout plays no part: no ansible.cfg, no collections/ link, no playbooks/ path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labtest import BIN, LAB_INVENTORY, ROOT, SYSTEMD, lab_hosts

pytestmark = [pytest.mark.skipif(SYSTEMD, reason="controller-side packaging; proven once, on the processes lab"),
              pytest.mark.early]  # make test: first phase, beside make check (long, mostly waiting; holds under contention)


def clean_env(**extra):
    """The environment of a user outside the checkout: no checkout config or collections path, no repo on sys.path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "QFLOW_", "PYTEST", "PYTHON"))}
    env.update(PATH=str(BIN) + os.pathsep + env.get("PATH", ""), ANSIBLE_NOCOLOR="1", **extra)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory, lab_inventory):
    base = tmp_path_factory.mktemp("installed")
    build = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(ROOT), "--output-path", str(base)],
                           cwd=base, capture_output=True, text=True, env=clean_env(), timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = next(base.glob("qflow-ops-*.tar.gz"))
    collections = base / "collections"
    # the dependencies (community.general, …) come with the ansible package, as on a controller that has it
    inst = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(collections),
                           "--no-deps"], cwd=base, capture_output=True, text=True, env=clean_env(), timeout=300)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    return base, tarball, collections


def one_node_inventory(path):
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    hosts = lab_hosts(data)
    for name in [n for n in hosts if n != "qflow-node-1"]:
        del hosts[name]
    path.write_text(yaml.safe_dump(data))
    return path


def test_tarball_holds_one_definition_per_playbook_and_no_lab_state(installed):
    _, tarball, collections = installed
    names = subprocess.run(["tar", "tzf", str(tarball)], capture_output=True, text=True, check=True).stdout.split()
    playbooks = sorted(n for n in names if n.startswith("playbooks/") and n.endswith(".yml"))
    assert playbooks and all("-" not in n for n in playbooks), playbooks
    assert {"playbooks/morning_health_check.yml", "playbooks/weekly_maintenance.yml"} <= set(playbooks)
    assert not [n for n in names if n.startswith((".lab", "lab/", "inventories/lab", "reports/", ".venv", "qflow_ops"))]
    manifest = json.loads((collections / "ansible_collections/qflow/ops/MANIFEST.json").read_text())
    assert set(manifest["collection_info"]["dependencies"]) == {
        "community.general", "community.docker", "kubernetes.core", "community.crypto"}


def test_procedure_runs_by_fqcn_from_another_directory(installed, green_lab, tmp_path):
    _, _, collections = installed
    work = tmp_path / "ops"
    work.mkdir()
    inventory = one_node_inventory(work / "hosts.yml")
    for playbook in ("qflow.ops.nightly_backup", "qflow.ops.morning_health_check"):  # the check wants a fresh backup
        proc = subprocess.run([str(BIN / "ansible-playbook"), playbook, "-i", str(inventory),
                               "-e", "qflow_health_metrics_window=1m"], cwd=work, capture_output=True, text=True,
                              env=clean_env(ANSIBLE_COLLECTIONS_PATH=str(collections)), timeout=600)
        assert proc.returncode == 0, playbook + proc.stdout[-4000:] + proc.stderr[-2000:]
    assert str(collections) in proc.stdout or "qflow.ops" in proc.stdout
    report = json.loads((work / "reports" / "morning-health-check" / "latest" / "report.json").read_text())
    assert report["result"] == "pass" and report["summary"]["items"] > 5 and list(report["nodes"]) == ["qflow-node-1"]
    assert not (collections / "ansible_collections/qflow/ops/reports").exists(), "nothing is written into the collection"
    # the hyphenated name is a checkout alias only; the installed collection refuses it clearly
    bad = subprocess.run([str(BIN / "ansible-playbook"), "qflow.ops.morning-health-check", "-i", str(inventory)],
                         cwd=work, capture_output=True, text=True,
                         env=clean_env(ANSIBLE_COLLECTIONS_PATH=str(collections)), timeout=120)
    assert bad.returncode != 0


def test_zero_targets_fail_from_the_installed_collection(installed, tmp_path):
    _, _, collections = installed
    empty = tmp_path / "empty.yml"
    empty.write_text("all:\n  children:\n    qflow_nodes: {}\n")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "qflow.ops.weekly_maintenance", "-i", str(empty)],
                          cwd=tmp_path, capture_output=True, text=True,
                          env=clean_env(ANSIBLE_COLLECTIONS_PATH=str(collections)), timeout=120)
    assert proc.returncode != 0 and "No Qflow node to work on" in proc.stdout + proc.stderr
    assert not (tmp_path / "reports").exists()


def test_pip_installed_qflow_ops_runs_the_installed_collection(installed, green_lab, tmp_path):
    _, _, collections = installed
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--target", str(site), str(ROOT)], capture_output=True, text=True, env=clean_env(),
                         timeout=600)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    inventory = one_node_inventory(work / "hosts.yml")
    code = (
        "import json, qflow_ops\n"
        "assert qflow_ops.__file__.startswith(%r), qflow_ops.__file__\n"
        "r = qflow_ops.run('performance-review', 'hosts.yml', extravars={'qflow_perf_window': '1m'})\n"
        "print(json.dumps({'procedures': qflow_ops.PROCEDURES, 'rc': r.rc, 'ok': r.ok, 'dir': str(r.report_dir),"
        " 'nodes': sorted((r.report or {}).get('nodes', {})), 'tail': r.stdout[-3000:]}))\n" % str(site))
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=600,
                          env=clean_env(PYTHONPATH=str(site), ANSIBLE_COLLECTIONS_PATH=str(collections)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = sorted(p.stem.replace("_", "-") for p in (ROOT / "playbooks").glob("*.yml") if "-" not in p.stem)
    assert sorted(out["procedures"]) == expected
    assert out["rc"] == 0 and out["ok"], out["tail"]
    assert out["dir"].startswith(str(work / "reports" / "performance-review")) and out["nodes"] == ["qflow-node-1"]
