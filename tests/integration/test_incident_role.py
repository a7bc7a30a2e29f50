"""The qflow.ops.incident role in playbooks against localhost only (no lab node is touched): open a P0, record steps
from a play on localhost and from a play on two (local) nodes, escalate with thresholds passed, resolve; the files,
and what the lab's notification sink received when it runs (qflow_lab.receiver, 127.0.0.1:19095 / SMTP :19025)."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from labtest import RECEIVER, ROOT, SYSTEMD, run_cmd

# Controller-side only (no lab node): one run, against the processes lab's notification sink, is enough. On the systemd
# profile that sink is not running (the profile has its own, on the lab network), so the delivery assertions would fail.
pytestmark = [pytest.mark.skipif(SYSTEMD, reason="controller-side; runs on the processes profile with its notification sink"),
              pytest.mark.early]  # make test: first phase, beside make check (long, mostly waiting; holds under contention)

SMTP_PORT = 19025
T0 = "2026-11-27T03:12:45Z"

PLAYBOOK = """
- name: Incident opened from the controller
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Open a P0
      ansible.builtin.include_role:
        name: qflow.ops.incident
        tasks_from: open
      vars:
        qflow_incident_severity: P0
        qflow_incident_kind: outage
        qflow_incident_title: "{{ run_id }} API down"
        qflow_incident_affected: [node-a, node-b]
        qflow_incident_now: "2026-11-27T03:12:45Z"

    - name: Escalate at once (levels 1 and 2 are due, level 3 after 1h)
      ansible.builtin.include_role:
        name: qflow.ops.incident
        tasks_from: escalate
      vars:
        qflow_incident_now: "2026-11-27T03:13:00Z"

    - name: Keep what the first escalation paged
      ansible.builtin.set_fact:
        first_escalation: "{{ qflow_incident_escalated }}"
        upcoming: "{{ qflow_incident_escalations_upcoming | map(attribute='level') | list }}"

- name: Steps recorded from a play on the nodes (delegated to the controller)
  hosts: nodes
  gather_facts: false
  tasks:
    - name: Assess
      ansible.builtin.include_role:
        name: qflow.ops.incident
        tasks_from: step
      vars:
        qflow_incident_step: p0.assess.health
        qflow_incident_action: checked /health
        qflow_incident_status: failed
        qflow_incident_detail: node-b answers 502
        qflow_incident_host: node-b
        qflow_incident_data: {down: [node-b]}
        qflow_incident_now: "2026-11-27T03:14:00Z"

    - name: Acknowledge
      ansible.builtin.include_role:
        name: qflow.ops.incident
        tasks_from: acknowledge
      vars:
        qflow_incident_owner: alice
        qflow_incident_now: "2026-11-27T03:15:57Z"

    - name: Mitigate
      ansible.builtin.include_role:
        name: qflow.ops.incident
        tasks_from: step
      vars:
        qflow_incident_step: p0.mitigate.emergency_mode
        qflow_incident_action: enabled emergency mode
        qflow_incident_host: node-b
        qflow_incident_now: "2026-11-27T03:20:00Z"

- name: Later checkpoint and resolution
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Escalate again two hours in (level 3 is due now)
      ansible.builtin.include_role:
        name: qflow.ops.incident
        tasks_from: escalate
      vars:
        qflow_incident_now: "2026-11-27T05:12:45Z"

    - name: Resolve
      ansible.builtin.include_role:
        name: qflow.ops.incident
        tasks_from: resolve
      vars:
        qflow_incident_summary: Bad release rolled back
        qflow_incident_now: "2026-11-27T05:30:00Z"

    - name: Keep the results for the test
      ansible.builtin.copy:
        dest: "{{ results_path }}"
        content: "{{ {'incident': qflow_incident, 'first_escalation': first_escalation, 'upcoming': upcoming,
                      'second_escalation': qflow_incident_escalated, 'postmortem': qflow_incident_postmortem}
                     | to_nice_json }}"
        mode: "0600"
      when: results_path is defined
"""

REQUIRED = """
- name: A required notification that fails stops the play
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Open a P1 with a broken chat
      ansible.builtin.include_role:
        name: qflow.ops.incident
        tasks_from: open
      vars:
        qflow_incident_severity: P1
        qflow_incident_title: "{{ run_id }} required"
        qflow_incident_notify_required: true
