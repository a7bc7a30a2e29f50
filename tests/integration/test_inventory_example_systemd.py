"""The example inventory inventories/examples/systemd-fleet, for real, against the lab's systemd profile.

A copy of the example is used with its group_vars as they are (production paths, backend systemd, the API on
localhost, IPFS next to the node, the token template of secrets.yml), plus ONE small inventory file that points two of
its hosts at the lab's nodes: address, SSH login, the node's token, the lab's Prometheus and Alertmanager (read from
inventories/lab-systemd/hosts.yml). Then the nightly backup and the morning health check run on those two nodes
(-e qflow_target=qflow_dc1) through qflow_ops.run, and every item must pass.

Runs only on the systemd profile with its nodes in containers (QFLOW_LAB_PROFILE=systemd, deploy systemd).
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

import qflow_ops
from labtest import (BIN, LAB_INVENTORY, ROOT, SYSTEMD, assert_all_green, host_path, in_containers, items, lab_hosts,
                     run_cmd)

pytestmark = pytest.mark.skipif(
    not (SYSTEMD and in_containers()),
    reason="needs the lab's systemd profile with its nodes in containers (QFLOW_LAB_PROFILE=systemd, deploy "
           "systemd): the example is a fleet of SSH hosts at production paths, which the processes profile is not")

EXAMPLE = ROOT / "inventories" / "examples" / "systemd-fleet"
TARGET = "qflow_dc1"  # the example's first site: two nodes
# What the override may set, and nothing else: where a host is and how to log in, its token, the lab's monitoring.
LOGIN = ("ansible_host", "ansible_user", "ansible_ssh_private_key_file", "ansible_ssh_common_args")
OVERRIDE_KEYS = set(LOGIN) | {"ansible_become", "qflow_api_token", "qflow_prometheus_url", "qflow_alertmanager_url"}
HEALTH_ITEMS = {"service", "api_health", "readiness", "cpu", "memory", "flow_success_rate", "critical_alerts", "backup"}
WINDOW = {"qflow_health_metrics_window": "1m"}  # as test_morning_health_check: the last minute, clean after heal


def _node_number(name):
    return int(re.search(r"(\d+)$", name).group(1))


def _inventory_list(inventory):
    proc = run_cmd([str(BIN / "ansible-inventory"), "-i", str(inventory), "--list"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def example(green_lab, tmp_path):
    """(inventory dir, the example's hosts now pointing at lab nodes): a copy of the example plus zz-lab.yml."""
    inventory = tmp_path / "systemd-fleet"
    shutil.copytree(EXAMPLE, inventory)
    lab = yaml.safe_load(LAB_INVENTORY.read_text())
    lab_nodes = lab_hosts(lab)
    names = sorted(lab_nodes, key=_node_number)
    targets = sorted(_inventory_list(inventory)[TARGET]["hosts"])
    if len(names) < len(targets):
        pytest.skip("the lab has %d nodes, the example's %s needs %d" % (len(names), TARGET, len(targets)))
    hosts = {}
    for host, node in zip(targets, names):
        lab_vars = lab_nodes[node]
        hosts[host] = {key: lab_vars[key] for key in LOGIN}
        hosts[host].update({
            "ansible_become": False,  # the lab logs in as root and has no sudo
            "qflow_api_token": lab_vars["qflow_api_token"],
            "qflow_prometheus_url": lab["all"]["vars"]["qflow_prometheus_url"],
            "qflow_alertmanager_url": lab["all"]["vars"]["qflow_alertmanager_url"],
        })
    override = inventory / "zz-lab.yml"  # loaded after hosts.yml: its host variables win over the example's
    groups = {"qflow_nodes": {"children": {TARGET: {"hosts": hosts}}}}
    override.write_text(yaml.safe_dump({"all": {"children": groups}}))
    override.chmod(0o600)
    return inventory, dict(zip(targets, names))


def test_the_override_changes_only_where_and_how_to_log_in(example):
    inventory, mapping = example
    overridden = yaml.safe_load((inventory / "zz-lab.yml").read_text())
    host_vars = overridden["all"]["children"]["qflow_nodes"]["children"][TARGET]["hosts"]
    assert set(host_vars) == set(mapping) and len(mapping) == 2
    assert all(set(v) <= OVERRIDE_KEYS for v in host_vars.values())
    data = _inventory_list(inventory)
    lab_nodes = lab_hosts(yaml.safe_load(LAB_INVENTORY.read_text()))
    for host, node in mapping.items():
        hv = data["_meta"]["hostvars"][host]
        assert hv["ansible_host"] == lab_nodes[node]["ansible_host"]
        # the example's own values, untouched
        assert hv["qflow_service_backend"] == "systemd" and hv["qflow_service_name"] == "qflow"
        assert (hv["qflow_config_path"], hv["qflow_env_path"], hv["qflow_data_dir"], hv["qflow_log_dir"],
                hv["qflow_backup_dir"]) == ("/etc/qflow/qflow-config.yaml", "/etc/qflow/qflow.env", "/var/lib/qflow",
                                            "/var/log/qflow", "/var/backups/qflow")
        assert hv["qflow_api_url"] == "http://localhost:8080"
        assert hv["qflow_metrics_url"] == "http://{{ ansible_host | default(inventory_hostname) }}:9090/metrics"
        assert hv["qflow_ipfs_api_url"] == "http://localhost:5001"


def test_nightly_backup_and_morning_health_check_pass_with_the_example(example, report_dir):
    inventory, mapping = example
    extra = {"qflow_target": TARGET}
    backup = qflow_ops.run("nightly_backup", inventory, extravars=extra, report_dir=report_dir)
    assert backup.rc == 0 and backup.ok, backup.stdout[-4000:]
    assert {c["node"] for c in backup.report["checks"]} == set(mapping)

    result = qflow_ops.run("morning_health_check", inventory, extravars=dict(WINDOW, **extra), report_dir=report_dir)
    assert result.rc == 0, result.stdout[-4000:]
    assert result.ok and result.report["result"] == "pass"
    assert {c["node"] for c in result.report["checks"]} == set(mapping)  # the example's names, only the target's
    for host in mapping:
        assert set(items(result, host)) == HEALTH_ITEMS
        assert_all_green(result, host)
    # the archive the example's backup wrote is on the node, at the example's production path, named after the
    # example's host (qflow_node_id defaults to the inventory name)
    for host, node in mapping.items():
        catalog = json.loads(host_path(node, "/var/backups/qflow/catalog.json").read_text())
        latest = max(catalog["backups"], key=lambda b: b["created"])
        assert latest["node_id"] == host and latest["verified"], latest
