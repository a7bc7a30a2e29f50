"""qflow.ops.notify in a playbook against the lab's notification sink (qflow_lab.receiver: 127.0.0.1:19095/19025;
profile systemd: on the lab network's gateway, :29095/29025)."""

from __future__ import annotations

import json
import secrets
import urllib.parse
import urllib.request

import yaml

from labtest import ROOT, lab_url, run_cmd

# Notifications are sent from the controller, as the procedures send them (delegate_to: localhost): the play runs
# on the controller with the node's inventory variables (on the processes profile the node is local anyway).
PLAYBOOK = """
- name: Notify through the lab receiver
  hosts: qflow-node-1
  gather_facts: false
  connection: local
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    run_id: "{{ lookup('ansible.builtin.env', 'NOTIFY_RUN_ID') }}"
  tasks:
    - name: Webhook from the inventory variable
      qflow.ops.notify:
        url: "{{ qflow_notify_webhook_url }}"
        text: "{{ run_id }} maintenance window started"
        title: Maintenance window
        severity: warning
        procedure: maintenance-window
        fields:
          Run: "{{ run_id }}"
          Nodes: 3
      register: from_inventory

    - name: Webhook from QFLOW_NOTIFY_WEBHOOK_URL (a Slack-like secret path)
      qflow.ops.notify:
        text: "{{ run_id }} from the environment"
        severity: ok
      register: from_env

    - name: Check mode sends nothing
      qflow.ops.notify:
        url: "{{ qflow_notify_webhook_url }}"
        text: "{{ run_id }} check mode"
      check_mode: true
      register: in_check

    - name: A failing chat does not stop the play with fail_on_error false
      qflow.ops.notify:
        url: "{{ qflow_notify_webhook_url | replace('/hooks/', '/fail/') }}"
        text: "{{ run_id }} tolerated failure"
        fail_on_error: false
      register: tolerated

    - name: A failing chat fails the task by default
      qflow.ops.notify:
        url: "{{ qflow_notify_webhook_url | replace('/hooks/', '/fail/') }}"
        text: "{{ run_id }} fatal failure"
      register: fatal
      ignore_errors: true

    - name: Mail through the lab SMTP sink
      qflow.ops.notify:
        channel: email
        smtp_host: "{{ qflow_smtp_host }}"
        smtp_port: "{{ qflow_smtp_port }}"
        mail_from: qflow-ops@lab.example
        mail_to: ["{{ run_id }}@lab.example"]
        title: "{{ run_id }} P1 drill"
        text: A drill, nothing is down.
        severity: critical
      register: mailed

    - name: Keep the results for the test
      ansible.builtin.copy:
        dest: "{{ results_path }}"
        content: "{{ {'from_inventory': from_inventory, 'from_env': from_env, 'in_check': in_check,
                      'tolerated': tolerated, 'fatal': fatal, 'mailed': mailed} | to_nice_json }}"
        mode: "0600"
"""


def receiver(path, query=None):
    url = lab_url("receiver") + path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def test_notify_playbook_against_the_lab_receiver(lab_inventory, tmp_path):
    inv = yaml.safe_load(lab_inventory.read_text())["all"]["vars"]
    RECEIVER = lab_url("receiver")  # noqa: N806 - the sink's base URL
    assert inv["qflow_notify_webhook_url"] == RECEIVER + "/hooks/qflow"
    assert inv["qflow_smtp_host"] == urllib.parse.urlsplit(RECEIVER).hostname
    assert isinstance(inv["qflow_smtp_port"], int)
    run_id = "run%s" % secrets.token_hex(4)
    token = "XtokenX" + secrets.token_hex(12)
    secret_path = "/hooks/qflow/T0LAB/B0LAB/" + token
    playbook = tmp_path / "notify.yml"
    playbook.write_text(PLAYBOOK)
    results_path = tmp_path / "results.json"

    proc = run_cmd([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-vvv", "-i", str(lab_inventory), str(playbook),
                    "-e", "results_path=%s" % results_path],
                   env={"NOTIFY_RUN_ID": run_id, "QFLOW_NOTIFY_WEBHOOK_URL": RECEIVER + secret_path},
                   timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]

    # no path or token part of any webhook URL in the -vvv output
    for needle in (token, secret_path, "T0LAB/B0LAB", "/hooks/qflow", "/fail/qflow"):
        assert needle not in out, "%r appears in the ansible-playbook -vvv output" % needle
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in out

    res = json.loads(results_path.read_text())
    assert res["from_inventory"]["changed"] is True and res["from_inventory"]["delivered"] is True
    assert res["from_inventory"]["status"] == 200 and res["from_inventory"]["endpoint"] == RECEIVER
    assert res["from_env"]["delivered"] is True and res["from_env"]["endpoint"] == RECEIVER
    assert res["in_check"]["changed"] is True and res["in_check"]["delivered"] is False
    assert res["tolerated"]["failed"] is False and res["tolerated"]["delivered"] is False
    assert res["tolerated"]["changed"] is False and res["tolerated"]["status"] == 500
    assert res["fatal"]["failed"] is True and "answered HTTP 500" in res["fatal"]["msg"]
    assert RECEIVER in res["fatal"]["msg"]
    assert res["mailed"]["delivered"] is True and res["mailed"]["status"] == 250
    assert token not in results_path.read_text() and "/hooks/qflow" not in results_path.read_text()

    # what the receiver got
    got = [m for m in receiver("/messages") if run_id in json.dumps(m.get("body"))]
    by_text = {m["body"]["text"]: m for m in got}
    assert sorted(by_text) == sorted("%s %s" % (run_id, t) for t in (
        "maintenance window started", "from the environment", "tolerated failure", "fatal failure"))
    first = by_text["%s maintenance window started" % run_id]
    assert first["path"] == "/hooks/qflow" and first["status"] == 200
    assert first["body"] == res["from_inventory"]["payload"]
    att = first["body"]["attachments"][0]
    assert att["color"] == "#ECB22E" and att["title"] == "Maintenance window" and att["footer"] == "qflow.ops"
    assert att["fields"] == [{"title": "Procedure", "value": "maintenance-window", "short": True},
                             {"title": "Run", "value": run_id, "short": True},
                             {"title": "Nodes", "value": "3", "short": True}]
    assert first["headers"]["Content-Type"] == "application/json"
    env_msg = by_text["%s from the environment" % run_id]
    assert env_msg["path"] == secret_path and env_msg["body"]["attachments"][0]["color"] == "#2EB67D"
    assert by_text["%s tolerated failure" % run_id]["path"] == "/fail/qflow"
    assert by_text["%s tolerated failure" % run_id]["status"] == 500

    mails = receiver("/mail", {"rcpt": "%s@lab.example" % run_id})
    assert len(mails) == 1
    assert mails[0]["subject"] == "[qflow.ops] CRITICAL: %s P1 drill" % run_id
    assert mails[0]["mail_from"] == "qflow-ops@lab.example" and "A drill, nothing is down." in mails[0]["body"]
