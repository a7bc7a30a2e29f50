#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: smoke_test
short_description: Prove that a known flow executes to completion on a Qflow node
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - The runbook's post-maintenance smoke test. Makes sure the smoke-test flow exists on the node (creates it with
    C(POST /api/v1/flows) when it is missing), starts one execution with C(POST /api/v1/flows/{id}/start) and polls
    C(GET /api/v1/executions/{id}) until the execution is C(completed), C(failed) or C(aborted), or O(wait_timeout)
    passes.
  - The module fails when the execution does not complete, naming its final status, the step it stopped at and its
    error, so a maintenance window does not end on a node that cannot run flows.
  - The flow is a two-step C(noop) flow tagged C(qflow-ops) and C(smoke-test). Pass O(flow) to use a flow of your
    own instead.
extends_documentation_fragment:
  - qflow.ops._api
  - qflow.ops._api.HTTP
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is created and no execution is started. The result says whether the flow would be created.
  diff_mode:
    support: none
  idempotent:
    description: When run twice with the same arguments, the second run changes nothing.
    support: full
    details:
      - The flow is created once. The executions the module starts are run records, not configuration, so they do
        not count as a change.
options:
  flow_id:
    description:
      - Id of the smoke-test flow.
    type: str
    default: qflow-ops-smoke-test
  flow:
    description:
      - Definition of the flow to create when O(flow_id) does not exist on the node, in the Qflow flow schema
        (C(id), C(name), C(version), C(owner), C(steps), C(metadata)). Its C(id) must equal O(flow_id).
      - Default is the built-in two-step C(noop) flow, owned by O(owner).
    type: dict
  owner:
    description:
      - sQuid identity that owns the built-in flow. Default is the identity carried by O(api_token).
    type: str
  create:
    description:
      - Create the flow when it is missing. With V(false), a missing flow fails the module.
    type: bool
    default: true
  context:
    description:
      - Execution context sent with C(POST /api/v1/flows/{id}/start). C(triggerType) defaults to V(manual).
    type: dict
    default: {}
  wait_timeout:
    description:
      - Seconds to wait for the execution to finish.
    type: int
    default: 60
  attempts:
    description:
      - Executions to try before the smoke test counts as failed. Qflow nodes fail a small share of executions under
        normal load (the runbook's error-rate threshold is 1%), so one failed execution followed by a completed one
        passes; every attempt is returned in RV(attempts).
    type: int
    default: 2
  poll_interval:
    description:
      - Seconds between two polls of the execution.
    type: float
    default: 0.5
seealso:
  - module: qflow.ops.health_info
  - module: qflow.ops.perf_baseline
'''

EXAMPLES = r'''
- name: Smoke test after the maintenance window
  qflow.ops.smoke_test:
    api_url: "{{ qflow_api_url }}"
    api_token: "{{ qflow_api_token }}"
  register: qflow_smoke

- name: Show how long the execution took
  ansible.builtin.debug:
    msg: "{{ qflow_smoke.execution_id }} {{ qflow_smoke.status }} in {{ qflow_smoke.duration_ms }} ms"
'''

RETURN = r'''
flow_id:
  description: Id of the smoke-test flow.
  returned: always
  type: str
  sample: qflow-ops-smoke-test
flow_created:
  description: Whether the flow was created by this run (would be, in check mode).
  returned: success
  type: bool
  sample: false
execution_id:
  description: Id of the execution started. Not returned in check mode.
  returned: success and not check mode
  type: str
  sample: 7f9c2d4e-3b1a-4c55-9f0e-2a6b8d1c0e11
status:
  description: Final status of the execution (V(completed) on success).
  returned: success and not check mode
  type: str
  sample: completed
duration_ms:
  description: Milliseconds from the start request to the final status, measured by the module.
  returned: success and not check mode
  type: int
  sample: 412
attempts:
  description: One entry per execution started, with its id, final status and duration.
  returned: success and not check mode, or failure after an execution was started
  type: list
  elements: dict
  sample: [{"execution_id": "7f9c2d4e-3b1a-4c55-9f0e-2a6b8d1c0e11", "status": "completed", "duration_ms": 412}]
execution:
  description: The execution document the node returned last.
  returned: success and not check mode
  type: dict
  sample: {"executionId": "7f9c2d4e-3b1a-4c55-9f0e-2a6b8d1c0e11", "status": "completed", "completedSteps": ["check", "done"]}
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowClient, QflowError, api_argument_spec
from ansible_collections.qflow.ops.plugins.module_utils import _smoke as smoke


def run(module, client):
    p = module.params
    flow_id = p['flow_id']
    result = dict(changed=False, flow_id=flow_id, flow_created=False)
    if p['flow'] is not None and p['flow'].get('id') != flow_id:
        raise smoke.SmokeError('flow.id is %r but flow_id is %r; they must be equal' % (p['flow'].get('id'), flow_id))
    if smoke.find_flow(client, flow_id) is None:
        if not p['create']:
            raise smoke.SmokeError('flow %s does not exist on %s and create is false; create it or set create: true'
                                   % (flow_id, client.base_url))
        result.update(changed=True, flow_created=True)
        if module.check_mode:
            return result
        owner = p['owner'] or smoke.token_identity(client.token) or 'squid:ops:qflow-ops'
        client.post('/api/v1/flows', body={'flowData': p['flow'] or smoke.smoke_flow(flow_id, owner), 'format': 'json'})
    if module.check_mode:
        return result
    context = dict(p['context'] or {})
    context.setdefault('triggerType', 'manual')
    attempts = []
    result['attempts'] = attempts
    for dummy in range(p['attempts']):
        started = time.monotonic()
        execution_id = client.post('/api/v1/flows/%s/start' % flow_id, body={'context': context}).get('executionId')
        if not execution_id:
            raise smoke.SmokeError('the node accepted the start of %s but returned no executionId' % flow_id, result)
        execution = smoke.wait_execution(client, execution_id, p['wait_timeout'], p['poll_interval'])
        duration = int((time.monotonic() - started) * 1000)
        attempts.append({'execution_id': execution_id, 'status': execution.get('status'), 'duration_ms': duration})
        result.update(execution_id=execution_id, status=execution.get('status'), execution=execution,
                      duration_ms=duration)
        if execution.get('status') == 'completed':
            return result
    where = execution.get('currentStep') or '?'
    error = execution.get('error') or 'no error recorded'
    if isinstance(error, dict):
        error = '%s (%s)' % (error.get('message'), error.get('type'))
    if execution.get('status') in smoke.FINAL_STATES:
        why = 'ended %s at step %s: %s' % (execution.get('status'), where, error)
    else:
        why = 'is still %s at step %s after %ss' % (execution.get('status'), where, p['wait_timeout'])
    raise smoke.SmokeError('smoke-test flow %s on %s did not complete in %d attempt(s); the last execution %s %s. '
                           'Look at the node logs (qflow.ops.logs_info) for these execution ids.'
                           % (flow_id, client.base_url, len(attempts), execution_id, why), result)


def main():
    spec = api_argument_spec()
    spec.update(
        flow_id=dict(type='str', default=smoke.DEFAULT_FLOW_ID),
        flow=dict(type='dict'),
        owner=dict(type='str'),
        create=dict(type='bool', default=True),
        context=dict(type='dict', default={}),
        wait_timeout=dict(type='int', default=60),
        poll_interval=dict(type='float', default=0.5),
        attempts=dict(type='int', default=2),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if module.params['wait_timeout'] < 1 or module.params['poll_interval'] <= 0 or module.params['attempts'] < 1:
        module.fail_json(msg='wait_timeout and attempts must be at least 1 and poll_interval above 0', changed=False)
    client = QflowClient(module)
    try:
        result = run(module, client)
    except smoke.SmokeError as exc:
        extra = exc.args[1] if len(exc.args) > 1 else {}
        module.fail_json(msg=exc.args[0], **extra)
    except QflowError as exc:
        module.fail_json(msg=str(exc), changed=False, **(exc.to_result() if hasattr(exc, 'to_result') else {}))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
