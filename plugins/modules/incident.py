#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: incident
short_description: Open, acknowledge, update, escalate and resolve an incident record with its timeline
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Keeps the record of an incident on the controller, as files only (no network) - run it with
    C(delegate_to=localhost) and C(run_once=true).
  - C(<incident_dir>/<id>/incident.json) holds the record - C(id), C(severity), C(title), C(kind), C(summary),
    C(status) (C(open), C(acknowledged), C(resolved)), C(opened_at), C(acknowledged_at), C(resolved_at),
    C(response_due_at) (the opening plus the runbook response time of the severity - P0 15m, P1 1h, P2 4h, P3 24h),
    C(response_met) (acknowledged by C(response_due_at); C(null) until acknowledged), C(affected), C(owner),
    C(escalations) (C([{level, at, ...}])) and C(timeline) (C([{time, step, action, status, detail, host, data}])).
    It is written atomically (temp file and rename), mode C(0640), in a directory of mode C(0750).
  - C(<incident_dir>/<id>/timeline.md) is a Markdown rendering - a header table, the timeline with times relative to
    the opening (C(T+00:03:12)) and the escalations.
  - At O(state=resolved), C(<incident_dir>/<id>/postmortem.md) is written when absent - a post-mortem skeleton with
    the summary, the impact, the timeline, the times to acknowledge, mitigate and resolve, and TODO sections (root
    cause, what went well and badly, action items). It is never overwritten, so it can be edited.
  - The time to mitigate is the time of the first timeline event that is a mitigation - an event with
    C(status=ok) whose C(step) is C(mitigate), ends with C(.mitigate) or contains C(.mitigate.) (V(p0.mitigate),
    V(p0.mitigate.emergency_mode)), or an event whose C(data) has C(mitigated=true) (any status but C(failed)).
  - C(<incident_dir>/index.json) maps each id to its C(severity), C(status), C(title), C(kind) and C(opened_at), and
    the symlink C(<incident_dir>/latest) points at the most recently opened incident.
  - Each state adds its own event to the timeline - C(incident.opened), C(incident.acknowledged),
    C(incident.escalated.level-<n>), C(incident.resolved). O(event) adds one more, in any state.
  - Idempotent - O(state=opened) with an O(id) that exists changes nothing (it fails when O(severity) differs).
    O(state=opened) without O(id) while an incident that is not resolved has the same title, kind and severity
    returns that incident unchanged, so a re-run procedure keeps one incident. An O(event) whose C(step) is on the
    timeline with the same C(action), C(status), C(detail), C(host) and C(data) is not added again (the same step with
    other content is). Acknowledging, escalating to a level already recorded and resolving a second time change
    nothing.
  - Resolving an incident that was never acknowledged acknowledges it at the same time.
extends_documentation_fragment:
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Computes the record and the files, writes nothing, and returns the record it would write with the real
        C(changed) and RV(diff).
  diff_mode:
    support: partial
    details:
      - RV(diff) shows the status, severity, number of timeline events, escalation levels and the acknowledge and
        resolve times before and after, not the file contents.
