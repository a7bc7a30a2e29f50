# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: pause every running execution of a Qflow node and resume exactly those. May change without notice.

Routes (real Qflow, contract §3.3): GET /api/v1/executions?status=&limit=&offset= -> {executions, pagination},
GET /api/v1/executions/:id -> {execution}, POST /api/v1/executions/:id/pause|resume (400 PAUSE_EXECUTION_ERROR /
RESUME_EXECUTION_ERROR when the execution is not in a state that allows it). GET /health for the nodeId (extension).

The record file (on the node) lists the executions this code paused, and only those:
{"paused_at": iso, "node_id": str|null, "executions": [{"executionId", "flowId", "paused_at"}]}.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re

from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowApiError, QflowHttpError
from ansible_collections.qflow.ops.plugins.module_utils._files import write_atomic
from ansible_collections.qflow.ops.plugins.module_utils._time import iso

EXECUTIONS_PATH = '/api/v1/executions'
PAGE = 100
MAX_PAGES = 1000
ROUNDS = 3
RECORD_MODE = 0o600
_STATUS_RE = re.compile(r'in status (\w+)')

NOT_PAUSABLE_REASON = 'pending: the node pauses running executions only'


class FlowsError(Exception):
    """A complete message for fail_json (what went wrong and what to do). ``changed``: something was done before."""

    def __init__(self, msg, extra=None, changed=False):
        super(FlowsError, self).__init__(msg)
        self.msg = msg
        self.extra = extra or {}
        self.changed = changed

    def __str__(self):
        return self.msg


def explain(exc):
    """A FlowsError for a QflowApiError / QflowHttpError, with advice for the incident modes."""
    if isinstance(exc, FlowsError):
        return exc
    if not isinstance(exc, QflowApiError):
        return FlowsError(str(exc), dict(kind=getattr(exc, 'kind', None)))
    hint = ''
    if exc.code == 'NODE_ISOLATED':
        hint = (' The node is isolated (qflow.ops.node_mode mode=isolation): the executions API is closed. Pause the '
                'flows before isolating the node, or disable isolation first.')
    elif exc.code == 'LOCKDOWN_ACTIVE':
        hint = ' Security lockdown is active: use an admin token (permission "*"), see qflow.ops.operator_token.'
    elif exc.status == 404 and exc.code == 'NOT_FOUND':
        hint = (' The node does not serve the executions API (GET/POST %s, contract section 3.3); check that api_url '
                'points to a Qflow node.' % EXECUTIONS_PATH)
    elif exc.status == 401:
        hint = (' After a revoke-all rotation of QFLOW_JWT_SECRET every older token is dead: issue a fresh one with '
                'qflow.ops.operator_token.')
    return FlowsError(exc.msg + hint, exc.to_result())


# -- node ---------------------------------------------------------------------------------------------------------

def node_id(client):
    """The nodeId that GET /health reports (extension), or None."""
    response = client.request_raw('/health')
    data = response.data
    value = data.get('nodeId') if isinstance(data, dict) else None
    return str(value) if value else None


def list_executions(client, status, flow_ids=None):
    """Every execution in ``status`` (all pages), optionally only those of ``flow_ids``. Deduplicated by id."""
    found = {}
    order = []
    offset = 0
    wanted = set(flow_ids or [])
    for dummy in range(MAX_PAGES):
        data = client.get(EXECUTIONS_PATH, query={'status': status, 'limit': PAGE, 'offset': offset})
        items = data.get('executions') if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise FlowsError('Qflow API GET %s answered %r instead of {executions: [...], pagination}. Check that '
                             'api_url points to a Qflow node.' % (EXECUTIONS_PATH, data))
        for ex in items:
            if not isinstance(ex, dict) or not ex.get('executionId'):
                continue
            if ex.get('status', status) != status:  # a node that ignores the status filter
                continue
            if wanted and ex.get('flowId') not in wanted:
                continue
            eid = str(ex['executionId'])
            if eid not in found:
                order.append(eid)
                found[eid] = dict(executionId=eid, flowId=ex.get('flowId'), status=ex.get('status', status))
        if not items:
            break
        offset += len(items)
        pagination = data.get('pagination') if isinstance(data.get('pagination'), dict) else {}
        more = pagination.get('hasMore')
        if more is None:
            total = pagination.get('total')
            more = (offset < int(total)) if isinstance(total, int) else len(items) >= PAGE
        if not more:
            break
    else:
        raise FlowsError('GET %s?status=%s returned more than %d pages; refusing to go on. Filter with flow_ids.'
                         % (EXECUTIONS_PATH, status, MAX_PAGES))
    return [found[eid] for eid in order]


