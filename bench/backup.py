#!/usr/bin/env python3
"""Benchmark: backup create + verify throughput against `tar` + `sha256sum`, and the weekly window's wall time.

Throughput (default; no running lab needed): builds one node in a temp dir under build/ -- a state.db in WAL mode
with the reference node's schema (lab/qflow_lab/node/store.py) filled with flows and executions up to --size-mb, the
config and env files as `qflow-lab up` writes them -- with a connection kept open as a running node would (a live
-wal file), then times in interleaved rounds, in the same invocation:
  (a) `ansible localhost -m qflow.ops.backup` verify=true (stage with the SQLite online backup, archive, verify)
  (b) `ansible localhost -m qflow.ops.backup_info` verify=true of that backup
  (c) baseline create: `tar -czf` of the same data dir + config, then `sha256sum` of the archive
  (d) baseline verify: `sha256sum -c` of that archive, `tar -tzf` (a full gunzip pass), `sha256sum` of every file
(a) and (b) include Ansible's overhead (one ad-hoc run each); `ansible localhost -m ping` is timed in the same rounds
to show it. MiB/s = bytes of the node's files (data dir incl. -wal/-shm, config) / median wall time.
  .venv/bin/python bench/backup.py [--size-mb 1024] [--rounds 3] [--work-dir DIR] [--keep]

Weekly window (--window; needs the processes lab, which it reconfigures): for each --nodes count, `qflow-lab up`,
then per round: the JWT secrets' age is forgotten and tokens re-signed (so every real run rotates, restarts and
takes a backup, like the first window of a week; untimed), then timed `ansible qflow_nodes -m ping`,
`ansible-playbook playbooks/weekly-maintenance.yml --check` and the real window. Backups, baselines and certificates
go to a temp dir per round, reports to a temp dir. The real window rotates the lab nodes' JWT secrets and restarts
them. The lab is left with 3 nodes at the end (also on error).
  .venv/bin/python bench/backup.py --window [--nodes 3 10] [--rounds 1] [--dry-run]

Not a test: it prints numbers and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
INVENTORY = ROOT / "inventories" / "lab" / "hosts.yml"
NODE = "qflow-node-1"
MB = 1024 * 1024
# what tests/integration/test_weekly_maintenance.py uses against the lab (a 2 m baseline window, wide tolerances:
# the lab shares the CPU with the playbook), and per-round dirs for what the window writes beside the node
WINDOW_TOLERANCES = {"cpu_percent": 1000, "memory_percent": 100, "execution_p95_seconds": 300,
                     "node_selection_p95_ms": 300, "flow_success_rate": 5}
RESTORE_NODES = 3


def ansible_env(**more):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json", PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
    env.update(more)
    return env


def timed(args, env=None, shell=False):
    start = time.monotonic()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, shell=shell,
                          executable="/bin/bash" if shell else None)
    return time.monotonic() - start, proc.returncode, proc.stdout[-3000:] + proc.stderr[-3000:]


# ---------------------------------------------------------------------------------------------- node with ~N MB state
def _lab_imports():
    sys.path.insert(0, str(ROOT / "lab"))
    from qflow_lab import render  # noqa: E402  (lab/ is not a package of the collection)
    from qflow_lab.node import flows as flowlib
    from qflow_lab.node.engine import ERROR_TEMPLATES, WORKLOAD_OWNER, builtin_flows
    from qflow_lab.node.store import Store
    return render, flowlib, Store, builtin_flows, WORKLOAD_OWNER, ERROR_TEMPLATES


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".%03dZ" % int((ts % 1) * 1000)


def _flow_doc(rng, i, templates, owner, flowlib, now):
    base = templates[i % len(templates)]
    steps = []
    n = rng.randint(2, 8)
    for k in range(1, n + 1):
        step = {"id": "step-%d" % k, "type": rng.choice(("task", "module-call", "condition", "parallel",
                                                          "event-trigger")),
                "action": rng.choice(("qindex.put", "transform", "publish", "aggregate", "check-window",
                                      "emit-heartbeat", "receive-batch", "qlock.sign", "qonsent.check")),
                "params": {"batchSize": rng.choice((10, 50, 100, 500)), "target": "dao.public.%d" % rng.randint(1, 40)}}
        if k < n:
            step["onSuccess"] = "step-%d" % (k + 1)
        steps.append(step)
    created = now - rng.uniform(0, 180 * 86400)
    flow = dict(base, id="flow-%s" % uuid.UUID(int=rng.getrandbits(128), version=4),
                name="%s %d" % (base["name"], i), owner=owner if i % 5 == 0 else "squid:user:%d" % rng.randint(1, 500),
                steps=steps, createdAt=_iso(created), updatedAt=_iso(created + rng.uniform(0, 86400)))
    flow["metadata"] = dict(base["metadata"], category=rng.choice(("monitoring", "data", "reporting", "governance")),
                            visibility=rng.choice(("public", "dao-only", "private")),
                            tags=rng.sample(["lab", "workload", "etl", "nightly", "dao", "alerts", "billing"], 3))
    return flowlib.normalise(flow)


def _execution_doc(rng, flow, node_id, templates, start):
    steps = [s["id"] for s in flow["steps"][:3]]
    r = rng.random()
    status = "completed" if r < 0.97 else "failed" if r < 0.995 else "aborted"
    end = start + rng.uniform(0.05, 0.6)
    done = steps if status == "completed" else steps[:rng.randrange(len(steps))]
    ex = {"executionId": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "flowId": flow["id"], "status": status,
          "currentStep": None if status == "completed" else steps[len(done)],
          "completedSteps": done, "failedSteps": [steps[len(done)]] if status == "failed" else [],
          "context": {"triggeredBy": flow["owner"], "triggerType": rng.choice(("schedule", "manual", "event")),
                      "inputData": {"batch": rng.randint(1, 10 ** 6), "source": "dao.public.%d" % rng.randint(1, 40)},
                      "variables": {}, "daoSubnet": "dao.public.default", "permissions": ["flow:execute"]},
          "startTime": _iso(start), "checkpoints": [{"stepId": s, "timestamp": _iso(start + 0.1 * (k + 1))}
                                                    for k, s in enumerate(done)],
          "nodeAssignments": {s: node_id for s in steps}, "endTime": _iso(end)}
    if status == "failed":
        kind, tmpl = rng.choice(templates)
        ex["error"] = {"type": kind, "message": tmpl.format(step=ex["currentStep"], ms=3000, eid=ex["executionId"], n=3,
                                                            mb=512, lim=256),
                       "stepId": ex["currentStep"], "timestamp": _iso(end)}
    return ex


def _db_bytes(db):
    """The database's size as committed (its pages, WAL included; not the -wal file, which a long transaction grows)."""
    return db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]