options:
  incident_dir:
    description:
      - Directory that holds the incidents, on the controller. Created (mode C(0750)) when missing.
      - If not set, the value of the E(QFLOW_INCIDENT_DIR) environment variable is used.
    type: path
    required: true
  id:
    description:
      - The incident id - 1 to 64 letters, digits, C(.), C(_) or C(-), starting with a letter or digit.
      - Required except with O(state=opened), where it defaults to C(INC-<UTC yyyymmdd-HHMMSS>-<severity>) of O(now)
        (with a C(-2), C(-3)... suffix if taken), unless an open incident with the same title, kind and severity exists.
    type: str
  state:
    description:
      - V(opened) - open the incident (needs O(severity)).
      - V(acknowledged) - someone took it - sets C(acknowledged_at), C(response_met) and O(owner).
      - V(updated) - record O(event) on the timeline (needs O(event)).
      - V(escalated) - record the escalation to O(level) (needs O(level)). A resolved incident cannot be escalated.
      - V(resolved) - set C(resolved_at) and write the post-mortem skeleton.
      - O(title), O(summary), O(kind), O(owner) replace those fields and O(affected) adds hosts in every state but
        V(opened) (where they only apply to a new incident).
    type: str
    choices: [opened, acknowledged, updated, escalated, resolved]
    required: true
  severity:
    description:
      - The runbook severity - V(P0) critical (complete outage, respond within 15 minutes), V(P1) high (major
        functionality impaired, 1 hour), V(P2) medium (minor issue, 4 hours), V(P3) low (cosmetic, 24 hours).
      - Required with O(state=opened). An incident keeps its severity.
    type: str
    choices: [P0, P1, P2, P3]
  title:
    description:
      - One-line title. Defaults to C(<severity> <kind>) (or C(<severity> incident)) for a new incident.
    type: str
  summary:
    description:
      - What is known, a few sentences. Copied into the post-mortem. With O(state=resolved) it is also the detail of
        the C(incident.resolved) event.
    type: str
  kind:
    description:
      - Free text kind, for example V(outage), V(degradation), V(data-corruption), V(security-breach). Escalation
        levels can escalate a kind at once (qflow.ops.incident_info O(qflow.ops.incident_info#module:escalation)).
    type: str
  event:
    description:
      - One event to add to the timeline.
    type: dict
    suboptions:
      step:
        description:
          - Stable key of the procedure step, for example V(p0.assess.health) or V(p0.mitigate.emergency_mode).
            Required. An event with the same step and content is recorded once.
        type: str
      action:
        description: What was done, for example V(enabled emergency mode on qflow-node-2).
        type: str
      status:
        description: Outcome of the step.
        type: str
        choices: [ok, failed, skipped, info]
        default: info
      detail:
        description: Explanation, error message, measured value.
        type: str
      host:
        description: Node the step ran on.
        type: str
      data:
        description:
          - Machine-readable details (kept in C(incident.json), shown compact in the Markdown). C(mitigated=true)
            marks the event as the mitigation. Keep secrets out of it.
        type: dict
  level:
    description:
      - The escalation level, with O(state=escalated) - V(1) Operations Team, V(2) Engineering Team, V(3)
        Management in the runbook.
    type: int
  escalation:
    description:
      - Details kept with the escalation record, with O(state=escalated), for example C(name), C(reason),
        C(channel), C(email), C(respond_within). C(reason) is the detail of the C(incident.escalated.level-<n>) event.
    type: dict
  owner:
    description: Who handles the incident (the incident commander).
    type: str
  affected:
    description:
      - Affected hosts. Added to the list of the incident (order kept, no duplicates).
    type: list
    elements: str
  now:
    description:
      - The current time, ISO 8601 (for tests and replays). Defaults to the clock.
    type: str
notes:
  - The records are plain files meant to be read by people and kept with the incident. Keep secrets out of
    O(summary), O(event) and O(escalation).
  - Concurrent runs on one controller are serialised by a lock on C(<incident_dir>/.lock).
seealso:
  - module: qflow.ops.incident_info
  - module: qflow.ops.notify
'''

EXAMPLES = r'''
- name: Open a P0 incident
  qflow.ops.incident:
    incident_dir: /srv/qflow/incidents
    state: opened
    severity: P0
    kind: outage
    title: Qflow API down on every node
    affected: "{{ ansible_play_hosts_all }}"
  delegate_to: localhost
  run_once: true
  register: incident

- name: Record a step of the procedure
  qflow.ops.incident:
    incident_dir: /srv/qflow/incidents
    id: "{{ incident.id }}"
    state: updated
    event:
      step: p0.mitigate.emergency_mode
      action: enabled emergency mode
      status: ok
      host: qflow-node-2
      data: {mitigated: true}
  delegate_to: localhost
  run_once: true

- name: Escalate to the engineering team
  qflow.ops.incident:
    incident_dir: /srv/qflow/incidents
    id: "{{ incident.id }}"
    state: escalated
    level: 2
    escalation:
      name: Engineering Team
      reason: any P0 incident
      channel: "#engineering-alerts"
  delegate_to: localhost
  run_once: true

- name: Resolve it (writes postmortem.md)
  qflow.ops.incident:
    incident_dir: /srv/qflow/incidents
    id: "{{ incident.id }}"
    state: resolved
    summary: A bad release crashed every node; rolled back to 0.1.0.
  delegate_to: localhost
  run_once: true
  register: resolved
'''

RETURN = r'''
id:
  description: The incident id (generated when O(id) was not given).
  returned: success
  type: str
  sample: INC-20261127-031245-P0
incident:
  description: The incident record as written (or as it would be written in check mode).
  returned: success
  type: dict
  sample:
    id: INC-20261127-031245-P0
    severity: P0
    title: Qflow API down on every node
    kind: outage
    summary: null
    status: acknowledged
    opened_at: '2026-11-27T03:12:45.000Z'
    acknowledged_at: '2026-11-27T03:15:57.000Z'
    resolved_at: null
    response_due_at: '2026-11-27T03:27:45.000Z'
    response_met: true
    affected: [qflow-node-1, qflow-node-2]
    owner: alice
    escalations: [{level: 1, at: '2026-11-27T03:12:46.000Z', name: Operations Team}]
    timeline:
      - {time: '2026-11-27T03:12:45.000Z', step: incident.opened, action: opened P0 incident, status: info,
         detail: Qflow API down on every node, host: null, data: {severity: P0, kind: outage}}
created:
  description: Whether this run opened a new incident.
  returned: success
  type: bool
  sample: true
path:
  description: Directory of the incident.
  returned: success
  type: str
  sample: /srv/qflow/incidents/INC-20261127-031245-P0
json_path:
  description: Path of C(incident.json).
  returned: success
  type: str
  sample: /srv/qflow/incidents/INC-20261127-031245-P0/incident.json
markdown_path:
  description: Path of C(timeline.md).
  returned: success
  type: str
  sample: /srv/qflow/incidents/INC-20261127-031245-P0/timeline.md
postmortem_path:
  description: Path of C(postmortem.md).
  returned: when the incident is resolved
  type: str
  sample: /srv/qflow/incidents/INC-20261127-031245-P0/postmortem.md
diff:
  description: Summary of the record before and after (C(before) is empty for a new incident).
  returned: success
  type: dict
  sample:
    before: {status: open, severity: P0, timeline: 3, escalations: [1], acknowledged_at: null, resolved_at: null}
    after: {status: acknowledged, severity: P0, timeline: 4, escalations: [1], acknowledged_at: '2026-11-27T03:15:57.000Z',
            resolved_at: null}
msg:
  description: One-line summary, or the cause of the failure.
  returned: always
  type: str
  sample: INC-20261127-031245-P0 acknowledged (P0, acknowledged)
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _incident as incident


def main():
    module = AnsibleModule(argument_spec=incident.argument_spec(), supports_check_mode=True)
    try:
        plan = incident.apply(module.params, module.check_mode)
    except incident.IncidentError as exc:
        module.fail_json(msg=str(exc), changed=False)
    for warning in plan.warnings:
        module.warn(warning)
    module.exit_json(**plan.result)


if __name__ == '__main__':
    main()
