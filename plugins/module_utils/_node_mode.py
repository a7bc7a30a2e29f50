# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: read and switch the operating modes of a Qflow node. May change without notice.

Routes (contract extension, operating modes): GET /api/v1/system/modes -> {modes: {<mode>: {enabled, reason, since,
by}}}; PUT /api/v1/system/modes/<mode> {enabled, reason} (admin token) -> {mode, enabled, reason, since, by, changed}.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowApiError, QflowHttpError

MODES = ('emergency', 'lockdown', 'isolation')
MODES_PATH = '/api/v1/system/modes'
CONTRACT = 'docs/qflow-node-contract.md'

EXTENSION_HINT = (
    'The node does not implement the operating modes (emergency, lockdown, isolation): they are a contract extension '
    '(%s, "Operating modes"), not part of real Qflow. Upgrade the node to a build that serves GET %s and '
    'PUT %s/<mode> (the reference node in lab/ does), or provide them through a sidecar; until then apply the '
    'runbook step by hand (stop the workload, take the node out of the load balancer, restrict tokens).'
    % (CONTRACT, MODES_PATH, MODES_PATH))


class NodeModeError(Exception):
    """A complete message for fail_json (what went wrong and what to do)."""

    def __init__(self, msg, extra=None):
        super(NodeModeError, self).__init__(msg)
        self.msg = msg
        self.extra = extra or {}

    def __str__(self):
        return self.msg


def explain(exc, action):
    """A NodeModeError for a QflowApiError / QflowHttpError raised while ``action`` (e.g. 'reading the modes')."""
    if isinstance(exc, QflowApiError):
        extra = exc.to_result()
        if exc.status == 404 and exc.code in ('NOT_FOUND', None):
            return NodeModeError('While %s: the Qflow API answered 404 NOT_FOUND. %s' % (action, EXTENSION_HINT), extra)
        if exc.status == 403:
            if exc.code == 'LOCKDOWN_ACTIVE':
                hint = ('Security lockdown is active on the node: only admin tokens are accepted. Use an operator '
                        'token with permission "*" or "admin:*" (qflow.ops.operator_token issues one from the env file).')
            else:
                hint = ('Switching an operating mode needs an admin token (permission "*" or "admin:*"); the token '
                        'in api_token / QFLOW_API_TOKEN lacks it. Use the operator token of the inventory '
                        '(qflow_api_token) or issue one with qflow.ops.operator_token.')
            return NodeModeError('While %s: %s %s' % (action, exc.msg, hint), extra)
        if exc.status == 401:
            return NodeModeError(
                'While %s: %s If QFLOW_JWT_SECRET was rotated without keep_previous (revoke-all), every older token '
                'is dead: issue a fresh one with qflow.ops.operator_token.' % (action, exc.msg), extra)
        if exc.code == 'UNKNOWN_MODE':
            known = (exc.details or {}).get('known') if isinstance(exc.details, dict) else None
            return NodeModeError('While %s: %s The node knows the modes %s; check its version against %s.'
                                 % (action, exc.msg, known, CONTRACT), extra)
        return NodeModeError('While %s: %s' % (action, exc.msg), extra)
    if isinstance(exc, QflowHttpError):
        return NodeModeError('%s The operating modes were not %s.' % (
            exc.msg, 'read' if action.startswith('reading') else 'changed'), dict(kind=exc.kind))
    return NodeModeError('While %s: %s' % (action, exc))


def _norm(state):
    """One mode entry with exactly the keys enabled, reason, since, by."""
    state = state if isinstance(state, dict) else {}
    return dict(enabled=state.get('enabled') is True, reason=state.get('reason'), since=state.get('since'),
                by=state.get('by'))


def read_modes(client):
    """{mode: {enabled, reason, since, by}} for every mode the node reports. Raise NodeModeError."""
    try:
        data = client.get(MODES_PATH)
    except (QflowApiError, QflowHttpError) as exc:
        raise explain(exc, 'reading the modes (GET %s)' % MODES_PATH)
    modes = data.get('modes') if isinstance(data, dict) else None
    if not isinstance(modes, dict):
        raise NodeModeError('Qflow API GET %s answered %r instead of {modes: {emergency: ..., lockdown: ..., '
                            'isolation: ...}}. Check that api_url points to a Qflow node that implements the '
                            'operating modes (%s).' % (MODES_PATH, data, CONTRACT))
    return dict((str(name), _norm(state)) for name, state in modes.items())


def put_mode(client, mode, enabled, reason):
    """PUT the mode; return the node's answer. Raise NodeModeError."""
    body = {'enabled': bool(enabled)}
    if reason is not None:
        body['reason'] = reason
    path = '%s/%s' % (MODES_PATH, mode)
    try:
        data = client.put(path, body)
    except (QflowApiError, QflowHttpError) as exc:
        raise explain(exc, '%s %s mode (PUT %s)' % ('enabling' if enabled else 'disabling', mode, path))
    return data if isinstance(data, dict) else {}


def view(state):
    """What the diff shows of one mode."""
    return dict(enabled=state['enabled'], reason=state['reason'])


def predict(modes, mode, enabled, reason):
    """The modes after switching ``mode`` (check mode): since/by are unknown until the node records them."""
    after = dict((k, dict(v)) for k, v in modes.items())
    current = after[mode]
    if current['enabled'] != enabled:
        after[mode] = dict(enabled=enabled, reason=reason if reason is not None else (current['reason'] if enabled else None),
                           since=None, by=None)
    return after
