# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.flows (pause-all / resume-all) against a stub node with the reference executions API."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import stat

import pytest

from qflow_stub_http import Route, envelope, error_envelope, run_module, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.modules import flows

TOKEN = 'dG9rZW4tdGhhdC1tdXN0LW5ldmVyLWxlYWs='
ITEM_RE = re.compile(r'^/api/v1/executions/([^/]+)(?:/(pause|resume|abort))?$')


class FakeEngine(object):
    """The reference node's executions semantics (lab/qflow_lab/node/api.py, engine.py) behind the real routes."""

    def __init__(self, node_id='qflow-node-1'):
        self.node_id = node_id
        self.executions = {}
        self.seq = 0
        self.before_control = None  # callable(eid, action) run before a pause/resume is applied (races)
        self.after_list = None  # callable(status, offset) run after a listing page is served
        self.fail_control = {}  # eid -> Route to answer instead

    def add(self, status, flow='flow-1', eid=None):
        self.seq += 1
        eid = eid or 'ex-%04d' % self.seq
        self.executions[eid] = dict(executionId=eid, flowId=flow, status=status, startMs=self.seq)
        return eid

    def status(self, eid):
        return self.executions[eid]['status']

    def get(self, key, default=None):
        method, path = key.split(' ', 1)
        if path == '/health' and method == 'GET':
            return self.health
        if path == '/api/v1/executions' and method == 'GET':
            return self.listing
        match = ITEM_RE.match(path)
        if match and (method == 'GET') == (match.group(2) is None):
            return self.item
        return default

    def health(self, req):
        body = {'status': 'healthy', 'timestamp': '2026-11-27T03:12:45.123Z', 'version': '0.1.0', 'uptime': 5}
        if self.node_id:
            body['nodeId'] = self.node_id
        return Route(200, body)

    def listing(self, req):
        query = dict(p.split('=', 1) for p in req['path'].split('?', 1)[1].split('&')) if '?' in req['path'] else {}
        limit = max(1, min(int(query.get('limit', 50)), 100))
        offset = int(query.get('offset', 0))
        items = [dict(e) for e in sorted(self.executions.values(), key=lambda e: -e['startMs'])
                 if e['status'] == query.get('status', e['status']) and e['flowId'] == query.get('flowId', e['flowId'])]
        page = items[offset:offset + limit]
        if self.after_list:
            self.after_list(query.get('status'), offset)
        return Route(200, envelope({'executions': page, 'pagination': {'total': len(items), 'limit': limit,
                                                                       'offset': offset,
                                                                       'hasMore': offset + limit < len(items)}}))

    def item(self, req):
        eid, action = ITEM_RE.match(req['plain_path']).groups()
        if action is None:
            if eid not in self.executions:
                return Route(404, error_envelope('EXECUTION_NOT_FOUND', 'Execution not found: %s' % eid))
            return Route(200, envelope({'execution': dict(self.executions[eid])}))
        if eid in self.fail_control:
            return self.fail_control[eid]
        if self.before_control:
            self.before_control(eid, action)
        code = '%s_EXECUTION_ERROR' % action.upper()
        ex = self.executions.get(eid)
        if ex is None:
            return Route(400, error_envelope(code, 'Execution not found: %s' % eid))
        allowed = {'pause': 'running', 'resume': 'paused'}[action]
        if ex['status'] != allowed:
            return Route(400, error_envelope(code, 'Cannot %s execution in status %s' % (action, ex['status'])))
        ex['status'] = {'pause': 'paused', 'resume': 'running'}[action]
        past = {'pause': 'paused', 'resume': 'resumed'}[action]
        return Route(200, envelope({'message': 'Execution %s successfully' % past, 'execution': dict(ex)}))


def node(stub_server, **kwargs):
    fake = FakeEngine(**kwargs)
    srv = stub_server()
    srv.routes = fake
    return fake, srv


def posts(srv):
    return [r['plain_path'] for r in srv.requests if r['method'] != 'GET']


def read_record(path):
    with open(path) as handle:
        return json.load(handle)


def files(directory):
    return sorted(os.listdir(str(directory)))


def assert_no_token(res):
    assert TOKEN not in json.dumps(res)
    assert 'skipped' not in res  # Ansible would show a task whose result has a true 'skipped' as skipped


