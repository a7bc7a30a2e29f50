"""qflow-lab: run N reference Qflow nodes + Prometheus + Alertmanager under supervisord (see lab/README.md)."""
import argparse
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

from . import releases, render
from .node.modes import all_disabled, write_modes_file
from .node.release import DEFECTS
from .tokens import make_token, operator_token

FAULT_KINDS = ("down", "not_ready", "slow", "errors", "validation", "cpu", "memory", "alert", "cache", "hang",
               "garbage", "ipfs_down")
PKG_DIR = os.path.dirname(os.path.abspath(__file__))
NODE_DIR_MODES = (("etc", 0o750), ("data", 0o750), ("log", 0o750), ("backups", 0o700))
LAB_SRC = os.path.dirname(PKG_DIR)


class LabError(Exception):
    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------ paths
def repo_root():
    for start in (PKG_DIR, os.getcwd()):
        d = start
        while True:
            if os.path.exists(os.path.join(d, "ansible.cfg")):
                return d
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
    return os.getcwd()


def lab_dir():
    return os.path.abspath(os.environ.get("QFLOW_LAB_DIR") or os.path.join(repo_root(), ".lab"))


def default_inventory():
    return os.path.join(repo_root(), "inventories", "lab", "hosts.yml")


def conf_path(lab):
    return os.path.join(lab, "supervisord.conf")


def node_dir(lab, name):
    return os.path.join(lab, "nodes", name)


def state_path(lab):
    return os.path.join(lab, "lab.json")