def _control_path(eid, action):
    return '%s/%s/%s' % (EXECUTIONS_PATH, quote(eid, safe=''), action)


def _refused(exc, action):
    """The node's reason when it refused to pause/resume an execution in the wrong state, else None."""
    if not isinstance(exc, QflowApiError):
        return None
    if exc.status == 400 and exc.code == '%s_EXECUTION_ERROR' % action.upper():
        return exc
    if exc.status == 404 and exc.code == 'EXECUTION_NOT_FOUND':
        return exc
    return None


def _node_message(exc):
    """The node's own message from a QflowApiError (the part after 'answered ...: ')."""
    text = exc.msg
    match = re.search(r'answered \d+(?: \S+)?: (.*?) \(requestId', text)
    return match.group(1) if match else text


def control(client, eid, action):
    """POST pause/resume. Return None when done, or a skip reason when the node refused for the execution's state."""
    try:
        client.post(_control_path(eid, action))
    except QflowApiError as exc:
        refused = _refused(exc, action)
        if refused is None:
            raise
        message = _node_message(refused)
        match = _STATUS_RE.search(message)
        return dict(reason=message, status=match.group(1) if match else None)
    return None


def control_quietly(client, eid, action):
    """control() that returns True when done and never raises (used to undo)."""
    try:
        return control(client, eid, action) is None
    except (QflowApiError, QflowHttpError):
        return False


def execution_status(client, eid):
    """The execution's status, or None when the node does not know it (404 EXECUTION_NOT_FOUND)."""
    try:
        data = client.get('%s/%s' % (EXECUTIONS_PATH, quote(eid, safe='')))
    except QflowApiError as exc:
        if exc.status == 404 and exc.code == 'EXECUTION_NOT_FOUND':
            return None
        raise
    ex = data.get('execution') if isinstance(data, dict) else None
    if not isinstance(ex, dict):
        ex = data if isinstance(data, dict) else {}
    return ex.get('status')


# -- record -------------------------------------------------------------------------------------------------------

def check_record_path(path):
    """Refuse a record path whose directory is missing or that is a directory."""
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        raise FlowsError('the directory of record_path %s does not exist; create it (on the node) or choose another '
                         'record_path; nothing was paused' % path)
    if os.path.isdir(path):
        raise FlowsError('record_path %s is a directory; give a file name, for example %s/qflow-paused.json; '
                         'nothing was changed' % (path, path.rstrip('/')))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise FlowsError('cannot write the record in %s (permission denied); run with become: true or choose another '
                         'record_path; nothing was paused' % directory)


def load_record(path):
    """The record, or None when the file does not exist. Raise FlowsError for an unreadable or corrupt file."""
    if os.path.isdir(path):
        raise FlowsError('record_path %s is a directory; give the record file; nothing was changed' % path)
    try:
        with open(path, 'rb') as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        if not os.path.lexists(path):
            return None
        raise FlowsError('cannot read the record %s: %s; run with become: true or fix its permissions; nothing was '
                         'changed' % (path, exc))
    problem = None
    try:
        record = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as exc:
        record, problem = None, 'not JSON (%s)' % exc
    if problem is None:
        if not isinstance(record, dict) or not isinstance(record.get('executions'), list):
            problem = 'not an object with an executions list'
        elif not all(isinstance(e, dict) and isinstance(e.get('executionId'), str) and e['executionId']
                     for e in record['executions']):
            problem = 'an entry of executions has no executionId'
    if problem:
        raise FlowsError('the record %s is corrupt: %s. It lists the executions qflow.ops.flows paused; look at it, '
                         'resume the executions it names by hand (POST /api/v1/executions/<id>/resume) or repair it, '
                         'then remove or fix the file; nothing was changed' % (path, problem))
    return record


def save_record(path, record):
    data = json.dumps(record, indent=2, sort_keys=True).encode('utf-8') + b'\n'
    write_atomic(path, data, mode=RECORD_MODE)