@pytest.fixture
def record(tmp_path):
    return str(tmp_path / 'paused.json')


def args_for(srv, state, record, **kwargs):
    return dict(api_url=srv.url, api_token=TOKEN, retries=0, state=state, record_path=record, **kwargs)


def populate(fake):
    ours = [fake.add('running', 'flow-1'), fake.add('running', 'flow-2'), fake.add('running', 'flow-1')]
    theirs = fake.add('paused', 'flow-1')
    done = fake.add('completed', 'flow-2')
    pending = fake.add('pending', 'flow-3')
    return ours, theirs, done, pending


def test_pause_and_resume_four_steps_each(stub_server, record, tmp_path):
    fake, srv = node(stub_server)
    ours, theirs, done, pending = populate(fake)
    expected = sorted(ours)
    args = args_for(srv, 'paused', record)

    # pause 1. check: lists what would be paused, writes and posts nothing
    res, failed = run_module(flows, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is True, res
    assert sorted(res['paused']) == expected and res['skipped_executions'] == []
    assert res['not_pausable'] == [{'executionId': pending, 'flowId': 'flow-3', 'status': 'pending',
                                    'reason': 'pending: the node pauses running executions only'}]
    assert any('cannot be paused' in w for w in res['_warnings'])
    assert res['diff']['before'] == {'executions': 0} and res['diff']['after'] == {'executions': 3}
    assert posts(srv) == [] and files(tmp_path) == [] and res['record'] is None

    # pause 2. real
    res, failed = run_module(flows, args, diff=True)
    assert not failed and res['changed'] is True, res
    assert sorted(res['paused']) == expected and res['node_id'] == 'qflow-node-1'
    assert all(fake.status(e) == 'paused' for e in ours)
    assert fake.status(theirs) == 'paused' and fake.status(done) == 'completed' and fake.status(pending) == 'pending'
    assert sorted(posts(srv)) == sorted('/api/v1/executions/%s/pause' % e for e in ours)
    rec = read_record(record)
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    assert rec['node_id'] == 'qflow-node-1' and rec['paused_at']
    assert sorted(e['executionId'] for e in rec['executions']) == expected
    assert set(rec['executions'][0]) == {'executionId', 'flowId', 'paused_at'}
    assert theirs not in json.dumps(rec)
    assert res['record'] == rec and res['diff']['after'] == {'executions': 3}
    assert_no_token(res)

    # pause 3 and 4: nothing running any more
    for check in (True, False):
        res, failed = run_module(flows, args, check_mode=check, diff=True)
        assert not failed and res['changed'] is False and res['paused'] == [], res
        assert res['diff'] == dict(res['diff'], before={'executions': 3}, after={'executions': 3})
        assert res['msg'] == 'no running execution to pause'
    assert len(posts(srv)) == 3 and read_record(record) == rec

    # someone aborts one of ours meanwhile
    fake.executions[ours[1]]['status'] = 'aborted'
    args = args_for(srv, 'resumed', record)

    # resume 1. check
    res, failed = run_module(flows, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is True, res
    assert sorted(res['resumed']) == sorted([ours[0], ours[2]])
    assert res['skipped_executions'] == [{'executionId': ours[1], 'flowId': 'flow-2', 'status': 'aborted',
                                          'reason': 'no longer paused (status aborted)'}]
    assert res['diff']['before'] == {'executions': 3} and res['diff']['after'] == {'executions': 0}
    assert len(posts(srv)) == 3 and files(tmp_path) == ['paused.json'] and res['archived_record'] is None

    # resume 2. real: exactly ours, the record is archived
    res, failed = run_module(flows, args, diff=True)
    assert not failed and res['changed'] is True, res
    assert sorted(res['resumed']) == sorted([ours[0], ours[2]]) and len(res['skipped_executions']) == 1
    assert fake.status(ours[0]) == 'running' and fake.status(ours[2]) == 'running'
    assert fake.status(theirs) == 'paused' and fake.status(ours[1]) == 'aborted'
    assert sorted(posts(srv)[3:]) == sorted('/api/v1/executions/%s/resume' % e for e in (ours[0], ours[2]))
    archived = res['archived_record']
    assert archived.startswith(record + '.resumed-') and files(tmp_path) == [os.path.basename(archived)]
    assert read_record(archived) == rec and res['record'] is None
    assert_no_token(res)

    # resume 3 and 4: no record
    for check in (True, False):
        res, failed = run_module(flows, args, check_mode=check, diff=True)
        assert not failed and res['changed'] is False, res
        assert res['msg'] == 'nothing was paused by qflow.ops.flows (no record at %s)' % record
    assert len(posts(srv)) == 5 and fake.status(theirs) == 'paused'


def test_pagination_pauses_every_page(stub_server, record):
    fake, srv = node(stub_server)
    ids = [fake.add('running', 'flow-%d' % (i % 7)) for i in range(201)]
    res, failed = run_module(flows, args_for(srv, 'paused', record))
    assert not failed and sorted(res['paused']) == sorted(ids), res
    offsets = [r['path'] for r in srv.requests if r['plain_path'] == '/api/v1/executions' and 'status=running' in r['path']]
    assert any('offset=100' in p for p in offsets) and any('offset=200' in p for p in offsets)
    assert all('limit=100' in p for p in offsets)
    assert len(read_record(record)['executions']) == 201
    assert all(e['status'] == 'paused' for e in fake.executions.values())


def test_execution_that_finishes_before_the_pause_is_skipped(stub_server, record):
    fake, srv = node(stub_server)
    a, b = fake.add('running'), fake.add('running')

    def finish(eid, action):
        if eid == b and action == 'pause':
            fake.executions[b]['status'] = 'completed'
    fake.before_control = finish
    res, failed = run_module(flows, args_for(srv, 'paused', record))
    assert not failed and res['changed'] is True, res
    assert res['paused'] == [a]
    assert res['skipped_executions'] == [{'executionId': b, 'flowId': 'flow-1', 'status': 'completed',
                                          'reason': 'Cannot pause execution in status completed'}]
    assert [e['executionId'] for e in read_record(record)['executions']] == [a]
    assert '(1 skipped)' in res['msg']
    assert_no_token(res)


def test_execution_started_while_pausing_is_paused_in_a_second_round(stub_server, record):
    fake, srv = node(stub_server)
    first = fake.add('running')
    late = []

    def start_one(status, offset):
        if status == 'running' and not late:
            late.append(fake.add('running', 'flow-9'))
    fake.after_list = start_one
    res, failed = run_module(flows, args_for(srv, 'paused', record))
    assert not failed and sorted(res['paused']) == sorted([first] + late), res
    assert fake.status(late[0]) == 'paused' and res['_warnings'] == []


def test_merge_with_an_existing_record(stub_server, record):
    fake, srv = node(stub_server)
    old = fake.add('paused')
    existing = {'paused_at': '2026-11-27T01:00:00.000Z', 'node_id': 'qflow-node-1',
                'executions': [{'executionId': old, 'flowId': 'flow-1', 'paused_at': '2026-11-27T01:00:00.000Z'}]}
    with open(record, 'w') as handle:
        json.dump(existing, handle)
    new = fake.add('running', 'flow-2')
    res, failed = run_module(flows, args_for(srv, 'paused', record), diff=True)
    assert not failed and res['paused'] == [new], res
    rec = read_record(record)
    assert rec['paused_at'] == '2026-11-27T01:00:00.000Z'
    assert [e['executionId'] for e in rec['executions']] == [old, new]
    assert rec['executions'][0] == existing['executions'][0]
    assert res['diff']['before'] == {'executions': 1} and res['diff']['after'] == {'executions': 2}


def test_flow_ids_filter_and_partial_resume(stub_server, record, tmp_path):
    fake, srv = node(stub_server)
    one, two = fake.add('running', 'flow-1'), fake.add('running', 'flow-2')
    res, failed = run_module(flows, args_for(srv, 'paused', record, flow_ids=['flow-1']))
    assert not failed and res['paused'] == [one] and fake.status(two) == 'running', res
    res, failed = run_module(flows, args_for(srv, 'paused', record))
    assert not failed and res['paused'] == [two]

    res, failed = run_module(flows, args_for(srv, 'resumed', record, flow_ids=['flow-2']), diff=True)
    assert not failed and res['changed'] is True and res['resumed'] == [two], res
    assert fake.status(one) == 'paused' and res['archived_record'] is None
    assert [e['executionId'] for e in read_record(record)['executions']] == [one]
    assert res['diff']['before'] == {'executions': 2} and res['diff']['after'] == {'executions': 1}

    res, failed = run_module(flows, args_for(srv, 'resumed', record, flow_ids=['flow-2']))
    assert not failed and res['changed'] is False and 'holds no execution of flows flow-2' in res['msg'], res

    res, failed = run_module(flows, args_for(srv, 'resumed', record))
    assert not failed and res['resumed'] == [one] and fake.status(one) == 'running'
    assert files(tmp_path) == [os.path.basename(res['archived_record'])]


def test_empty_flow_ids_is_refused(stub_server, record, tmp_path):
    fake, srv = node(stub_server)
    fake.add('running')
    res, failed = run_module(flows, args_for(srv, 'paused', record, flow_ids=[]))
    assert failed and 'flow_ids is empty' in res['msg'], res
    assert srv.requests == [] and files(tmp_path) == []


def test_record_path_in_a_missing_dir(stub_server, tmp_path):
    fake, srv = node(stub_server)
    eid = fake.add('running')
    path = str(tmp_path / 'nope' / 'paused.json')
    for check in (True, False):
        res, failed = run_module(flows, args_for(srv, 'paused', path), check_mode=check)
        assert failed and res['changed'] is False, res
        assert 'does not exist' in res['msg'] and 'nothing was paused' in res['msg']
    assert srv.requests == [] and fake.status(eid) == 'running' and files(tmp_path) == []


def test_record_path_is_a_directory(stub_server, tmp_path):
    fake, srv = node(stub_server)
    fake.add('running')
    for state in ('paused', 'resumed'):
        res, failed = run_module(flows, args_for(srv, state, str(tmp_path)))
        assert failed and 'is a directory' in res['msg'] and res['changed'] is False, res
    assert srv.requests == []


@pytest.mark.parametrize('content', [b'{"executions": [', b'[]', b'{"executions": [{"flowId": "f"}]}', b'\xff\xfe'])
@pytest.mark.parametrize('state', ['paused', 'resumed'])
def test_corrupt_record_changes_nothing(stub_server, record, tmp_path, content, state):
    fake, srv = node(stub_server)
    running, paused = fake.add('running'), fake.add('paused')
    with open(record, 'wb') as handle:
        handle.write(content)
    for check in (True, False):
        res, failed = run_module(flows, args_for(srv, state, record), check_mode=check)
        assert failed and res['changed'] is False, res
        assert 'is corrupt' in res['msg'] and 'nothing was changed' in res['msg']
    assert posts(srv) == [] and fake.status(running) == 'running' and fake.status(paused) == 'paused'
    assert files(tmp_path) == ['paused.json'] and open(record, 'rb').read() == content


def test_resume_without_record_in_a_missing_dir_warns(stub_server, tmp_path):
    fake, srv = node(stub_server)
    res, failed = run_module(flows, args_for(srv, 'resumed', str(tmp_path / 'nope' / 'paused.json')))
    assert not failed and res['changed'] is False and 'nothing was paused' in res['msg'], res
    assert any('does not exist' in w for w in res['_warnings']) and srv.requests == []


def test_record_of_another_node_is_refused(stub_server, record):
    fake, srv = node(stub_server, node_id='qflow-node-2')
    eid = fake.add('paused')
    with open(record, 'w') as handle:
        json.dump({'paused_at': 'x', 'node_id': 'qflow-node-1',
                   'executions': [{'executionId': eid, 'flowId': 'flow-1', 'paused_at': 'x'}]}, handle)
    for state in ('resumed', 'paused'):
        res, failed = run_module(flows, args_for(srv, state, record))
        assert failed and res['changed'] is False, res
        assert 'belongs to node qflow-node-1' in res['msg'] and 'qflow-node-2' in res['msg']
    assert posts(srv) == [] and fake.status(eid) == 'paused'


def test_executions_gone_after_a_restore_are_skipped(stub_server, record, tmp_path):
    fake, srv = node(stub_server)
    a = fake.add('running')
    res, failed = run_module(flows, args_for(srv, 'paused', record))
    assert not failed
    del fake.executions[a]
    res, failed = run_module(flows, args_for(srv, 'resumed', record))
    assert not failed and res['changed'] is True and res['resumed'] == [], res
    assert res['skipped_executions'] == [{'executionId': a, 'flowId': 'flow-1', 'status': None, 'reason': 'not found on the node'}]
    assert files(tmp_path) == [os.path.basename(res['archived_record'])]


def test_resume_race_is_skipped(stub_server, record):
    fake, srv = node(stub_server)
    a = fake.add('running')
    run_module(flows, args_for(srv, 'paused', record))

    def someone_resumed(eid, action):
        fake.executions[eid]['status'] = 'running'
    fake.before_control = someone_resumed
    res, failed = run_module(flows, args_for(srv, 'resumed', record))
    assert not failed and res['resumed'] == [] and res['skipped_executions'][0]['status'] == 'running', res
    assert res['skipped_executions'][0]['reason'] == 'Cannot resume execution in status running'


def test_node_without_the_executions_api(stub_server, record, tmp_path):
    srv = stub_server({'/health': Route(200, {'status': 'healthy'})})
    res, failed = run_module(flows, args_for(srv, 'paused', record))
    assert failed and res['changed'] is False and '404 NOT_FOUND' in res['msg'], res
    assert 'does not serve the executions API' in res['msg'] and 'Nothing was changed' in res['msg']
    assert files(tmp_path) == []
    assert_no_token(res)


def test_isolated_node(stub_server, record, tmp_path):
    srv = stub_server({'/health': Route(200, {'status': 'isolated', 'nodeId': 'qflow-node-1'}),
                       '/api/v1/executions': Route(503, error_envelope('NODE_ISOLATED', 'Node is isolated'))})
    res, failed = run_module(flows, args_for(srv, 'paused', record))
    assert failed and 'NODE_ISOLATED' in res['msg'] and 'Pause the flows before isolating' in res['msg'], res
    assert files(tmp_path) == [] and posts(srv) == []


def test_error_in_the_middle_of_the_pause_keeps_the_record(stub_server, record):
    fake, srv = node(stub_server)
    a, b = fake.add('running'), fake.add('running')  # listed newest first: b, then a
    fake.fail_control[a] = Route(500, error_envelope('INTERNAL_ERROR', 'boom'))
    res, failed = run_module(flows, args_for(srv, 'paused', record))
    assert failed and res['changed'] is True, res
    assert 'INTERNAL_ERROR' in res['msg'] and '1 executions were paused before the error (%s)' % b in res['msg']
    assert res['paused'] == [b] and fake.status(b) == 'paused' and fake.status(a) == 'running'
    assert [e['executionId'] for e in read_record(record)['executions']] == [b]
    del fake.fail_control[a]
    res, failed = run_module(flows, args_for(srv, 'paused', record))
    assert not failed and res['paused'] == [a] and len(read_record(record)['executions']) == 2


def test_error_in_the_middle_of_the_resume_keeps_the_rest_recorded(stub_server, record):
    fake, srv = node(stub_server)
    a, b = fake.add('running'), fake.add('running')
    run_module(flows, args_for(srv, 'paused', record))
    order = [e['executionId'] for e in read_record(record)['executions']]
    fake.fail_control[order[1]] = Route(500, error_envelope('INTERNAL_ERROR', 'boom'))
    res, failed = run_module(flows, args_for(srv, 'resumed', record))
    assert failed and res['changed'] is True and res['resumed'] == [order[0]], res
    assert 'run again' in res['msg']
    assert [e['executionId'] for e in read_record(record)['executions']] == [order[1]]
    del fake.fail_control[order[1]]
    res, failed = run_module(flows, args_for(srv, 'resumed', record))
    assert not failed and res['resumed'] == [order[1]] and fake.status(a) == fake.status(b) == 'running'


def test_record_that_cannot_be_written_undoes_the_pause(stub_server, record, monkeypatch):
    fake, srv = node(stub_server)
    a = fake.add('running')
    from ansible_collections.qflow.ops.plugins.module_utils import _flows

    def broken(path, record_):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(_flows, 'save_record', broken)
    res, failed = run_module(flows, args_for(srv, 'paused', record))
    assert failed and res['changed'] is False, res
    assert 'No space left on device' in res['msg'] and 'resumed again' in res['msg']
    assert fake.status(a) == 'running' and not os.path.exists(record)