"""


def receiver_up():
    try:
        urllib.request.urlopen(RECEIVER + "/messages", timeout=3).read()
        return True
    except (OSError, urllib.error.URLError):
        return False


def receiver(path, query=None):
    url = RECEIVER + path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def write_inventory(tmp_path, run_id, webhook):
    policy = [
        {"level": 1, "name": "Operations Team", "severities": ["P0"], "after": "0s", "respond_within": "15m",
         "channel": "#ops-alerts", "email": ["ops-%s@lab.example" % run_id]},
        {"level": 2, "name": "Engineering Team", "severities": ["P0"], "after": "0s", "respond_within": "30m",
         "channel": "#engineering-alerts", "email": ["eng-%s@lab.example" % run_id]},
        {"level": 3, "name": "Management", "severities": ["P0"], "after": "1h", "respond_within": "1h",
         "email": ["mgmt-%s@lab.example" % run_id]},
    ]
    common = {"ansible_connection": "local", "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python")}
    data = {"all": {
        "vars": {"run_id": run_id, "qflow_incident_dir": str(tmp_path / "incidents"),
                 "qflow_notify_webhook_url": webhook, "qflow_smtp_host": "127.0.0.1", "qflow_smtp_port": SMTP_PORT,
                 "qflow_incident_escalation": policy,
                 # the engineering channel has its own (broken) webhook: its failure is recorded, the incident goes on
                 "qflow_incident_channel_webhooks": {"#engineering-alerts": RECEIVER + "/fail/" + run_id},
                 "qflow_incident_notify_to": ["stakeholders-%s@lab.example" % run_id],
                 "qflow_incident_mail_from": "qflow-ops@lab.example"},
        "hosts": {"localhost": dict(common)},
        "children": {"nodes": {"hosts": {"node-a": dict(common), "node-b": dict(common)}}}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def playbook(tmp_path, inventory, text, *extra, check=False):
    path = tmp_path / ("play-%s.yml" % secrets.token_hex(3))
    path.write_text(text)
    args = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(path)] + list(extra)
    if check:
        args.append("--check")
    return run_cmd(args, timeout=300)


def test_incident_role_open_steps_escalate_resolve(tmp_path):
    up = receiver_up()
    run_id = "inc%s" % secrets.token_hex(4)
    webhook = RECEIVER + "/hooks/" + run_id
    inventory = write_inventory(tmp_path, run_id, webhook)
    incidents = tmp_path / "incidents"

    # check mode: nothing written, nothing sent
    proc = playbook(tmp_path, inventory, PLAYBOOK, check=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert not incidents.exists()

    results = tmp_path / "results.json"
    proc = playbook(tmp_path, inventory, PLAYBOOK, "-e", "results_path=%s" % results)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "/hooks/" + run_id not in out  # the webhook URL is a secret

    res = json.loads(results.read_text())
    ident = res["incident"]["id"]
    assert ident == "INC-20261127-031245-P0" and res["incident"]["created"] is True
    assert res["first_escalation"] == [1, 2] and res["upcoming"] == [3] and res["second_escalation"] == [3]
    inc = json.loads((incidents / ident / "incident.json").read_text())
    assert inc["status"] == "resolved" and inc["owner"] == "alice" and inc["response_met"] is True
    assert [e["level"] for e in inc["escalations"]] == [1, 2, 3]
    assert inc["escalations"][2]["reason"] == "P0 incident not resolved within 1h"
    steps = [(e["step"], e["status"]) for e in inc["timeline"]]
    hook_status = "ok" if up else "failed"
    assert steps == [
        ("incident.opened", "info"),
        ("notify.open.webhook", hook_status), ("notify.open.email", hook_status),
        ("notify.escalate.level-1.webhook", hook_status), ("notify.escalate.level-1.email", hook_status),
        ("incident.escalated.level-1", "info"),
        ("notify.escalate.level-2.webhook", "failed"), ("notify.escalate.level-2.email", hook_status),
        ("incident.escalated.level-2", "info"),
        ("p0.assess.health", "failed"),  # recorded once although the play had two hosts
        ("incident.acknowledged", "info"),
        ("p0.mitigate.emergency_mode", "ok"),
        ("notify.escalate.level-3.webhook", hook_status), ("notify.escalate.level-3.email", hook_status),
        ("incident.escalated.level-3", "info"),
        ("incident.resolved", "info"),
        ("notify.resolve.webhook", hook_status), ("notify.resolve.email", hook_status),
    ]
    by_step = {e["step"]: e for e in inc["timeline"]}
    assert by_step["p0.assess.health"]["host"] == "node-b" and by_step["p0.assess.health"]["data"] == {"down": ["node-b"]}
    assert by_step["notify.escalate.level-2.webhook"]["action"].startswith("chat #engineering-alerts: Escalation level 2")
    assert "HTTP 500" in by_step["notify.escalate.level-2.webhook"]["detail"]
    assert by_step["notify.escalate.level-2.webhook"]["data"]["endpoint"] == RECEIVER
    assert inc["affected"] == ["node-a", "node-b"]

    md = (incidents / ident / "timeline.md").read_text()
    assert md.startswith("# %s: %s API down" % (ident, run_id))
    assert "| 2026-11-27T03:20:00.000Z | T+00:07:15 | `p0.mitigate.emergency_mode` | enabled emergency mode |" in md
    assert res["postmortem"] == str(incidents / ident / "postmortem.md")
    pm = (incidents / ident / "postmortem.md").read_text()
    assert "| Time to acknowledge | 00:03:12 | response target 15m: met |" in pm
    assert "| Time to mitigate | 00:07:15 | first mitigation: `p0.mitigate.emergency_mode` |" in pm
    assert "| Time to resolve | 02:17:15 | |" in pm
    assert "- `p0.assess.health` failed: node-b answers 502" in pm
    assert (incidents / "latest").resolve() == (incidents / ident).resolve()
    assert json.loads((incidents / "index.json").read_text())[ident]["status"] == "resolved"

    if up:
        got = [m for m in receiver("/messages") if run_id in m.get("path", "")]
        titles = sorted((m["path"].split("/")[1], m["body"]["attachments"][0]["title"]) for m in got)
        assert titles == sorted([
            ("hooks", "P0 incident opened: %s API down" % run_id),
            ("hooks", "Escalation level 1 (Operations Team): P0 %s API down" % run_id),
            ("fail", "Escalation level 2 (Engineering Team): P0 %s API down" % run_id),
            ("hooks", "Escalation level 3 (Management): P0 %s API down" % run_id),
            ("hooks", "P0 incident resolved: %s API down" % run_id),
        ])
        opened = [m for m in got if m["body"]["attachments"][0]["title"].startswith("P0 incident opened")][0]
        assert opened["body"]["attachments"][0]["color"] == "#E01E5A"
        fields = {f["title"]: f["value"] for f in opened["body"]["attachments"][0]["fields"]}
        assert fields["Incident"] == ident and fields["Procedure"] == "incident-response"
        # each level: its page and the resolution; the stakeholders: the opening and the resolution
        expected = {"ops": "Escalation level 1", "eng": "Escalation level 2", "mgmt": "Escalation level 3",
                    "stakeholders": "P0 incident opened"}
        for who, first in expected.items():
            subjects = sorted(m["subject"] for m in receiver("/mail", {"rcpt": "%s-%s@lab.example" % (who, run_id)}))
            assert len(subjects) == 2, (who, subjects)
            assert subjects[0].startswith("[qflow.ops] CRITICAL: " + first), (who, subjects)
            assert subjects[1] == "[qflow.ops] OK: P0 incident resolved: %s API down" % run_id, (who, subjects)

    # the same procedure again on this incident: nothing new on the timeline, nothing sent again
    before = (incidents / ident / "incident.json").read_bytes()
    sent = len(receiver("/messages")) if up else 0
    proc = playbook(tmp_path, inventory, PLAYBOOK, "-e", "qflow_incident_id=%s" % ident,
                    "-e", "qflow_incident_severity=P0")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert (incidents / ident / "incident.json").read_bytes() == before
    if up:
        assert len(receiver("/messages")) == sent


def test_required_notification_failure_stops_the_play_after_recording_it(tmp_path):
    run_id = "inc%s" % secrets.token_hex(4)
    inventory = write_inventory(tmp_path, run_id, "http://127.0.0.1:9/hooks/closed")  # nothing listens on port 9
    proc = playbook(tmp_path, inventory, REQUIRED)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "qflow_incident_notify_required is true" in out
    [inc_dir] = [p for p in (tmp_path / "incidents").iterdir() if p.is_dir() and not p.is_symlink()]
    inc = json.loads((inc_dir / "incident.json").read_text())
    webhook = [e for e in inc["timeline"] if e["step"] == "notify.open.webhook"][0]
    assert webhook["status"] == "failed" and "127.0.0.1:9" in webhook["detail"]


def test_step_without_an_incident_fails_clearly(tmp_path):
    inventory = write_inventory(tmp_path, "x", RECEIVER + "/hooks/x")
    proc = playbook(tmp_path, inventory, """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: qflow.ops.incident
        tasks_from: step
      vars:
        qflow_incident_step: p0.assess.health
""")
    assert proc.returncode != 0 and "No incident: include the role with tasks_from open first" in proc.stdout + proc.stderr
    proc = playbook(tmp_path, inventory, """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: qflow.ops.incident
        tasks_from: step
      vars:
        qflow_incident_id: INC-missing
        qflow_incident_step: p0.assess.health
""")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "incident INC-missing not found in %s" % (tmp_path / "incidents") in out
    assert not (tmp_path / "incidents").exists()


@pytest.mark.parametrize("missing", ["qflow_incident_severity"])
def test_open_without_severity_fails_the_argument_spec(tmp_path, missing):
    inventory = write_inventory(tmp_path, "x", RECEIVER + "/hooks/x")
    proc = playbook(tmp_path, inventory, """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: qflow.ops.incident
        tasks_from: open
""")
    assert proc.returncode != 0 and missing in proc.stdout + proc.stderr
    assert not (tmp_path / "incidents").exists()
