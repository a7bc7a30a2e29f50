"""qflow-lab --profile systemd: the pure parts (files, docker arguments, inventory); no Docker needed."""
import configparser
import os

import pytest
import yaml

from qflow_lab import cli, render, systemd_profile as sp

DOCKER_DIR = os.path.join(os.path.dirname(cli.PKG_DIR), "docker")


def test_node_env_production_paths():
    env = dict(line.split("=", 1) for line in sp.node_env(2, "s3cret", "enc").splitlines())
    assert env["NODE_ID"] == "qflow-node-2" and env["QFLOW_JWT_SECRET"] == "s3cret"
    assert env["QFLOW_DATA_DIR"] == "/var/lib/qflow" and env["QFLOW_LOG_DIR"] == "/var/log/qflow"
    assert env["QFLOW_HOST"] == "0.0.0.0" and env["QFLOW_PORT"] == "8080" and env["QFLOW_METRICS_PORT"] == "9090"


def test_node_config_ipfs_at_localhost_or_none():
    assert sp.node_config(1, ipfs=True)["qflow"]["storage"]["ipfsApiUrl"] == "http://localhost:5001"
    assert "ipfsApiUrl" not in sp.node_config(1)["qflow"]["storage"]


def test_docker_run_args_recipe_a():
    args = sp.docker_run_args("/lab", 3)
    assert args[:2] == ["run", "-d"] and args[-1] == sp.IMAGE
    assert "--privileged" not in args
    joined = " ".join(args)
    assert "--cap-add SYS_ADMIN" in joined and "seccomp=unconfined" in joined
    assert "-v /sys/fs/cgroup:/sys/fs/cgroup:ro" in joined and "--tmpfs /run " in joined
    for port in (22, 8080, 9090):
        assert "-p 127.0.2.3:%d:%d" % (port, port) in joined
    for sub, path in sp.MOUNTS:
        assert "-v /lab/nodes/qflow-node-3/%s:%s" % (sub, path) in joined
    assert "/lab/ssh/id_ed25519.pub:/root/.ssh/authorized_keys:ro" in joined
    # ipfs.service: repo, the host's Node.js and js-ipfs (read-only); no IPFS port is published
    args = sp.docker_run_args("/lab", 3, node_bin="/usr/bin/node", jsipfs_dir="/src/lab/ipfs")
    joined = " ".join(args)
    assert "-v /lab/nodes/qflow-node-3/ipfs:/var/lib/ipfs " in joined
    assert "-v /usr/bin/node:/usr/local/bin/node:ro" in joined and "-v /src/lab/ipfs:/opt/qflow/ipfs:ro" in joined
    assert "5001" not in joined


def test_sync_ipfs_url(tmp_path):
    cfg = tmp_path / "qflow-config.yaml"
    cfg.write_text(render.dump_yaml(sp.node_config(1)))
    assert sp.sync_ipfs_url(str(cfg), True) is True
    assert yaml.safe_load(cfg.read_text())["qflow"]["storage"]["ipfsApiUrl"] == "http://localhost:5001"
    assert sp.sync_ipfs_url(str(cfg), True) is False
    assert sp.sync_ipfs_url(str(cfg), False) is True
    assert "ipfsApiUrl" not in yaml.safe_load(cfg.read_text())["qflow"]["storage"]
    doc = sp.node_config(1)
    doc["qflow"]["storage"]["ipfsApiUrl"] = "http://ipfs.internal:5001"  # somebody else's value is kept
    cfg.write_text(render.dump_yaml(doc))
    assert sp.sync_ipfs_url(str(cfg), False) is False and sp.sync_ipfs_url(str(cfg), True) is False


def test_compose_env_matches_compose_file():
    env = sp.compose_env("/lab", 2, 1.5)
    assert env["COMPOSE_PROJECT_NAME"] == env["QFLOW_CONTAINER_NAME"] == "qflow-node-2"
    assert env["QFLOW_BIND_ADDRESS"] == "127.0.2.2" and env["QFLOW_NODE_DIR"] == "/lab/nodes/qflow-node-2"
    with open(os.path.join(DOCKER_DIR, "compose.yml")) as fh:
        text = fh.read()
    doc = yaml.safe_load(text)
    svc = doc["services"]["qflow"]
    assert [v.rsplit(":", 1)[1] for v in svc["volumes"]] == [p for _, p in sp.MOUNTS]
    for var in env:
        if var != "COMPOSE_PROJECT_NAME":
            assert "${%s" % var in text, var
    assert doc["networks"]["default"]["external"] is True


def test_unit_file():
    ini = configparser.ConfigParser(strict=False, interpolation=None)
    ini.read(os.path.join(DOCKER_DIR, "qflow.service"))
    exec_start = ini["Service"]["ExecStart"]
    assert "-m qflow_lab.node" in exec_start
    assert "--env-file /etc/qflow/qflow.env --config /etc/qflow/qflow-config.yaml" in exec_start
    assert "QFLOW_LAB_FAULTS_FILE=/var/lib/qflow-lab/faults.json" in ini["Service"]["Environment"]
    assert ini["Install"]["WantedBy"] == "multi-user.target"
    assert "ipfs.service" in ini["Unit"]["After"] and ini["Unit"]["Wants"] == "ipfs.service"
    ipfs = configparser.ConfigParser(strict=False, interpolation=None)
    ipfs.read(os.path.join(DOCKER_DIR, "ipfs.service"))
    exec_start = ipfs["Service"]["ExecStart"]
    assert "-m qflow_lab.ipfsd --repo %s --ip 127.0.0.1" % sp.IPFS_REPO in exec_start
    assert "--node %s" % sp.NODE_BIN in exec_start and "--jsipfs %s/node_modules/" % sp.JSIPFS_DIR in exec_start
    assert ipfs["Install"]["WantedBy"] == "multi-user.target"
    with open(os.path.join(DOCKER_DIR, "Dockerfile")) as fh:
        dockerfile = fh.read()
    assert "systemctl enable ipfs.service qflow.service" in dockerfile and "/opt/qflow/lib/qflow_lab" in dockerfile


