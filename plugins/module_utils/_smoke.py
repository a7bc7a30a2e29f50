# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: the smoke test (a known flow executes to completion). May change without notice."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import json
import time

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowApiError

DEFAULT_FLOW_ID = 'qflow-ops-smoke-test'
FINAL_STATES = ('completed', 'failed', 'aborted')


class SmokeError(Exception):
    pass


def token_identity(token):
    """The sQuid identity carried by a token (decoded, not verified), or None."""
    if not token:
        return None
    try:
        text = token.strip()
        payload = json.loads(base64.b64decode(text + '=' * (-len(text) % 4)).decode('utf-8'))
    except Exception:  # noqa: BLE001 - any undecodable token simply has no identity
        return None
    identity = payload.get('identity') if isinstance(payload, dict) else None
    return identity if isinstance(identity, str) and identity else None


def smoke_flow(flow_id, owner):
    """A two-step flow that touches the engine, the validation pipeline and the state store, nothing else."""
    return {
        'id': flow_id,
        'name': 'qflow.ops smoke test',
        'version': '1.0.0',
        'owner': owner,
        'description': 'Created by qflow.ops.smoke_test: proves that a flow executes to completion.',
        'steps': [
            {'id': 'check', 'type': 'task', 'action': 'noop', 'onSuccess': 'done'},
            {'id': 'done', 'type': 'task', 'action': 'noop'},
        ],
        'metadata': {'tags': ['qflow-ops', 'smoke-test'], 'category': 'operations', 'visibility': 'private',
                     'requiredPermissions': []},
    }


def find_flow(client, flow_id):
    try:
        return client.get('/api/v1/flows/%s' % flow_id).get('flow')
    except QflowApiError as exc:
        if exc.status == 404:
            return None
        raise


def wait_execution(client, execution_id, timeout, poll_interval, clock=time.monotonic, sleep=time.sleep):
    """Poll the execution until it reaches a final state or the timeout; return the last execution document."""
    deadline = clock() + timeout
    execution = {}
    while True:
        execution = client.get('/api/v1/executions/%s' % execution_id).get('execution') or {}
        if execution.get('status') in FINAL_STATES or clock() >= deadline:
            return execution
        sleep(poll_interval)