def build_node(work, size_mb, seed=1):
    """A node dir like the lab's (etc/qflow-config.yaml, etc/qflow.env 0600, data/state.db, log/) whose state.db
    holds flows (about 5 % of it, with ownership and permissions) and executions up to size_mb. Returns
    (node_dir, store): the Store stays open with a few MB in its -wal file, as on a running node."""
    render, flowlib, Store, builtin_flows, owner, templates = _lab_imports()
    rng = random.Random(seed)
    nd = Path(work) / "nodes" / NODE
    for sub in ("etc", "data", "log"):
        (nd / sub).mkdir(parents=True, exist_ok=True)
    (nd / "etc" / "qflow-config.yaml").write_text(render.dump_yaml(render.node_config(1)))
    env = nd / "etc" / "qflow.env"
    env.write_text(render.node_env(1, str(nd), "%064x" % rng.getrandbits(256), "%064x" % rng.getrandbits(256)))
    env.chmod(0o600)
    store = Store(str(nd / "data"))
    db = store.db
    target = size_mb * MB
    now = time.time()
    flows = []
    seq = 0
    t0 = time.monotonic()
    while _db_bytes(db) < target:
        if len(flows) * 1.0 < 50 + 0.05 * _db_bytes(db) / 1200:  # about 5 % of the bytes are flows
            rows = [_flow_doc(rng, seq + k, builtin_flows(), owner, flowlib, now) for k in range(500)]
            seq += len(rows)
            db.execute("BEGIN")
            db.executemany("INSERT INTO flows (id, seq, owner, category, visibility, tags, doc, created_at, updated_at,"
                           " ipfs_cid) VALUES (?,?,?,?,?,?,?,?,?,?)",
                           [(f["id"], seq - len(rows) + k + 1, f["owner"], f["metadata"]["category"],
                             f["metadata"]["visibility"], json.dumps(f["metadata"]["tags"]), json.dumps(f),
                             f["createdAt"], f["updatedAt"], None) for k, f in enumerate(rows)])
            db.executemany("INSERT INTO ownership (flow_id, owner, created, last_modified, history) VALUES (?,?,?,?,?)",
                           [(f["id"], f["owner"], f["createdAt"], f["updatedAt"], "[]") for f in rows])
            db.executemany("INSERT OR REPLACE INTO permissions (flow_id, granted_to, permission, doc) VALUES (?,?,?,?)",
                           [(f["id"], g, "flow:execute", json.dumps({"grantedTo": g, "permission": "flow:execute",
                                                                     "grantedBy": f["owner"], "grantedAt": f["updatedAt"]}))
                            for f in rows for g in ("squid:user:%d" % rng.randint(1, 500),)])
            db.execute("COMMIT")
            flows.extend(rows)
        batch = []
        for _ in range(5000):
            flow = flows[rng.randrange(len(flows))]
            ex = _execution_doc(rng, flow, NODE, templates, now - rng.uniform(0, 90 * 86400))
            batch.append((ex["executionId"], ex["flowId"], ex["status"], ex["context"]["triggeredBy"],
                          int(_ts_ms(ex["startTime"])), json.dumps(ex)))
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO executions (id, flow_id, status, triggered_by, start_ms, doc) "
                       "VALUES (?,?,?,?,?,?)", batch)
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # the running node: recent executions still in the -wal file (no checkpoint until the backup)
    db.execute("PRAGMA wal_autocheckpoint=0")
    for _ in range(2):
        flow = flows[rng.randrange(len(flows))]
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO executions (id, flow_id, status, triggered_by, start_ms, doc) "
                       "VALUES (?,?,?,?,?,?)",
                       [(e["executionId"], e["flowId"], e["status"], e["context"]["triggeredBy"], int(now * 1000),
                         json.dumps(e)) for e in (_execution_doc(rng, flow, NODE, templates, now) for _ in range(1000))])
        db.execute("COMMIT")
    counts = {t: db.execute("SELECT COUNT(*) FROM %s" % t).fetchone()[0] for t in ("flows", "executions")}
    print("node built in %.1f s: %s (%d flows, %d executions; state.db %.1f MiB + -wal %.1f MiB, journal_mode %s)"
          % (time.monotonic() - t0, nd, counts["flows"], counts["executions"],
             (nd / "data" / "state.db").stat().st_size / MB, (nd / "data" / "state.db-wal").stat().st_size / MB,
             db.execute("PRAGMA journal_mode").fetchone()[0]), flush=True)
    return nd, store


