#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: incident_info
short_description: List incidents, their age, overdue response and the escalation levels due
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Reads the incident records written by M(qflow.ops.incident) under O(incident_dir), on the controller (files only).
  - Returns every incident (newest first, filtered by O(status) and O(severity)) or the one O(id), each with computed
    fields - C(age_seconds), C(open), C(overdue) (still C(open), not acknowledged, after C(response_due_at)),
    C(escalations_recorded), C(escalations_due) and C(escalations_upcoming) for the escalation policy O(escalation),
    and the times to acknowledge, mitigate and resolve.
  - An escalation level is due for an incident that is not resolved when the incident's severity is in the level's
    O(escalation[].severities) and it was opened at least O(escalation[].after) ago, or when the incident's kind is in
    O(escalation[].kinds_immediate) (due at once, whatever the severity). Levels already recorded (state
    V(escalated)) are not due again. Several entries of one level count as one level - the earliest due time wins.
  - Never writes anything.
extends_documentation_fragment:
  - qflow.ops._attributes
  - qflow.ops._attributes.INFO_MODULE
options:
  incident_dir:
    description:
      - Directory that holds the incidents. A missing directory has no incidents.
      - If not set, the value of the E(QFLOW_INCIDENT_DIR) environment variable is used.
    type: path
    required: true
  id:
    description:
      - Only this incident (returned as RV(incident) as well). An unknown id fails, naming the known ones.
    type: str
  status:
    description: Only incidents with one of these statuses.
    type: list
    elements: str
    choices: [open, acknowledged, resolved]
  severity:
    description: Only incidents with one of these severities.
    type: list
    elements: str
    choices: [P0, P1, P2, P3]
  escalation:
    description:
      - The escalation policy, one entry per level and trigger. Defaults to the runbook's - level 1 Operations Team
        (C(#ops-alerts), ops-team@example.com) for P0, P1 and P2 at once, respond within 15m; level 2 Engineering
        Team (C(#engineering-alerts), engineering@example.com) for P0 at once and P1 after 1h, respond within 30m;
        level 3 Management (management@example.com) for P0 after 2h and for kind V(security-breach) at once,
        respond within 1h.
    type: list
    elements: dict
    suboptions:
      level:
        description: Escalation level, 1 and up.
        type: int
        required: true
      name:
        description: Who is paged at this level. Defaults to C(Level <n>).
        type: str
      severities:
        description: Severities this entry escalates.
        type: list
        elements: str
        choices: [P0, P1, P2, P3]
        default: [P0, P1, P2, P3]
      after:
        description:
          - How long after the opening the level is due if the incident is not resolved, a duration such as V(0s),
            V(15m), V(1h), V(2h) (see the qflow.ops.seconds filter).
        type: str
        default: 0s
      respond_within:
        description: How fast this level is expected to respond (a duration). Informational, sent with the escalation.
        type: str
      channel:
        description: Chat channel of the level, for example V(#ops-alerts).
        type: str
      email:
        description: E-mail addresses of the level.
        type: list
        elements: str
        default: []
      kinds_immediate:
        description: Incident kinds that make this level due at once, whatever the severity (V(security-breach)).
        type: list
        elements: str
        default: []
  now:
    description: The current time, ISO 8601 (for tests and replays). Defaults to the clock.
    type: str
seealso:
  - module: qflow.ops.incident
'''

EXAMPLES = r'''
- name: Open incidents and what is due
  qflow.ops.incident_info:
    incident_dir: /srv/qflow/incidents
    status: [open, acknowledged]
  delegate_to: localhost
  run_once: true
  register: incidents

- name: Page whoever is due
  ansible.builtin.debug:
    msg: "{{ item.id }}: level {{ item.level }} ({{ item.name }}) - {{ item.reason }}"
  loop: "{{ incidents.escalations_due }}"

- name: One incident against tiny thresholds (a game day)
  qflow.ops.incident_info:
    incident_dir: /srv/qflow/incidents
    id: INC-20261127-031245-P0
    escalation:
      - {level: 1, name: Operations Team, severities: [P0], after: 0s, channel: "#ops-alerts"}
      - {level: 3, name: Management, severities: [P0], after: 10s, email: [management@example.com]}
  register: one
'''

RETURN = r'''
incidents:
  description:
    - The incidents, newest first, each the record of M(qflow.ops.incident) plus the computed fields below.
  returned: success
  type: list
  elements: dict
  contains:
    age_seconds:
      description: Seconds since the opening.
      type: int
    open:
      description: Not resolved.
      type: bool
    overdue:
      description: Still C(open) (not acknowledged) after its C(response_due_at).
      type: bool
    escalations_recorded:
      description: Levels already escalated to.
      type: list
      elements: int
    escalations_due:
      description:
        - Levels due now and not recorded, C({level, name, channel, email, after, respond_within,
          respond_within_seconds, due_at, reason}), lowest level first.
      type: list
      elements: dict
    escalations_upcoming:
      description: Levels that will be due later if the incident stays unresolved, same keys.
      type: list
      elements: dict
    time_to_acknowledge_seconds:
      description: Seconds from the opening to the acknowledgement, C(null) before.
      type: float
    time_to_mitigate_seconds:
      description: Seconds from the opening to the first mitigation event (see M(qflow.ops.incident)), C(null) if none.
      type: float
    time_to_resolve_seconds:
      description: Seconds from the opening to the resolution, C(null) before.
      type: float
    mitigated_by:
      description: Step of the first mitigation event.
      type: str
  sample:
    - id: INC-20261127-031245-P0
      severity: P0
      status: open
      age_seconds: 7300
      open: true
      overdue: true
      escalations_recorded: [1, 2]
      escalations_due:
        - {level: 3, name: Management, channel: null, email: [management@example.com], after: 2h,
           respond_within: 1h, respond_within_seconds: 3600.0, due_at: '2026-11-27T05:12:45.000Z',
           reason: P0 incident not resolved within 2h}
      escalations_upcoming: []
incident:
  description: The incident O(id), with the computed fields.
  returned: when O(id) is given
  type: dict
  sample: {id: INC-20261127-031245-P0, status: open, overdue: false, escalations_due: []}
count:
  description: Number of incidents returned.
  returned: success
  type: int
  sample: 1
escalations_due:
  description: Every due escalation of the incidents returned, each with the incident C(id).
  returned: success
  type: list
  elements: dict
  sample: [{id: INC-20261127-031245-P0, level: 3, name: Management, reason: P0 incident not resolved within 2h}]
overdue:
  description: Ids of the incidents past their response time without an acknowledgement.
  returned: success
  type: list
  elements: str
  sample: [INC-20261127-031245-P0]
now:
  description: The time the computation used.
  returned: success
  type: str
  sample: '2026-11-27T05:14:25.000Z'
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _incident as incident


def main():
    module = AnsibleModule(argument_spec=incident.info_argument_spec(), supports_check_mode=True)
    try:
        result, warnings = incident.info(module.params)
    except incident.IncidentError as exc:
        module.fail_json(msg=str(exc))
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