def archive_name(path, now):
    base = '%s.resumed-%s' % (path, now.strftime('%Y%m%dT%H%M%SZ'))
    name, n = base, 1
    while os.path.lexists(name):
        name = '%s-%d' % (base, n)
        n += 1
    return name


def _check_node(record, path, nid):
    other = record.get('node_id') if record else None
    if other and nid and other != nid:
        raise FlowsError('the record %s belongs to node %s but api_url answers as node %s; use the record_path of '
                         'that node (or the api_url of %s); nothing was changed' % (path, other, nid, other))


def _diff(path, before, after):
    return dict(before=dict(executions=before), after=dict(executions=after), before_header=path, after_header=path)


# -- pause-all / resume-all ---------------------------------------------------------------------------------------

def pause_all(client, path, flow_ids, check_mode, now_fn, warn):
    """Pause every running execution (of flow_ids); record each one paused. Return the result dict."""
    check_record_path(path)
    record = load_record(path)
    nid = node_id(client)
    _check_node(record, path, nid)
    before = len(record['executions']) if record else 0
    known = set(e['executionId'] for e in record['executions']) if record else set()
    result = _result(path, nid)
    pending = list_executions(client, 'pending', flow_ids)
    running = list_executions(client, 'running', flow_ids)
    if check_mode:
        result['paused'] = [ex['executionId'] for ex in running]
        after = before + len([e for e in result['paused'] if e not in known])
        result['not_pausable'] = [dict(executionId=ex['executionId'], flowId=ex['flowId'], status='pending',
                                       reason=NOT_PAUSABLE_REASON) for ex in pending]
        result['record'] = record
    else:
        handled = set()
        try:
            for dummy in range(ROUNDS):
                for ex in running:
                    eid = ex['executionId']
                    handled.add(eid)
                    skip = control(client, eid, 'pause')
                    if skip is not None:
                        result['skipped_executions'].append(dict(executionId=eid, flowId=ex['flowId'], **skip))
                        continue
                    stamp = iso(now_fn())
                    if record is None:
                        record = dict(paused_at=stamp, node_id=nid, executions=[])
                    record['executions'] = [e for e in record['executions'] if e['executionId'] != eid]
                    record['executions'].append(dict(executionId=eid, flowId=ex['flowId'], paused_at=stamp))
                    try:
                        save_record(path, record)
                    except (IOError, OSError) as exc:
                        undone = control_quietly(client, eid, 'resume')
                        raise FlowsError(
                            'cannot write the record %s: %s. Execution %s was paused and %s. %s'
                            % (path, exc, eid, 'resumed again, so nothing is paused without a record' if undone else
                               'could NOT be resumed again: resume it by hand (POST %s)' % _control_path(eid, 'resume'),
                               ('%d executions paused before are in the record.' % len(result['paused']))
                               if result['paused'] else 'Nothing else was paused.'),
                            dict(paused=result['paused'], skipped_executions=result['skipped_executions']),
                            changed=bool(result['paused']))
                    result['paused'].append(eid)
                running = [ex for ex in list_executions(client, 'running', flow_ids) if ex['executionId'] not in handled]
                if not running:
                    break
        except (QflowApiError, QflowHttpError, FlowsError) as exc:
            error = explain(exc)
            if 'paused' in error.extra:  # the record could not be written: the message says it all
                raise error
            error.msg += (' %d executions were paused before the error (%s); they are in the record %s, so '
                          'state=resumed resumes them.' % (len(result['paused']), ', '.join(result['paused']) or 'none',
                                                           path) if result['paused'] else ' Nothing was paused.')
            error.extra.update(paused=result['paused'], skipped_executions=result['skipped_executions'])
            error.changed = bool(result['paused'])
            raise error
        if running:
            warn('%d executions started while pausing and are still running (%s): enable emergency mode '
                 '(qflow.ops.node_mode) so that nothing new starts, and run again.'
                 % (len(running), ', '.join(ex['executionId'] for ex in running[:10])))
        pending = list_executions(client, 'pending', flow_ids)
        result['not_pausable'] = [dict(executionId=ex['executionId'], flowId=ex['flowId'], status='pending',
                                       reason=NOT_PAUSABLE_REASON) for ex in pending
                                  if ex['executionId'] not in result['paused']]
        after = len(record['executions']) if record else 0
        result['record'] = record
    if result['not_pausable']:
        warn('%d pending executions cannot be paused (the node pauses running executions only): %s. Enable emergency '
             'mode first and run again once they are running.'
             % (len(result['not_pausable']), ', '.join(e['executionId'] for e in result['not_pausable'][:10])))
    n = len(result['paused'])
    result['changed'] = n > 0
    result['diff'] = _diff(path, before, after)
    if n:
        result['msg'] = '%s %d running executions%s; recorded in %s' % (
            'would pause' if check_mode else 'paused', n, _skipped_text(result['skipped_executions']), path)
    else:
        result['msg'] = 'no running execution to pause%s' % _skipped_text(result['skipped_executions'])
    return result