def read_state(lab):
    try:
        with open(state_path(lab)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def write_file(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def read_env(path):
    env = {}
    try:
        with open(path) as fh:
            for line in fh:
                if "=" in line and not line.lstrip().startswith("#"):
                    k, _, v = line.strip().partition("=")
                    env[k] = v
    except OSError:
        pass
    return env


def ensure_env_keys(path, wanted):
    """Append the keys of `wanted` missing from an existing env file (mode kept). Return the keys added."""
    have = read_env(path)
    missing = [k for k in wanted if k not in have]
    if missing:
        with open(path) as fh:
            text = fh.read()
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join("%s=%s\n" % (k, wanted[k]) for k in missing)
        write_file(path, text, os.stat(path).st_mode & 0o777)
    return missing


def modes_file(env_path):
    """The node's operating modes file (QFLOW_MODES_FILE, default qflow-modes.json next to the env file)."""
    return read_env(env_path).get("QFLOW_MODES_FILE") or os.path.join(os.path.dirname(env_path), "qflow-modes.json")


def clear_modes(env_path):
    """Lab convenience for heal: every operating mode disabled (the node polls the file). True when a mode was on."""
    return clear_modes_file(modes_file(env_path))


def clear_modes_file(path):
    try:
        with open(path) as fh:
            was_on = any(e.get("enabled") for e in json.load(fh).get("modes", {}).values() if isinstance(e, dict))
    except (OSError, ValueError, AttributeError):
        was_on = os.path.exists(path)
    write_modes_file(path, all_disabled())
    return was_on


def modes_cleared(api_url, secret):
    """The node reports every operating mode disabled (GET /api/v1/system/modes with an operator token)."""
    try:
        req = urllib.request.Request(api_url + "/api/v1/system/modes",
                                     headers={"Authorization": "Bearer " + operator_token(secret, 60)})
        with urllib.request.urlopen(req, timeout=2.0) as r:
            modes = json.loads(r.read())["data"]["modes"]
    except Exception:  # noqa: BLE001
        return False
    return not any(e.get("enabled") for e in modes.values())


# ------------------------------------------------------------------ supervisor / http
def supervisorctl(lab, *args, check=False):
    cmd = ["supervisorctl", "-c", conf_path(lab)] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and p.returncode not in (0, 3):
        raise LabError("supervisorctl %s failed: %s" % (" ".join(args), (p.stdout + p.stderr).strip()))
    return p


def supervisord_pid(lab):
    if not os.path.exists(conf_path(lab)) or not os.path.exists(os.path.join(lab, "supervisor.sock")):
        return None
    p = supervisorctl(lab, "pid")
    out = p.stdout.strip()
    return int(out) if p.returncode == 0 and out.isdigit() else None


def program_states(lab):
    """{name: (state, pid or None)} from supervisorctl status."""
    states = {}
    if supervisord_pid(lab) is None:
        return states
    for line in supervisorctl(lab, "status").stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            pid = None
            if "pid" in parts:
                try:
                    pid = int(parts[parts.index("pid") + 1].rstrip(","))
                except (ValueError, IndexError):
                    pid = None
            states[parts[0]] = (parts[1], pid)
    return states


def http_get(url, timeout=2.0):
    """(status, body bytes) or (None, error string)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception as e:  # noqa: BLE001
        return None, str(e)


def node_ready(i):
    status, _ = http_get("http://%s:8080/health/ready" % render.node_ip(i), timeout=2.0)
    return status == 200


def ipfs_ready(i):
    """The node's IPFS daemon answers the RPC API (POST /api/v0/version)."""
    return http_post("%s/api/v0/version" % render.ipfs_api_url(i), timeout=2.0) == 200


def check_ipfs_installed():
    """js-ipfs (lab/ipfs/node_modules, `make setup`) and Node.js are needed by the ipfs-* programs."""
    from .ipfsd import DEFAULT_JSIPFS
    if not shutil.which("node"):
        raise LabError("Node.js (node) is not installed; the lab's IPFS daemons need it: run `make setup`")
    if not os.path.exists(DEFAULT_JSIPFS):
        raise LabError("js-ipfs is not installed (%s missing): run `make setup` (npm ci in lab/ipfs)" % DEFAULT_JSIPFS)


def migrate_ipfs_url(cfg, i):
    """Point the config at the node's IPFS daemon when storage.ipfsApiUrl is missing or still the pre-IPFS
    placeholder (localhost:5001); any other value, and every other key, is kept."""
    try:
        with open(cfg) as fh:
            doc = render.yaml.safe_load(fh)
    except (OSError, render.yaml.YAMLError):
        return
    qflow = doc.get("qflow") if isinstance(doc, dict) else None
    if not isinstance(qflow, dict):
        return
    storage = qflow.setdefault("storage", {})
    if isinstance(storage, dict) and storage.get("ipfsApiUrl") in (None, "http://localhost:5001"):
        storage["ipfsApiUrl"] = render.ipfs_api_url(i)
        write_file(cfg, render.dump_yaml(doc))


def node_names(lab):
    n = int(read_state(lab).get("nodes", 0))
    return [render.node_name(i) for i in range(1, n + 1)]


def node_index(lab, name):
    names = node_names(lab)
    if name not in names:
        raise LabError("unknown node %r (lab nodes: %s)" % (name, ", ".join(names) or "none; run qflow-lab up"), 2)
    return names.index(name) + 1


def log_hint(lab, name):
    if name.startswith("qflow-node-"):
        return "%s/logs/%s.err.log and %s/log/qflow.log" % (lab, name, node_dir(lab, name))
    return "%s/logs/%s.log" % (lab, name)


def wait_ready(lab, targets, timeout):
    """targets: {name: check()}; raise LabError naming what did not come up."""
    deadline = time.monotonic() + timeout
    pending = dict(targets)
    while pending:
        for name in list(pending):
            if pending[name]():
                del pending[name]
        if not pending:
            return
        states = program_states(lab)
        dead = [n for n in pending if states.get(n, ("?",))[0] in ("FATAL", "BACKOFF", "EXITED")]
        if dead and time.monotonic() > deadline - timeout + 3:
            raise LabError("did not come up: " + "; ".join(
                "%s is %s (log: %s)" % (n, states[n][0], log_hint(lab, n)) for n in dead))
        if time.monotonic() > deadline:
            raise LabError("not ready after %ds: " % timeout + "; ".join(
                "%s (state %s, log: %s)" % (n, states.get(n, ("not running",))[0], log_hint(lab, n))
                for n in sorted(pending)))
        time.sleep(0.3)


# ------------------------------------------------------------------ commands
def cmd_up(args):
    t0 = time.monotonic()
    check_ipfs_installed()
    lab = lab_dir()
    prev = read_state(lab)
    n = args.nodes if args.nodes is not None else int(prev.get("nodes", 3))
    if n < 1 or n > 254:
        raise LabError("--nodes must be between 1 and 254", 2)
    rate = args.workload_rate if args.workload_rate is not None else float(prev.get("workloadRate", 2))
    for sub in ("logs", "prometheus/data", "alertmanager/data", "nodes"):
        os.makedirs(os.path.join(lab, sub), exist_ok=True)
    os.chmod(lab, 0o700)
    tokens = {}
    migrated = []
    for i in range(1, n + 1):
        name = render.node_name(i)
        nd = node_dir(lab, name)
        for sub, mode in NODE_DIR_MODES:  # production modes: the security audit checks them
            os.makedirs(os.path.join(nd, sub), exist_ok=True)
            os.chmod(os.path.join(nd, sub), mode)
        cfg = os.path.join(nd, "etc", "qflow-config.yaml")
        if not os.path.exists(cfg):
            write_file(cfg, render.dump_yaml(render.node_config(i)))
        else:
            migrate_ipfs_url(cfg, i)
        envp = os.path.join(nd, "etc", "qflow.env")
        old = read_env(envp)
        secret = old.get("QFLOW_JWT_SECRET") or secrets.token_hex(32)
        enc = old.get("QFLOW_ENCRYPTION_KEY") or secrets.token_hex(32)
        if not old:
            write_file(envp, render.node_env(i, nd, secret, enc), 0o600)
        elif ensure_env_keys(envp, render.node_env_paths(nd)):
            migrated.append(name)  # an env file from before the incident extensions: restart to load the keys
        releases.ensure_initial(os.path.join(nd, "releases"))
        faults = os.path.join(nd, "faults.json")
        if not os.path.exists(faults):
            write_file(faults, json.dumps({"faults": []}) + "\n")
        tokens[name] = operator_token(secret)
    rules = os.path.join(lab, "prometheus", "qflow-rules.yml")
    write_file(rules, render.dump_yaml(render.alert_rules()))
    write_file(os.path.join(lab, "prometheus", "prometheus.yml"),
               render.dump_yaml(render.prometheus_config(n, rules)))
    write_file(os.path.join(lab, "alertmanager", "alertmanager.yml"), render.dump_yaml(render.alertmanager_config()))
    write_file(conf_path(lab), render.supervisord_conf(lab, sys.executable, LAB_SRC, n, rate) + "\n"
               + render.ipfs_programs(lab, sys.executable, LAB_SRC, n))
    write_file(state_path(lab), json.dumps({"nodes": n, "workloadRate": rate}) + "\n")
    inv = args.inventory or default_inventory()
    write_inventory(inv, lab, n, tokens)

    if supervisord_pid(lab) is None:
        p = subprocess.run(["supervisord", "-c", conf_path(lab)], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise LabError("supervisord failed to start: %s (log: %s/supervisord.log)"
                           % ((p.stdout + p.stderr).strip(), lab))
        deadline = time.monotonic() + 15
        while supervisord_pid(lab) is None:
            if time.monotonic() > deadline:
                raise LabError("supervisord did not answer on %s/supervisor.sock (log: %s/supervisord.log)"
                               % (lab, lab))
            time.sleep(0.2)
    else:
        supervisorctl(lab, "reread", check=True)
        supervisorctl(lab, "update", check=True)
        for name, (state, _) in program_states(lab).items():
            if state not in ("RUNNING", "STARTING"):
                supervisorctl(lab, "start", name)
            elif name in migrated:
                supervisorctl(lab, "restart", name)
        http_post("http://%s/-/reload" % render.PROMETHEUS_ADDR)

    targets = {render.node_name(i): (lambda i=i: node_ready(i)) for i in range(1, n + 1)}
    targets.update({render.ipfs_program(i): (lambda i=i: ipfs_ready(i)) for i in range(1, n + 1)})
    targets["prometheus"] = lambda: prometheus_scrapes(n)
    targets["alertmanager"] = lambda: http_get("http://%s/-/ready" % render.ALERTMANAGER_ADDR)[0] == 200
    targets["receiver"] = lambda: http_get("http://%s/-/ready" % render.RECEIVER_ADDR)[0] == 200
    wait_ready(lab, targets, args.timeout)
    print("lab up: %d nodes ready, prometheus http://%s, alertmanager http://%s (%.1f s)"
          % (n, render.PROMETHEUS_ADDR, render.ALERTMANAGER_ADDR, time.monotonic() - t0))
    print("inventory: %s" % inv)
    return 0


def prometheus_scrapes(n):
    """Prometheus is ready and scrapes exactly the n node targets, all up."""
    if http_get("http://%s/-/ready" % render.PROMETHEUS_ADDR)[0] != 200:
        return False
    status, body = http_get("http://%s/api/v1/targets?state=active" % render.PROMETHEUS_ADDR)
    if status != 200:
        return False
    try:
        active = [t for t in json.loads(body)["data"]["activeTargets"] if t["labels"].get("job") == "qflow"]
    except (ValueError, KeyError, TypeError):
        return False
    want = {"%s:9090" % render.node_ip(i) for i in range(1, n + 1)}
    return {t["labels"].get("instance") for t in active} == want and all(t["health"] == "up" for t in active)


def http_post(url, timeout=5.0):
    try:
        req = urllib.request.Request(url, data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except Exception:  # noqa: BLE001
        return None


def write_inventory(path, lab, n, tokens):
    hosts = {}
    for i in range(1, n + 1):
        name = render.node_name(i)
        nd = node_dir(lab, name)
        ip = render.node_ip(i)
        hosts[name] = {
            "ansible_host": ip,
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "qflow_node_id": name,
            "qflow_api_url": "http://%s:8080" % ip,
            "qflow_metrics_url": "http://%s:9090/metrics" % ip,
            "qflow_ipfs_api_url": render.ipfs_api_url(i),
            "qflow_api_token": tokens[name],
            "qflow_config_path": os.path.join(nd, "etc", "qflow-config.yaml"),
            "qflow_env_path": os.path.join(nd, "etc", "qflow.env"),
            "qflow_data_dir": os.path.join(nd, "data"),
            "qflow_log_dir": os.path.join(nd, "log"),
            "qflow_backup_dir": os.path.join(nd, "backups"),
            "qflow_release_dir": os.path.join(nd, "releases"),
            "qflow_service_backend": "supervisor",
            "qflow_service_name": name,
            "qflow_supervisor_config": conf_path(lab),
        }
    doc = {"all": {
        "vars": {"qflow_prometheus_url": "http://%s" % render.PROMETHEUS_ADDR,
                 "qflow_alertmanager_url": "http://%s" % render.ALERTMANAGER_ADDR,
                 # notification sink (qflow_lab.receiver): qflow.ops.notify webhook and email channels
                 "qflow_notify_webhook_url": "http://%s/hooks/qflow" % render.RECEIVER_ADDR,
                 "qflow_smtp_host": render.RECEIVER_SMTP_ADDR.rsplit(":", 1)[0],
                 "qflow_smtp_port": int(render.RECEIVER_SMTP_ADDR.rsplit(":", 1)[1]),
                 # the lab's nodes serve plain HTTP: the monthly security audit reports it as medium, not high
                 "qflow_maint_require_tls": False},
        "children": {"qflow_nodes": {"hosts": hosts}},
    }}
    write_file(path, "# generated by qflow-lab up; contains tokens, do not commit\n" + render.dump_yaml(doc), 0o600)


def cmd_down(args):
    lab = lab_dir()
    pid = supervisord_pid(lab)
    if pid is not None:
        supervisorctl(lab, "shutdown")
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            raise LabError("supervisord (pid %d) did not stop within 40 s (log: %s/supervisord.log)" % (pid, lab))
        print("lab down")
    else:
        print("lab is not running")
    if args.purge:
        shutil.rmtree(lab, ignore_errors=True)
        inv = args.inventory or default_inventory()
        if os.path.exists(inv):
            os.remove(inv)
        print("purged %s and %s" % (lab, inv))
    return 0


def collect_status(lab):
    states = program_states(lab)
    nodes = []
    ok = bool(states)
    for i, name in enumerate(node_names(lab), 1):
        st, pid = states.get(name, ("STOPPED" if states else "NOT_RUNNING", None))
        code, body = http_get("http://%s:8080/health/ready" % render.node_ip(i), timeout=2.0) if st == "RUNNING" \
            else (None, b"")
        health = "ready" if code == 200 else ("not_ready" if code == 503 else ("unreachable" if code is None
                                                                               else "http_%s" % code))
        try:
            with open(os.path.join(node_dir(lab, name), "faults.json")) as fh:
                faults = json.load(fh).get("faults", [])
        except (OSError, ValueError):
            faults = []
        ist, ipid = states.get(render.ipfs_program(i), ("STOPPED" if states else "NOT_RUNNING", None))
        ipfs = {"program": render.ipfs_program(i), "state": ist, "pid": ipid, "api_url": render.ipfs_api_url(i),
                "ready": ist == "RUNNING" and ipfs_ready(i)}
        nodes.append({"name": name, "state": st, "pid": pid, "api_url": "http://%s:8080" % render.node_ip(i),
                      "health": health, "faults": faults, "ipfs": ipfs})
        ok = ok and st == "RUNNING" and health == "ready"
    services = {}
    for svc, addr in (("prometheus", render.PROMETHEUS_ADDR), ("alertmanager", render.ALERTMANAGER_ADDR),
                      ("receiver", render.RECEIVER_ADDR)):
        st, pid = states.get(svc, ("NOT_RUNNING", None))
        ready = http_get("http://%s/-/ready" % addr)[0] == 200 if st == "RUNNING" else False
        services[svc] = {"state": st, "pid": pid, "url": "http://%s" % addr, "ready": ready}
        ok = ok and ready
    return {"lab_dir": lab, "supervisord": bool(states), "nodes": nodes, "services": services, "ok": ok}


def cmd_status(args):
    s = collect_status(lab_dir())
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print("lab %s: %s" % (s["lab_dir"], "UP" if s["ok"] else "DEGRADED" if s["supervisord"] else "DOWN"))
        for n in s["nodes"]:
            faults = n["faults"] + ([] if n["ipfs"]["ready"] else ["ipfs %s" % n["ipfs"]["state"].lower()])
            print("  %-14s %-9s pid=%-7s %-22s %-11s %s" % (n["name"], n["state"], n["pid"] or "-", n["api_url"],
                                                          n["health"], ",".join(faults)))
        for name, v in s["services"].items():
            print("  %-14s %-9s pid=%-7s %-22s %s" % (name, v["state"], v["pid"] or "-", v["url"],
                                                     "ready" if v["ready"] else "not ready"))
    return 0 if s["ok"] else 1


def _faults_file(lab, name):
    return os.path.join(node_dir(lab, name), "faults.json")


def cmd_fault(args):
    lab = lab_dir()
    if args.kind not in FAULT_KINDS:
        raise LabError("unknown fault kind %r (one of: %s)" % (args.kind, ", ".join(FAULT_KINDS)), 2)
    node_index(lab, args.node)
    if args.kind == "down":
        p = supervisorctl(lab, "stop", args.node)
        if p.returncode not in (0,) and "not running" not in (p.stdout + p.stderr).lower():
            raise LabError("could not stop %s: %s" % (args.node, (p.stdout + p.stderr).strip()))
        print("%s: stopped (fault down)" % args.node)
        return 0
    if args.kind == "ipfs_down":
        prog = render.ipfs_program(node_index(lab, args.node))
        p = supervisorctl(lab, "stop", prog)
        if p.returncode not in (0,) and "not running" not in (p.stdout + p.stderr).lower():
            raise LabError("could not stop %s: %s" % (prog, (p.stdout + p.stderr).strip()))
        print("%s: stopped %s (fault ipfs_down)" % (args.node, prog))
        return 0
    faults = add_fault(_faults_file(lab, args.node), args.kind)
    print("%s: faults %s" % (args.node, ", ".join(faults)))
    return 0


def add_fault(path, kind):
    """Add kind to the node's faults file (the node polls it); return the faults now set."""
    try:
        with open(path) as fh:
            faults = json.load(fh).get("faults", [])
    except (OSError, ValueError):
        faults = []
    if kind not in faults:
        faults.append(kind)
    write_file(path, json.dumps({"faults": faults}) + "\n")
    return faults


def cmd_heal(args):
    lab = lab_dir()
    names = node_names(lab) if args.node == "all" else [args.node]
    idx = {name: node_index(lab, name) for name in names}
    if supervisord_pid(lab) is None:
        raise LabError("the lab is not running; use qflow-lab up")
    modes_on = []
    for name in names:
        write_file(_faults_file(lab, name), json.dumps({"faults": []}) + "\n")
        if clear_modes(os.path.join(node_dir(lab, name), "etc", "qflow.env")):
            modes_on.append(name)
    states = program_states(lab)
    to_start = [nm for nm in names if states.get(nm, ("?",))[0] not in ("RUNNING", "STARTING")]
    to_start += [render.ipfs_program(idx[nm]) for nm in names
                 if states.get(render.ipfs_program(idx[nm]), ("?",))[0] not in ("RUNNING", "STARTING")]
    if args.node == "all":
        to_start += [s for s in ("prometheus", "alertmanager", "receiver")
                     if states.get(s, ("?",))[0] not in ("RUNNING", "STARTING")]
    if to_start:
        supervisorctl(lab, "start", *to_start)
    targets = {name: (lambda i=idx[name]: node_ready(i)) for name in names}
    for name in modes_on:  # the node polls the modes file every second: wait until it reports them off
        secret = read_env(os.path.join(node_dir(lab, name), "etc", "qflow.env")).get("QFLOW_JWT_SECRET", "")
        targets[name] = (lambda i=idx[name], s=secret: node_ready(i)
                         and modes_cleared("http://%s:8080" % render.node_ip(i), s))
    wait_ready(lab, targets, args.timeout)
    print("healed: %s" % ", ".join(names))
    return 0


def release_dir(lab, name):
    return read_env(os.path.join(node_dir(lab, name), "etc", "qflow.env")).get("QFLOW_RELEASE_DIR") \
        or os.path.join(node_dir(lab, name), "releases")


def do_release(directory, args):
    """Deploy args.version (with args.defect) in `directory`; return the line to print."""
    try:
        previous = releases.deploy(directory, args.version, args.defect or ())
    except (releases.ReleaseError, OSError) as exc:
        raise LabError("%s: %s" % (args.node, exc), 2 if isinstance(exc, releases.ReleaseError) else 1)
    return "%s: release %s%s deployed in %s (current -> %s, was %s)" % (
        args.node, args.version, " with defect %s" % ",".join(sorted(set(args.defect))) if args.defect else "",
        directory, args.version, previous or "none")


def wait_release(lab, name, check, args):
    """After a restart: ready -> 0; a crash-defect release that does not come up -> 0 (expected); else 1."""
    deadline = time.monotonic() + args.timeout
    crash = "crash" in (args.defect or ())
    while time.monotonic() < deadline:
        if check():
            print("%s: restarted, ready, version %s" % (name, args.version))
            return 0 if not crash else 1
        state = program_states(lab).get(name, ("?",))[0]
        if crash and state in ("FATAL", "BACKOFF", "EXITED", "STOPPED"):
            print("%s: restarted; the node did not come up (%s), as expected for defect crash (log: %s)"
                  % (name, state, log_hint(lab, name)))
            return 0
        if not crash and state in ("FATAL", "EXITED", "STOPPED"):
            break
        time.sleep(0.3)
    print("%s: not ready after the restart (log: %s)" % (name, log_hint(lab, name)))
    return 0 if crash else 1


def cmd_release(args):
    lab = lab_dir()
    i = node_index(lab, args.node)
    print(do_release(release_dir(lab, args.node), args))
    if args.no_restart:
        print("%s: not restarted (--no-restart): the node reports the new version after its next restart" % args.node)
        return 0
    if supervisord_pid(lab) is None:
        raise LabError("the lab is not running; use qflow-lab up")
    supervisorctl(lab, "restart", args.node)
    return wait_release(lab, args.node, lambda: node_ready(i), args)


def corrupt_state_db(path, pages=8, attempts=3):
    """Overwrite `pages` pages in the middle of a live SQLite database with random bytes, until
    PRAGMA integrity_check fails. Return a dict describing what was done."""
    if not os.path.isfile(path):
        raise LabError("no database at %s" % path)
    con = sqlite3.connect(path, timeout=15)
    try:
        con.execute("PRAGMA busy_timeout=15000")
        # move every committed page into the main file, so no WAL frame shadows (and later repairs) the damage
        busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        count = con.execute("PRAGMA page_count").fetchone()[0]
    finally:
        con.close()
    if count < 8:
        raise LabError("%s has only %d pages; nothing worth corrupting" % (path, count))
    n = max(1, min(pages, count // 4))
    ranges = []
    problems = []
    for attempt in range(attempts):
        first = max(2, count // 2 - n // 2 + attempt * n)  # 1-based; page 1 (header, schema root) is kept
        last = min(count, first + n - 1)
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, os.urandom((last - first + 1) * page_size), (first - 1) * page_size)
            os.fsync(fd)
        finally:
            os.close(fd)
        ranges.append((first, last))
        # a commit from another connection makes the node's connection drop its page cache (it reads the damage)
        con = sqlite3.connect(path, timeout=15)
        try:
            uv = con.execute("PRAGMA user_version").fetchone()[0]
            con.execute("PRAGMA user_version = %d" % (uv + 1))
            con.commit()
        except sqlite3.Error:
            pass
        finally:
            con.close()
        problems = integrity_problems(path)
        if problems:
            break
    return {"path": path, "page_size": page_size, "page_count": count, "ranges": ranges,
            "checkpoint_busy": bool(busy), "integrity_problems": problems}


def integrity_problems(path, limit=20):
    """The rows of PRAGMA integrity_check other than 'ok' (an error opening or reading counts as one)."""
    try:
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=15)
        try:
            rows = [r[0] for r in con.execute("PRAGMA integrity_check(%d)" % limit)]
        finally:
            con.close()
    except sqlite3.Error as exc:
        return ["%s: %s" % (exc.__class__.__name__, exc)]
    return [] if rows == ["ok"] else rows


def print_corrupt(name, r):
    spans = ", ".join("%d-%d" % rg for rg in r["ranges"])
    print("%s: overwrote pages %s of %d (%d bytes each) of %s with random bytes"
          % (name, spans, r["page_count"], r["page_size"], r["path"]))
    if r["integrity_problems"]:
        print("%s: PRAGMA integrity_check reports %d problem(s), first: %s"
              % (name, len(r["integrity_problems"]), r["integrity_problems"][0]))
        print("%s: restore it from a backup (or stop the node, delete %s* and start it: an empty state.db)"
              % (name, r["path"]))
        return 0
    print("%s: PRAGMA integrity_check still reports ok (the damaged pages were unused); run corrupt again" % name)
    return 1


def cmd_corrupt(args):
    lab = lab_dir()
    node_index(lab, args.node)
    data = read_env(os.path.join(node_dir(lab, args.node), "etc", "qflow.env")).get("QFLOW_DATA_DIR") \
        or os.path.join(node_dir(lab, args.node), "data")
    return print_corrupt(args.node, corrupt_state_db(os.path.join(data, "state.db"), args.pages))


def cmd_token(args):
    lab = lab_dir()
    node_index(lab, args.node)
    secret = read_env(os.path.join(node_dir(lab, args.node), "etc", "qflow.env")).get("QFLOW_JWT_SECRET")
    if not secret:
        raise LabError("no QFLOW_JWT_SECRET for %s; run qflow-lab up" % args.node)
    if args.wrong_secret:
        secret = secrets.token_hex(32)
    ttl = -60 if args.expired else 30 * 24 * 3600
    perms = args.permission or ["*"]
    print(make_token(secret, args.identity, perms, ttl))
    return 0


def build_parser():
    ap = argparse.ArgumentParser(prog="qflow-lab", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up", help="create/update and start the lab (idempotent; grows or shrinks N)")
    p.add_argument("--nodes", type=int, default=None, help="number of nodes (default 3, or the current count)")
    p.add_argument("--workload-rate", type=float, default=None, help="executions per second per node (default 2)")
    p.add_argument("--inventory", default=None, help="inventory path (default <repo>/inventories/lab/hosts.yml)")
    p.add_argument("--timeout", type=int, default=90, help="seconds to wait for readiness")
    p.set_defaults(fn=cmd_up)
    p = sub.add_parser("down", help="stop supervisord and everything under it")
    p.add_argument("--purge", action="store_true", help="also delete the lab dir (node data) and the inventory")
    p.add_argument("--inventory", default=None)
    p.set_defaults(fn=cmd_down)
    p = sub.add_parser("status", help="per-node supervisor state and readiness; exit 0 when all up")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("fault", help="inject a fault: " + ", ".join(FAULT_KINDS))
    p.add_argument("node")
    p.add_argument("kind")
    p.set_defaults(fn=cmd_fault)
    p = sub.add_parser("heal", help="clear faults, start the node if stopped, wait until ready")
    p.add_argument("node", help="node name or 'all'")
    p.add_argument("--timeout", type=int, default=60)
    p.set_defaults(fn=cmd_heal)
    p = sub.add_parser("release", help="deploy a release on a node (release dir, current, history) and restart it")
    p.add_argument("node")
    p.add_argument("version")
    p.add_argument("--defect", action="append", choices=DEFECTS,
                   help="lab defect: crash (the node exits 1 at start) or errors (every execution fails)")
    p.add_argument("--no-restart", action="store_true", help="do not restart the node")
    p.add_argument("--timeout", type=int, default=30, help="seconds to wait for the restarted node")
    p.set_defaults(fn=cmd_release)
    p = sub.add_parser("corrupt", help="overwrite pages in the middle of the node's state.db with random bytes")
    p.add_argument("node")
    p.add_argument("--pages", type=int, default=8, help="pages per attempt (default 8)")
    p.set_defaults(fn=cmd_corrupt)
    p = sub.add_parser("token", help="print a token for a node (tests)")
    p.add_argument("node")
    p.add_argument("--wrong-secret", action="store_true", help="sign with a random secret")
    p.add_argument("--expired", action="store_true", help="expiresAt in the past")
    p.add_argument("--identity", default="squid:ops:lab-operator")
    p.add_argument("--permission", action="append", help="permission (repeatable; default '*')")
    p.set_defaults(fn=cmd_token)
    from . import systemd_profile  # --profile systemd: lab/qflow_lab/systemd_profile.py
    systemd_profile.add_options(sub.choices)
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        from . import systemd_profile
        return (systemd_profile.command(args) or args.fn)(args)
    except LabError as exc:
        sys.stderr.write("qflow-lab: %s\n" % exc)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