def test_prometheus_config_targets_and_alertmanager():
    cfg = sp.prometheus_config(2, "/r.yml", "172.30.0.1")
    targets = [s["targets"][0] for s in cfg["scrape_configs"][0]["static_configs"]]
    assert targets == ["127.0.2.1:9090", "127.0.2.2:9090"]
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["172.30.0.1:29093"]
    conf = sp.supervisord_conf("/lab", "172.30.0.1")
    assert "--web.listen-address=172.30.0.1:29090" in conf and "--web.listen-address=172.30.0.1:29093" in conf
    assert "[program:qflow-node" not in conf
    assert "-m qflow_lab.receiver --listen 172.30.0.1:29095 --smtp 172.30.0.1:29025" in conf


@pytest.mark.parametrize("deploy", sp.DEPLOYS)
def test_inventory(deploy):
    tokens = {render.node_name(i): "t%d" % i for i in (1, 2)}
    doc = sp.inventory("/lab", 2, tokens, deploy, "172.30.0.1", python="/venv/bin/python")
    assert doc["all"]["vars"] == {"qflow_prometheus_url": "http://172.30.0.1:29090",
                                  "qflow_alertmanager_url": "http://172.30.0.1:29093",
                                  "qflow_notify_webhook_url": "http://172.30.0.1:29095/hooks/qflow",
                                  "qflow_smtp_host": "172.30.0.1", "qflow_smtp_port": 29025}
    h = doc["all"]["children"]["qflow_nodes"]["hosts"]["qflow-node-2"]
    assert h["ansible_host"] == "127.0.2.2" and h["qflow_api_token"] == "t2"
    assert h["qflow_api_url"] == "http://127.0.2.2:8080" and h["qflow_metrics_url"] == "http://127.0.2.2:9090/metrics"
    if deploy == "systemd":
        assert h["ansible_user"] == "root" and h["ansible_python_interpreter"] == "/usr/bin/python3"
        assert h["ansible_ssh_private_key_file"] == "/lab/ssh/id_ed25519"
        assert "StrictHostKeyChecking=no" in h["ansible_ssh_common_args"]
        assert (h["qflow_config_path"], h["qflow_env_path"]) == ("/etc/qflow/qflow-config.yaml", "/etc/qflow/qflow.env")
        assert (h["qflow_data_dir"], h["qflow_log_dir"], h["qflow_backup_dir"]) == (
            "/var/lib/qflow", "/var/log/qflow", "/var/backups/qflow")
        assert (h["qflow_service_backend"], h["qflow_service_name"]) == ("systemd", "qflow")
        assert h["qflow_ipfs_api_url"] == "http://localhost:5001"  # the modules calling IPFS run on the node
    else:
        assert h["ansible_connection"] == "local" and h["ansible_python_interpreter"] == "/venv/bin/python"
        assert h["qflow_data_dir"] == "/lab/nodes/qflow-node-2/data"
        assert (h["qflow_service_backend"], h["qflow_service_name"]) == ("docker_compose", "qflow-node-2")
        assert h["qflow_compose_project_dir"] == "/lab/nodes/qflow-node-2/compose"
        assert h["qflow_compose_service"] == "qflow"
        assert "qflow_ipfs_api_url" not in h  # no IPFS in deploy compose


def test_debian_mirror(tmp_path):
    src = tmp_path / "debian.sources"
    src.write_text("Types: deb\n# a comment\nURIs: http://mirror.invalid/debian\nSuites: bookworm\n")
    assert sp.debian_mirror(str(src)) == "http://mirror.invalid/debian"
    src.write_text("Types: deb\n")
    with pytest.raises(cli.LabError):
        sp.debian_mirror(str(src))


def test_cli_profile_option_dispatch():
    args = cli.build_parser().parse_args(["up", "--profile", "systemd", "--deploy", "compose", "--nodes", "2"])
    assert sp.command(args) is sp.cmd_up and args.deploy == "compose"
    args = cli.build_parser().parse_args(["heal", "all"])
    assert args.profile == "processes" and sp.command(args) is None
    for cmd in (["down"], ["status"], ["fault", "n", "down"], ["token", "n"]):
        args = cli.build_parser().parse_args(cmd + ["--profile", "systemd"])
        assert sp.command(args).__name__ == args.fn.__name__


def test_fault_kind_checked_before_anything(monkeypatch, tmp_path):
    monkeypatch.setenv("QFLOW_LAB_SYSTEMD_DIR", str(tmp_path))
    cli.write_file(cli.state_path(str(tmp_path)), '{"nodes": 1, "deploy": "compose"}')
    for kind in ("bogus", "ipfs_down"):  # deploy compose has no IPFS
        args = cli.build_parser().parse_args(["fault", "qflow-node-1", kind, "--profile", "systemd"])
        with pytest.raises(cli.LabError) as exc:
            sp.cmd_fault(args)
        assert exc.value.code == 2
    cli.write_file(cli.state_path(str(tmp_path)), '{"nodes": 1, "deploy": "systemd"}')
    args = cli.build_parser().parse_args(["fault", "qflow-node-9", "ipfs_down", "--profile", "systemd"])
    with pytest.raises(cli.LabError) as exc:  # a known kind, an unknown node: refused before docker is asked
        sp.cmd_fault(args)
    assert "unknown node" in str(exc.value) and exc.value.code == 2
