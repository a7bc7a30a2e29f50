"""bench/backup.py without the lab and without timing anything: argument parsing, the --window plan (--dry-run
runs nothing) and the node it builds for the throughput part."""

from __future__ import annotations

import importlib.util
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_backup", ROOT / "bench" / "backup.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_arguments(bench):
    args = bench.parse_args([])
    assert (args.size_mb, args.rounds, args.window, args.nodes) == (1024, None, False, [3, 10])
    for bad in (["--dry-run"], ["--rounds", "0"], ["--size-mb", "0"], ["--window", "--nodes", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_window_plan_restores_three_nodes(bench, tmp_path):
    plan = bench.window_plan([3, 10], 2, tmp_path)
    kinds = [k for k, _, _ in plan]
    assert kinds[-1] == "restore" and plan[-1][2][-2:] == ["--nodes", "3"]
    assert [n for k, n, _ in plan if k == "real"] == [3, 3, 10, 10]
    for i, kind in enumerate(kinds):  # every timed window follows a fresh rotation state and a ping
        if kind == "real":
            assert kinds[i - 3:i] == ["fresh", "ping", "check"]
            assert "--check" in plan[i - 1][2] and "--check" not in plan[i][2]
    extra = bench.window_extra(tmp_path / "r3-0")
    assert extra["qflow_backup_dir"].startswith(str(tmp_path)) and extra["qflow_cert_path"].startswith(str(tmp_path))


def test_window_dry_run_touches_nothing(bench, monkeypatch, capsys):
    def refuse(*a, **k):
        raise AssertionError("--dry-run ran %r" % (a,))
    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(bench, "_forget_jwt_age", refuse)
    bench.main(["--window", "--dry-run", "--nodes", "3", "10"])
    out = capsys.readouterr().out
    assert "weekly-maintenance.yml" in out and out.count("restore") == 1


def test_node_built_like_a_running_lab_node(bench, tmp_path):
    nd, store = bench.build_node(tmp_path, 2)
    try:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert (nd / "data" / "state.db-wal").stat().st_size > 0  # the node's connection holds a live WAL
        assert bench.node_bytes(nd) >= 2 * bench.MB
    finally:
        store.db.close()
    db = sqlite3.connect(str(nd / "data" / "state.db"))
    counts = {t: db.execute("SELECT COUNT(*) FROM %s" % t).fetchone()[0] for t in ("flows", "ownership", "executions")}
    db.close()
    assert counts["flows"] == counts["ownership"] > 0 and counts["executions"] > counts["flows"]
    assert list(yaml.safe_load((nd / "etc" / "qflow-config.yaml").read_text())) == ["qflow"]
    env = nd / "etc" / "qflow.env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600 and "QFLOW_JWT_SECRET=" in env.read_text()


def test_adhoc_result(bench):
    out = 'localhost | CHANGED => {\n    "backup": {"id": "x", "verified": true}, "changed": true\n}\n'
    assert bench.adhoc_result(out)["backup"]["verified"] is True
    assert bench.adhoc_result("localhost | FAILED! => garbage") == {}
