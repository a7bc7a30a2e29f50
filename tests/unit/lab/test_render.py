import shutil
import subprocess

import pytest
import yaml

from qflow_lab import render

EXPECTED = {"QflowServiceDown", "QflowHighErrorRate", "QflowNodeHealthCritical", "QflowHighLatency",
            "QflowLowCacheHitRate", "QflowSlowNodeSelection", "QflowValidationPipelineFailure"}


def test_rules_shape():
    doc = render.alert_rules()
    rules = doc["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == EXPECTED
    for r in rules:
        assert r["labels"]["service"] == "qflow" and r["labels"]["severity"] in ("critical", "warning")
        assert r["annotations"]["summary"] and r["annotations"]["runbook_step"]


def test_prometheus_config_targets():
    cfg = render.prometheus_config(3, "/x/rules.yml")
    sc = cfg["scrape_configs"][0]
    assert sc["job_name"] == "qflow" and cfg["global"]["scrape_interval"] == "3s"
    assert [s["targets"][0] for s in sc["static_configs"]] == ["127.0.1.1:9090", "127.0.1.2:9090", "127.0.1.3:9090"]
    assert sc["static_configs"][1]["labels"] == {"node": "qflow-node-2"}


def test_alertmanager_config():
    am = render.alertmanager_config()
    assert am["route"]["receiver"] == "default" and am["route"]["group_by"] == ["alertname", "instance"]


def test_supervisord_conf():
    conf = render.supervisord_conf("/lab", "/py", "/src", 2, 2.0)
    assert "[program:qflow-node-2]" in conf and "[program:qflow-node-3]" not in conf
    assert "autorestart=unexpected" in conf and "stopsignal=TERM" in conf
    assert "--web.enable-lifecycle" in conf and "--cluster.listen-address=" in conf


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_promtool_checks(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(render.dump_yaml(render.alert_rules()))
    p = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(render.dump_yaml(render.prometheus_config(3, str(rules))))
    p = subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.skipif(not shutil.which("amtool"), reason="amtool not installed")
def test_amtool_check(tmp_path):
    f = tmp_path / "am.yml"
    f.write_text(yaml.safe_dump(render.alertmanager_config()))
    p = subprocess.run(["amtool", "check-config", str(f)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_lab_config_uses_only_documented_keys():
    """The collection's config schema (qflow.ops.config) accepts the config the lab writes for its nodes."""
    from ansible_collections.qflow.ops.plugins.module_utils._config import validate
    for i in (1, 7):
        assert validate(render.node_config(i)) == []
