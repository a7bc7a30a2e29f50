"""AWX job templates replayed through ansible-runner the way the controller launches them (qflow_ops.awx.replay),
against the lab: the template's playbook, the lab inventory WITHOUT the token and the monitoring/notification
settings (a copy with them removed from every host and group), the survey's defaults plus the target answer, and the
credentials' injections: "Qflow API" (token, Prometheus, Alertmanager as extra vars), "Qflow notify" (webhook, SMTP
server) and, on the systemd profile, a Machine credential (user and SSH key through ssh-agent, the key file removed
from the inventory too). So every value they carry reaches the modules on the node only as the controller delivers
it, over SSH on the systemd profile. One node per replay (lab nodes have per-node signing secrets; a fleet shares
one operator token). After each replay no secret (token, webhook URL, SSH key) is anywhere under the runner's
artifacts (stdout, job_events, command with its environment) nor in the report."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from labtest import LAB_INVENTORY, SYSTEMD, assert_all_green, host_path, items, lab_hosts
from qflow_ops import awx

# make test: first phase, beside make check (long, mostly waiting; holds under CPU contention)
pytestmark = pytest.mark.early

DEFS = awx.load()
NODE = "qflow-node-1"
# what the credentials bring: removed from the inventory copy, so only the controller's injection can deliver it
FROM_CREDENTIALS = ["qflow_api_token", "qflow_prometheus_url", "qflow_alertmanager_url", "qflow_notify_webhook_url",
                    "qflow_smtp_host", "qflow_smtp_port"]
FROM_MACHINE_CREDENTIAL = ["ansible_user", "ansible_ssh_private_key_file"]


@dataclass
class Replay:
    rc: int
    status: str
    stdout: str
    report: dict | None
    leaks: list

    def item(self, node, name):
        return items(self, node).get(name) if self.report else None


@pytest.fixture(scope="module")
def scratch():
    path = Path(tempfile.mkdtemp(prefix="qflow-awx-replay-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)  # the controller removes a job's private data dir too


@pytest.fixture
def launch(lab_inventory, scratch, request):
    inventory = yaml.safe_load(lab_inventory.read_text())
    settings = inventory["all"]["vars"]
    host = lab_hosts(inventory)[NODE]

    def credentials(token, api):
        creds = [awx.credential(DEFS, "Qflow notify", webhook_url=settings["qflow_notify_webhook_url"],
                                smtp_host=settings["qflow_smtp_host"], smtp_port=str(settings["qflow_smtp_port"]))]
        if api:
            creds.append(awx.credential(DEFS, "Qflow API", api_token=token, alertmanager_url=settings["qflow_alertmanager_url"],
                                        prometheus_url=settings["qflow_prometheus_url"]))
        if SYSTEMD:
            creds.append(awx.credential(DEFS, "Machine", username=host["ansible_user"],
                                        ssh_key_data=Path(host["ansible_ssh_private_key_file"]).read_text()))
        return creds

    stripped = awx.without_vars(inventory, FROM_CREDENTIALS + (FROM_MACHINE_CREDENTIAL if SYSTEMD else []))

    def run(name, answers=None, job_type=None, token=None, api=True, envvars=None):
        creds = credentials(host["qflow_api_token"] if token is None else token, api)
        case = scratch / ("%s-%d" % (request.node.name, len(list(scratch.glob(request.node.name + "-*")))))
        runner = awx.replay(awx.job_template(DEFS, name), inventory=stripped, private_data_dir=case / "pdd",
                            credentials=creds, answers=dict({"qflow_target": NODE}, **(answers or {})),
                            job_type=job_type, report_dir=case / "reports", envvars=envvars)
        stdout = runner.stdout.read()
        reports = sorted((case / "reports").glob("*/latest/report.json"))
        secrets = [s for c in creds for s in c.secrets] + [host["qflow_api_token"]]
        leaks = awx.find_secrets(case / "pdd" / "artifacts", secrets) + awx.find_secrets(case / "reports", secrets)
        assert (case / "pdd" / "artifacts").is_dir() and list((case / "pdd" / "artifacts").rglob("job_events/*.json"))
        return Replay(runner.rc, runner.status, stdout, json.loads(reports[-1].read_text()) if reports else None, leaks)

    return run


def _env_digest():
    """sha256 of the node's env file (its secrets): a check-mode window must leave it alone."""
    env_path = lab_hosts(yaml.safe_load(LAB_INVENTORY.read_text()))[NODE]["qflow_env_path"]
    return hashlib.sha256(host_path(NODE, env_path).read_bytes()).hexdigest()