def _ts_ms(iso_text):
    import calendar
    base, frac = iso_text[:19], iso_text[20:23]
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac)


def node_bytes(nd):
    files = [p for p in (nd / "data").rglob("*") if p.is_file()] + [nd / "etc" / "qflow-config.yaml"]
    return sum(p.stat().st_size for p in files)


# ---------------------------------------------------------------------------------------------- throughput
def adhoc(module, params):
    args = " ".join("%s=%s" % (k, shlex.quote(str(v))) for k, v in params.items())
    return [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
            "-e", "ansible_python_interpreter=%s" % sys.executable, "-m", module] + (["-a", args] if args else [])


def adhoc_result(out):
    """The JSON result of `ansible localhost -m ...` (ANSIBLE_CALLBACK_RESULT_FORMAT=json)."""
    text = out[out.index("=>") + 2:] if "=>" in out else "{}"
    try:
        return json.JSONDecoder().raw_decode(text.strip())[0]
    except ValueError:
        return {}


def throughput(args):
    build = ROOT / "build"
    build.mkdir(exist_ok=True)
    parent = Path(args.work_dir) if args.work_dir else build
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    need = args.size_mb * MB * 4  # state.db, the module's staged copy, its archive, tar's archive
    if free < need:
        sys.exit("not enough space in %s: %.1f GB free, %.1f GB needed" % (parent, free / 1e9, need / 1e9))
    work = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=parent))
    store = None
    try:
        nd, store = build_node(work, args.size_mb)
        size = node_bytes(nd)
        env = ansible_env(TMPDIR=str(work))  # the module's staging copy goes beside the data, not to a small /tmp
        results = {k: [] for k in ("ping", "create", "verify", "tar_create", "tar_verify")}
        sizes = {}
        tar = work / "baseline.tar.gz"
        baseline_create = ("set -euo pipefail; tar -czf %s -C %s data etc/qflow-config.yaml; sha256sum %s > %s.sha256"
                           % (tar, nd, tar, tar))
        baseline_verify = ("set -euo pipefail; sha256sum -c --quiet %s.sha256; tar -tzf %s > /dev/null; "
                           "cd %s && find data etc/qflow-config.yaml -type f -print0 | xargs -0 sha256sum > /dev/null"
                           % (tar, tar, nd))
        for r in range(args.rounds):
            backup_dir = work / ("backups-%d" % r)

            def module_pair():
                t, rc, out = timed(adhoc("qflow.ops.backup", {
                    "node_id": NODE, "data_dir": nd / "data", "config_path": nd / "etc" / "qflow-config.yaml",
                    "env_path": nd / "etc" / "qflow.env", "backup_dir": backup_dir, "verify": "true"}), env)
                res = adhoc_result(out)
                if rc != 0 or not (res.get("backup") or {}).get("verified"):
                    sys.exit("qflow.ops.backup failed (rc %d):\n%s" % (rc, out))
                results["create"].append(t)
                sizes["qflow.ops.backup archive"] = res["backup"]["size"]
                t, rc, out = timed(adhoc("qflow.ops.backup_info", {
                    "backup_dir": backup_dir, "backup_id": res["backup"]["id"], "verify": "true"}), env)
                info = adhoc_result(out)
                if rc != 0 or not (info.get("verification") or {}).get(res["backup"]["id"], {}).get("ok"):
                    sys.exit("qflow.ops.backup_info verify failed (rc %d):\n%s" % (rc, out))
                results["verify"].append(t)

            def baseline_pair():
                for key, script in (("tar_create", baseline_create), ("tar_verify", baseline_verify)):
                    t, rc, out = timed(script, shell=True)
                    if rc != 0:
                        sys.exit("baseline failed (%s):\n%s" % (key, out))
                    results[key].append(t)
                sizes["tar -czf archive"] = tar.stat().st_size

            t, rc, out = timed(adhoc("ansible.builtin.ping", {}), env)
            if rc != 0:
                sys.exit("ansible localhost ping failed:\n" + out)
            results["ping"].append(t)
            for step in ((module_pair, baseline_pair) if r % 2 == 0 else (baseline_pair, module_pair)):
                step()  # interleaved, the order alternating between rounds
            shutil.rmtree(backup_dir, ignore_errors=True)
            tar.unlink()
            print("round %d/%d: %s" % (r + 1, args.rounds, ", ".join("%s %.2f s" % (k, v[-1]) for k, v in results.items())),
                  flush=True)
        med = {k: statistics.median(v) for k, v in results.items()}
        report_throughput(args, size, sizes, med)
    finally:
        if store is not None:
            store.db.close()
        if args.keep:
            print("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def report_throughput(args, size, sizes, med):
    mbps = {k: size / MB / v for k, v in med.items()}
    both = med["tar_create"] + med["tar_verify"]
    print()
    print("| step | qflow.ops (s) | MiB/s | baseline (s) | MiB/s | ratio qflow.ops / baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    print("| create: `backup` verify=true vs `tar -czf` + `sha256sum` | %.2f | %.1f | %.2f | %.1f | %.2f |"
          % (med["create"], mbps["create"], med["tar_create"], mbps["tar_create"], med["create"] / med["tar_create"]))
    print("| create: `backup` verify=true vs baseline create + verify (sum of medians) | %.2f | %.1f | %.2f | %.1f | %.2f |"
          % (med["create"], mbps["create"], both, size / MB / both, med["create"] / both))
    print("| verify: `backup_info` verify=true vs `sha256sum -c` + `tar -tzf` + `sha256sum` files | %.2f | %.1f | %.2f | %.1f | %.2f |"
          % (med["verify"], mbps["verify"], med["tar_verify"], mbps["tar_verify"], med["verify"] / med["tar_verify"]))
    print("(median of %d interleaved rounds; node files %.1f MiB = data dir incl. -wal/-shm + config; archives: %s;"
          % (args.rounds, size / MB, ", ".join("%s %.1f MiB" % (k, v / MB) for k, v in sizes.items())))
    print(" qflow.ops.backup writes gzip level 9 (Python tarfile), tar -czf level 6; qflow.ops times include one ad-hoc"
          " `ansible localhost` run each; `ansible localhost -m ping` took %.2f s)" % med["ping"])


# ---------------------------------------------------------------------------------------------- weekly window
def window_extra(base):
    return {"qflow_backup_dir": "%s/{{ inventory_hostname }}/backups" % base,
            "qflow_cert_path": "%s/{{ inventory_hostname }}/tls/qflow.crt" % base,
            "qflow_cert_key_path": "%s/{{ inventory_hostname }}/tls/qflow.key" % base,
            "qflow_maint_baseline_path": "{{ qflow_backup_dir | dirname }}/perf-baseline.json",
            "qflow_maint_baseline_window": "2m", "qflow_maint_baseline_tolerances": WINDOW_TOLERANCES,
            "qflow_maint_gate_timeout": 30}


def window_plan(nodes, rounds, work):
    """The steps of --window, in order: (kind, label, argv or None). kind: setup (untimed), fresh (forget the JWT
    secrets' age, untimed), ping / check / real (timed), restore (always, last)."""
    lab = str(BIN / "qflow-lab")
    steps = []
    for n in nodes:
        steps.append(("setup", n, [lab, "up", "--nodes", str(n)]))
        for r in range(rounds):
            extra = "@%s" % (Path(work) / ("extra-%d-%d.json" % (n, r)))
            play = [str(BIN / "ansible-playbook"), "playbooks/weekly-maintenance.yml", "-i", str(INVENTORY), "-e", extra]
            steps.append(("fresh", n, [lab, "up", "--nodes", str(n)]))
            steps.append(("ping", n, [str(BIN / "ansible"), "qflow_nodes", "-i", str(INVENTORY), "-m", "ansible.builtin.ping"]))
            steps.append(("check", n, play + ["--check"]))
            steps.append(("real", n, play))
    steps.append(("restore", RESTORE_NODES, [lab, "up", "--nodes", str(RESTORE_NODES)]))
    return steps


def _forget_jwt_age(n):
    """Remove <env>.meta.json of nodes 1..n (qflow.ops.secret's age record) so the window rotates the secret."""
    import yaml
    hosts = yaml.safe_load(INVENTORY.read_text())["all"]["children"]["qflow_nodes"]["hosts"]
    for name, hv in hosts.items():
        if int(name.rsplit("-", 1)[1]) <= n:
            Path(hv["qflow_env_path"] + ".meta.json").unlink(missing_ok=True)


def window(args):
    rounds = args.rounds or 1
    work = Path(tempfile.mkdtemp(prefix="bench-window-", dir=args.work_dir)) if not args.dry_run else Path("<tmp>")
    plan = window_plan(args.nodes, rounds, work)
    if args.dry_run:
        for kind, n, argv in plan:
            print("%-7s %3s  %s" % (kind, n, " ".join(shlex.quote(a) for a in argv)))
        print("extra vars per round (%s/extra-<nodes>-<round>.json): %s"
              % (work, json.dumps(window_extra("%s/r<nodes>-<round>" % work))))
        return
    env = ansible_env(QFLOW_REPORT_DIR=str(work / "reports"), ANSIBLE_CALLBACK_RESULT_FORMAT="yaml")
    times = {}
    try:
        round_of = {}
        for kind, n, argv in plan:
            if kind == "restore":
                continue
            if kind in ("setup", "fresh"):
                if kind == "fresh":
                    _forget_jwt_age(n)
                    r = round_of[n] = round_of.get(n, -1) + 1
                    (work / ("extra-%d-%d.json" % (n, r))).write_text(json.dumps(window_extra(work / ("r%d-%d" % (n, r)))))
                subprocess.run(argv, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
                continue
            t, rc, out = timed(argv, env)
            if rc != 0:
                if kind == "ping":
                    sys.exit("ping failed on %d nodes:\n%s" % (n, out))
                print("note: %s window exit %d on %d nodes (a red item, not a bench error):\n%s"
                      % (kind, rc, n, out[-1500:]))
            times.setdefault((n, kind), []).append(t)
            print("%d nodes, round %d: %s %.1f s" % (n, round_of[n] + 1, kind, t), flush=True)
    finally:
        kind, n, argv = plan[-1]
        print("restoring the lab to %d nodes" % n, flush=True)
        subprocess.run(argv, cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL)
        if args.keep:
            print("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report_window(args.nodes, rounds, times)


def report_window(nodes, rounds, times):
    print()
    print("| nodes | ansible ping (s) | window --check (s) | s/node | window (s) | s/node | check/ping | window/ping |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in nodes:
        p, c, w = (statistics.median(times[(n, k)]) for k in ("ping", "check", "real"))
        print("| %d | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |" % (n, p, c, c / n, w, w / n, c / p, w / p))
    print("(median of %d round(s); every real window rotates the JWT secret, restarts each node rolling (serial 1) "
          "and takes a backup; ping = `ansible qflow_nodes -m ansible.builtin.ping`)" % rounds)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024, help="state.db size of the node in MiB (throughput)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3; with --window 1)")
    ap.add_argument("--work-dir", help="parent of the temp dir (default build/ for throughput, the system temp dir "
                                       "for --window)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--window", action="store_true", help="time the weekly window on the lab instead")
    ap.add_argument("--nodes", type=int, nargs="+", default=[3, 10], help="lab sizes for --window")
    ap.add_argument("--dry-run", action="store_true", help="--window: print the plan, touch nothing")
    args = ap.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.size_mb < 1:
        ap.error("--size-mb must be at least 1")
    if any(n < 1 or n > 254 for n in args.nodes):
        ap.error("--nodes must be between 1 and 254")
    if args.dry_run and not args.window:
        ap.error("--dry-run goes with --window")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.window:
        window(args)
    else:
        args.rounds = args.rounds or 3
        throughput(args)


if __name__ == "__main__":
    main()
