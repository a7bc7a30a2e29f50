"""Nightly backup against the lab: the four steps, and a corrupted archive."""

from __future__ import annotations

import json

import pytest

import qflow_ops
from labtest import LAB_NODES, lab_hosts, scratch

NODE_NAMES = []


def _with_backup_dirs(inventory_copy, base):
    """Each node's backup dir in a per-test dir (labtest.scratch: on the node, read from the controller)."""
    def edit(data):
        NODE_NAMES[:] = sorted(lab_hosts(data))
        for name, host in lab_hosts(data).items():
            host["qflow_backup_dir"] = scratch(base, name)[0]
    return inventory_copy(edit)


def _dir(base, node):
    return scratch(base, node)[1]


def _archives(base):
    return sorted(p.name for n in NODE_NAMES if _dir(base, n).exists()
                  for p in _dir(base, n).rglob("qflow-backup-*.tar.gz"))


def _changed(result):
    """Changed tasks on the nodes (the controller's report write is not a change to a node)."""
    return sum(n for host, n in result.stats.get("changed", {}).items() if host != "localhost")


@pytest.mark.systemd  # production paths, archives written over SSH
def test_four_steps(lab_inventory, inventory_copy, tmp_path, report_dir):
    base = tmp_path / "backups"
    inv = _with_backup_dirs(inventory_copy, base)
    extra = {"qflow_backup_max_age": "1h"}

    # 1. check mode: would back up every node, writes nothing
    r1 = qflow_ops.run("nightly-backup", inv, extravars=extra, check=True, report_dir=report_dir)
    assert _archives(base) == []
    assert _changed(r1) >= LAB_NODES, r1.stats
    # 2. real: one verified archive per node
    r2 = qflow_ops.run("nightly-backup", inv, extravars=extra, report_dir=report_dir)
    assert r2.rc == 0, r2.stdout[-4000:]
    first = _archives(base)
    assert len(first) >= LAB_NODES
    assert all(c["ok"] for c in r2.report["checks"])
    catalog = json.loads((_dir(base, "qflow-node-1") / "catalog.json").read_text())
    assert catalog["backups"][0]["verified"] is True
    # 3. check mode again: nothing to do
    r3 = qflow_ops.run("nightly-backup", inv, extravars=extra, check=True, report_dir=report_dir)
    assert _changed(r3) == 0, r3.stats
    # 4. real again: nothing to do, no new archive
    r4 = qflow_ops.run("nightly-backup", inv, extravars=extra, report_dir=report_dir)
    assert r4.rc == 0
    assert _changed(r4) == 0, r4.stats
    assert _archives(base) == first


def test_corrupted_backup_fails_verification(lab_inventory, inventory_copy, tmp_path, report_dir):
    base = tmp_path / "backups"
    inv = _with_backup_dirs(inventory_copy, base)
    assert qflow_ops.run("nightly-backup", inv, report_dir=report_dir).rc == 0
    archive = sorted(_dir(base, "qflow-node-2").glob("qflow-backup-*.tar.gz"))[-1]
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    result = qflow_ops.run("morning-health-check", inv, extravars={"qflow_health_metrics_window": "1m"},
                           report_dir=report_dir)
    assert result.rc != 0
    backup = result.check("qflow-node-2", "backup")
    assert not backup["ok"] and archive.name in backup["detail"]
    assert result.check("qflow-node-1", "backup")["ok"]
