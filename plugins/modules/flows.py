#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: flows
short_description: Pause every running execution of a Qflow node, and resume exactly those later
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - These are the runbook commands C(qflow flows pause-all) (O(state=paused)) and C(qflow flows resume-all)
    (O(state=resumed)). They go through the executions API of the node.
  - O(state=paused) lists the running executions, going through every page of
    C(GET /api/v1/executions?status=running&limit=100&offset=...). It pauses each one with
    C(POST /api/v1/executions/:id/pause) and adds it to the record file O(record_path) right after the node accepted
    the pause. The listing is repeated, up to 3 rounds, so that executions that started meanwhile are paused too.
  - The record lists only the executions this module paused. An execution that was already paused (by someone else) is
    not touched and not recorded. An existing record is merged with, so several pause-all runs add up. Its
    C(paused_at) is the time of the first pause, and each entry has its own C(paused_at).
  - An execution that finished between the listing and the pause is refused by the node with
    C(400 PAUSE_EXECUTION_ERROR) (C(Cannot pause execution in status completed)). It is listed in
    RV(skipped_executions) and is not a failure.
  - Pending executions cannot be paused. The reference node pauses running executions only. They are listed in
    RV(not_pausable) with a warning. Enable emergency mode first (M(qflow.ops.node_mode)) so that nothing
    new starts, and run again once they are running.
  - O(state=resumed) reads the record. Each recorded execution that is still paused (C(GET /api/v1/executions/:id))
    is resumed with C(POST /api/v1/executions/:id/resume). The others are listed in RV(skipped_executions) with their
    status (finished, aborted, resumed by someone else, unknown to the node after a restore).
  - After a resume-all the record is archived. It is renamed to C(<record_path>.resumed-<YYYYmmddTHHMMSSZ>) (returned
    as RV(archived_record)), which keeps evidence for the incident timeline, and a later run finds no record. The
    archives are not removed by the module.
  - With no record, O(state=resumed) changes nothing (C(nothing was paused by qflow.ops.flows)).
  - When the record names a node (the C(nodeId) of C(GET /health)) and O(api_url) answers as another node, the module
    fails without changing anything.
extends_documentation_fragment:
  - qflow.ops._api
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Only the read routes are called. Nothing is paused or resumed, and the record is neither written nor archived.
      - RV(paused) lists the running executions that would be paused. RV(resumed) lists the recorded executions that
        are still paused. Races with executions that finish in between cannot be predicted.
  diff_mode:
    support: full
    details:
      - Shows the number of executions in the record before and after (predicted in check mode).
  idempotent:
    description: When run twice with the same arguments, the second run changes nothing.
    support: full
    details:
      - A second O(state=paused) with nothing running is not changed. A second O(state=resumed) finds no record and is
        not changed.
options:
  state:
    description:
      - V(paused) pauses every running execution and records it in O(record_path).
      - V(resumed) resumes the recorded executions that are still paused and archives the record.
    type: str
    choices: [paused, resumed]
    required: true
  record_path:
    description:
      - "The record file, on the host that runs the module (the node). It is JSON
        C({paused_at, node_id, executions: [{executionId, flowId, paused_at}]}), written atomically with mode C(0600)."
      - Its directory must exist. Use the same path for the pause and the resume. Keep it outside the node's data dir
        (a restore replaces that), for example C(/var/lib/qflow-ops/paused-executions.json).
    type: path
    required: true
  flow_ids:
    description:
      - Only the executions of these flows. With O(state=resumed), the record entries of other flows stay in the
        record, which is then rewritten rather than archived.
    type: list
    elements: str
notes:
  - Run the pause after C(qflow.ops.node_mode mode=emergency state=enabled) so that no new execution starts meanwhile.
  - An isolated node (M(qflow.ops.node_mode) V(isolation)) answers C(503 NODE_ISOLATED) on the executions API. Pause
    before isolating.
  - Two runs on the same record at the same time are not coordinated. Run one pause or resume per node at a time.
  - A node restart marks the executions that were paused as failed (reference node), so a later resume skips them.
seealso:
  - module: qflow.ops.node_mode
'''

EXAMPLES = r'''
- name: qflow emergency enable
  qflow.ops.node_mode:
    api_url: "{{ qflow_api_url }}"
    api_token: "{{ qflow_api_token }}"
    mode: emergency
    state: enabled
    reason: "{{ incident_id }}"

- name: The record directory exists
  ansible.builtin.file:
    path: /var/lib/qflow-ops
    state: directory
    mode: "0700"
  become: true

- name: qflow flows pause-all
  qflow.ops.flows:
    api_url: "{{ qflow_api_url }}"
    api_token: "{{ qflow_api_token }}"
    state: paused
    record_path: /var/lib/qflow-ops/paused-executions.json
  become: true
  register: qflow_pause

- name: Report what was paused
  ansible.builtin.debug:
    msg: >-
      paused {{ qflow_pause.paused | length }}, skipped {{ qflow_pause.skipped_executions | length }},
      pending {{ qflow_pause.not_pausable | length }}