def _result(path, nid):
    # Not 'skipped': Ansible reads a true 'skipped' key of a result as "the task was skipped".
    return dict(changed=False, paused=[], resumed=[], skipped_executions=[], not_pausable=[], record_path=path,
                archived_record=None, node_id=nid)


def _skipped_text(skipped):
    return ' (%d skipped)' % len(skipped) if skipped else ''


def resume_all(client, path, flow_ids, check_mode, now_fn, warn):
    """Resume the executions of the record that are still paused; then archive the record. Return the result dict."""
    record = load_record(path)
    result = _result(path, None)
    if record is None:
        if not os.path.isdir(os.path.dirname(path) or '.'):
            warn('the directory of record_path %s does not exist: check record_path (it must be the one the '
                 'state=paused run used)' % path)
        result.update(record=None, diff=_diff(path, 0, 0),
                      msg='nothing was paused by qflow.ops.flows (no record at %s)' % path)
        return result
    nid = node_id(client)
    result['node_id'] = nid
    _check_node(record, path, nid)
    entries = record['executions']
    wanted = set(flow_ids or [])
    targets = [e for e in entries if not wanted or e.get('flowId') in wanted]
    keep = [e for e in entries if e not in targets]
    if not targets:
        result.update(record=record, diff=_diff(path, len(entries), len(entries)),
                      msg='the record %s holds no execution of flows %s' % (path, ', '.join(sorted(wanted))))
        return result
    done = 0
    try:
        for entry in targets:
            eid = entry['executionId']
            status = execution_status(client, eid)
            if status is None:
                result['skipped_executions'].append(dict(executionId=eid, flowId=entry.get('flowId'), status=None,
                                                         reason='not found on the node'))
            elif status != 'paused':
                result['skipped_executions'].append(dict(executionId=eid, flowId=entry.get('flowId'), status=status,
                                                         reason='no longer paused (status %s)' % status))
            elif check_mode:
                result['resumed'].append(eid)
            else:
                skip = control(client, eid, 'resume')
                if skip is None:
                    result['resumed'].append(eid)
                else:
                    result['skipped_executions'].append(dict(executionId=eid, flowId=entry.get('flowId'), **skip))
            done += 1
    except (QflowApiError, QflowHttpError, FlowsError) as exc:
        error = explain(exc)
        if not check_mode and result['resumed']:
            record['executions'] = keep + targets[done:]
            save_record(path, record)
            error.msg += (' %d executions were resumed before the error (%s); the record %s now lists only the '
                          'others, so run again to resume them.' % (len(result['resumed']), ', '.join(result['resumed']),
                                                                    path))
        else:
            error.msg += ' Nothing was resumed; the record %s is unchanged.' % path
        error.extra.update(resumed=result['resumed'], skipped_executions=result['skipped_executions'])
        error.changed = bool(result['resumed']) and not check_mode
        raise error
    result['changed'] = True
    if keep:
        if not check_mode:
            record['executions'] = keep
            save_record(path, record)
        after_record = dict(record, executions=keep)
        where = 'the record %s keeps the %d executions of other flows' % (path, len(keep))
    else:
        after_record = None
        if not check_mode:
            result['archived_record'] = archive_name(path, now_fn())
            os.rename(path, result['archived_record'])
            where = 'the record was archived as %s' % result['archived_record']
        else:
            where = 'the record %s would be archived' % path
    result['record'] = after_record
    result['diff'] = _diff(path, len(entries), len(keep))
    verb = 'would resume' if check_mode else 'resumed'
    result['msg'] = '%s %d paused executions%s; %s' % (verb, len(result['resumed']),
                                                       _skipped_text(result['skipped_executions']), where)
    return result
