#!/usr/bin/env python3
"""Benchmark: the morning health check on N lab nodes against `ansible all -m ansible.builtin.ping`.

Both run over the same inventory in the same invocation, so the ratio is comparable across machines.
Usage: .venv/bin/python bench/health_check.py [--nodes 10 50] [--rounds 2]
Not a test: it prints numbers and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
INVENTORY = ROOT / "inventories" / "lab" / "hosts.yml"


def timed(args, env):
    start = time.monotonic()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    return time.monotonic() - start, proc.returncode, proc.stdout[-2000:] + proc.stderr[-2000:]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workload-rate", type=float, default=0.5, help="executions per second per lab node")
    args = ap.parse_args()
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
    rows = []
    for n in args.nodes:
        subprocess.run([str(BIN / "qflow-lab"), "up", "--nodes", str(n), "--workload-rate", str(args.workload_rate)],
                       cwd=ROOT, check=True)
        report_dir = tempfile.mkdtemp(prefix="qflow-bench-")
        env_run = dict(env, QFLOW_REPORT_DIR=report_dir)
        subprocess.run([str(BIN / "ansible-playbook"), "playbooks/nightly-backup.yml", "-i", str(INVENTORY)],
                       cwd=ROOT, env=env_run, capture_output=True, check=False)
        ping, check = [], []
        for _ in range(args.rounds):  # interleaved rounds
            t, rc, out = timed([str(BIN / "ansible"), "qflow_nodes", "-i", str(INVENTORY), "-m", "ansible.builtin.ping"], env_run)
            if rc != 0:
                sys.exit("ping failed:\n" + out)
            ping.append(t)
            t, rc, out = timed([str(BIN / "ansible-playbook"), "playbooks/morning-health-check.yml", "-i", str(INVENTORY)], env_run)
            if rc != 0:
                print("note: health check exit %d on %d nodes (a red item, not a bench error)" % (rc, n))
            check.append(t)
        p, c = statistics.median(ping), statistics.median(check)
        rows.append((n, p, c, c / p))
    print()
    print("| nodes | ansible ping (s) | morning health check (s) | ratio |")
    print("|---:|---:|---:|---:|")
    for n, p, c, r in rows:
        print("| %d | %.2f | %.2f | %.2f |" % (n, p, c, r))
    print("(median of %d interleaved rounds each; ping = `ansible qflow_nodes -m ansible.builtin.ping`)" % args.rounds)


if __name__ == "__main__":
    main()