- name: qflow flows resume-all
  qflow.ops.flows:
    api_url: "{{ qflow_api_url }}"
    api_token: "{{ qflow_api_token }}"
    state: resumed
    record_path: /var/lib/qflow-ops/paused-executions.json
  become: true

- name: Pause only the executions of one flow
  qflow.ops.flows:
    api_url: "{{ qflow_api_url }}"
    state: paused
    record_path: /var/lib/qflow-ops/paused-executions.json
    flow_ids: [payments-settlement]
'''

RETURN = r'''
paused:
  description: Ids of the executions paused by this run (that would be paused, in check mode).
  returned: success
  type: list
  elements: str
  sample: ["7c0e4f5e-5d1b-4d39-9a0f-0d7f3c1c2b11"]
resumed:
  description: Ids of the executions resumed by this run (that would be resumed, in check mode).
  returned: success
  type: list
  elements: str
  sample: []
skipped_executions:
  description:
    - Executions left alone. The key is not called C(skipped), because Ansible would take a non-empty C(skipped) for
      a skipped task. With O(state=paused), they finished between the listing and the pause. With O(state=resumed),
      they are no longer paused or are unknown to the node. C(status) is V(null) when it is unknown.
  returned: success
  type: list
  elements: dict
  sample: [{"executionId": "0b6e2a8c-1f4e-4b7a-9c1d-2e3f4a5b6c7d", "flowId": "flow-1", "status": "completed",
            "reason": "Cannot pause execution in status completed"}]
not_pausable:
  description: With O(state=paused), the pending executions, which the node cannot pause.
  returned: success
  type: list
  elements: dict
  sample: [{"executionId": "5d2a9f10-3c4b-4e5f-8a7b-6c5d4e3f2a1b", "flowId": "flow-2", "status": "pending",
            "reason": "pending: the node pauses running executions only"}]
record_path:
  description: The record file.
  returned: always
  type: str
  sample: /var/lib/qflow-ops/paused-executions.json
record:
  description:
    - The record after the run (predicted in check mode). It is V(null) when there is none, which is the case after a
      complete resume.
  returned: success
  type: dict
  sample: {"paused_at": "2026-11-27T03:12:45.123Z", "node_id": "qflow-node-1",
           "executions": [{"executionId": "7c0e4f5e-5d1b-4d39-9a0f-0d7f3c1c2b11", "flowId": "flow-1", "paused_at": "2026-11-27T03:12:45.123Z"}]}
archived_record:
  description: Where O(state=resumed) moved the record, or V(null) (nothing archived, or check mode).
  returned: success
  type: str
  sample: /var/lib/qflow-ops/paused-executions.json.resumed-20261127T041500Z
node_id:
  description: The C(nodeId) that C(GET /health) reported, or V(null) (real Qflow does not report it, or no record).
  returned: success
  type: str
  sample: qflow-node-1
diff:
  description: Number of executions in the record before and after (predicted in check mode).
  returned: success
  type: dict
  contains:
    before:
      description: Executions recorded before the task.
      type: dict
      sample: {executions: 0}
    after:
      description: Executions recorded after the task.
      type: dict
      sample: {executions: 3}
    before_header:
      description: The record file.
      type: str
      sample: /var/lib/qflow-ops/paused-executions.json
    after_header:
      description: The record file.
      type: str
      sample: /var/lib/qflow-ops/paused-executions.json
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: paused 3 running executions (1 skipped); recorded in /var/lib/qflow-ops/paused-executions.json
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils import _flows as engine
from ansible_collections.qflow.ops.plugins.module_utils._api import QflowClient, QflowError, api_argument_spec
from ansible_collections.qflow.ops.plugins.module_utils._time import utcnow


def main():
    spec = api_argument_spec()
    spec.update(
        state=dict(type='str', required=True, choices=['paused', 'resumed']),
        record_path=dict(type='path', required=True),
        flow_ids=dict(type='list', elements='str'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    path = p['record_path']
    flow_ids = [f for f in (p['flow_ids'] or []) if f]
    if p['flow_ids'] is not None and not flow_ids:
        module.fail_json(msg='flow_ids is empty: leave it out to act on every flow; nothing was changed',
                         changed=False, record_path=path)
    client = QflowClient(module)
    action = engine.pause_all if p['state'] == 'paused' else engine.resume_all
    try:
        result = action(client, path, flow_ids, module.check_mode, utcnow, module.warn)
    except engine.FlowsError as exc:
        module.fail_json(msg=str(exc), changed=exc.changed, record_path=path, **exc.extra)
    except QflowError as exc:
        error = engine.explain(exc)
        module.fail_json(msg=str(error) + ' Nothing was changed.', changed=False, record_path=path, **error.extra)
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot update the record %s: %s. The executions were %s as listed in the node; check '
                         'the file and run again.' % (path, exc, p['state']), changed=True, record_path=path)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