@pytest.mark.systemd  # the token, the URLs and the SSH key reach the node over SSH
def test_nightly_backup_then_morning_health_check(green_lab, launch):
    backup = launch("Qflow nightly backup")
    assert backup.rc == 0 and backup.report["result"] == "pass", backup.stdout[-3000:]
    assert backup.leaks == []

    health = launch("Qflow morning health check")
    assert health.rc == 0 and health.status == "successful", health.stdout[-4000:]
    assert set(health.report["nodes"]) == {NODE}  # the survey's target answer: one node
    assert_all_green(health, NODE)
    # the Alertmanager URL came only from the credential's extra vars, and reached the node's module
    alerts = health.item(NODE, "critical_alerts")
    assert alerts["ok"] is True and alerts["value"] == 0, alerts
    assert health.leaks == [], health.leaks


def test_weekly_maintenance_preview_changes_nothing(green_lab, launch):
    before = _env_digest()
    preview = launch("Qflow weekly maintenance (preview)")
    assert preview.rc == 0 and preview.status == "successful", preview.stdout[-4000:]
    assert preview.report is not None and preview.report["result"] == "pass", preview.stdout[-4000:]
    assert set(preview.report["nodes"]) == {NODE}
    assert _env_digest() == before, "the preview (--check) changed the node's env file (its secrets)"
    assert preview.leaks == [], preview.leaks


@pytest.mark.systemd  # the token is used on the node, over SSH
def test_security_daily_check_reads_the_node_with_the_injected_token(green_lab, launch):
    check = launch("Qflow security daily check", answers={"qflow_ir_auth_window": "2m"})
    assert check.report is not None, check.stdout[-4000:]
    assert (check.rc == 0) == (check.report["result"] == "pass"), check.stdout[-3000:]
    modes = check.item(NODE, "security_modes")
    assert modes["ok"] is True and modes["value"] == "normal", modes  # GET /api/v1/system/modes needs the token
    alerts = check.item(NODE, "security_alerts")
    assert alerts["ok"] is True and alerts["value"] == "0 firing", alerts
    assert check.leaks == [], check.leaks

    # negative control: with a wrong token in the credential the node refuses the same read
    wrong = launch("Qflow security daily check", answers={"qflow_ir_auth_window": "2m"},
                   token="not-the-operator-token-0000")
    modes = wrong.item(NODE, "security_modes")
    assert wrong.rc != 0 and modes["ok"] is False and "401" in modes["detail"], modes
    assert wrong.leaks == [], wrong.leaks



@pytest.mark.systemd  # the controller's environment is passed on to the node over SSH
def test_without_the_credential_the_controllers_environment_still_serves(green_lab, launch, lab_inventory):
    """QFLOW_API_TOKEN and QFLOW_ALERTMANAGER_URL of the controller (no "Qflow API" credential) reach the node too:
    the daily security check's API read and both procedures' alerts items take them as the modules do. An
    environment variable is recorded with the job's environment (the runner's command artifact), which is why the
    credential injects extra vars instead."""
    inventory = yaml.safe_load(lab_inventory.read_text())
    token = lab_hosts(inventory)[NODE]["qflow_api_token"]
    env = {"QFLOW_API_TOKEN": token, "QFLOW_ALERTMANAGER_URL": inventory["all"]["vars"]["qflow_alertmanager_url"]}
    check = launch("Qflow security daily check", answers={"qflow_ir_auth_window": "2m"}, api=False, envvars=env)
    assert check.item(NODE, "security_modes")["ok"] is True, check.item(NODE, "security_modes")
    assert check.item(NODE, "security_alerts")["value"] == "0 firing", check.item(NODE, "security_alerts")
    assert check.leaks and all(leak.split(":")[0].endswith("/command") for leak in check.leaks), check.leaks
    health = launch("Qflow morning health check", api=False, envvars={"QFLOW_ALERTMANAGER_URL": env["QFLOW_ALERTMANAGER_URL"]})
    alerts = health.item(NODE, "critical_alerts")
    assert alerts["ok"] is True and alerts["value"] == 0, alerts

    # and with neither, the alerts items say "not checked" and fail instead of passing
    bare = launch("Qflow security daily check", answers={"qflow_ir_auth_window": "2m"}, api=False)
    alerts, modes = bare.item(NODE, "security_alerts"), bare.item(NODE, "security_modes")
    assert alerts["ok"] is False and alerts["value"] == "not checked", alerts
    assert modes["ok"] is False and "401" in modes["detail"], modes
    assert bare.rc != 0 and bare.leaks == []
