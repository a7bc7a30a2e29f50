"""qflow.ops.smoke_test and qflow.ops.state_db against an in-process reference node (real HTTP, real SQLite)."""
import os
import time
import sqlite3

from qflow_lab.tokens import make_token
from qflow_module_runner import run_module

from ansible_collections.qflow.ops.plugins.modules import smoke_test, state_db

from _lab_helpers import SECRET, request


def args(node, **extra):
    a = {'api_url': node.api, 'api_token': make_token(SECRET, 'squid:ops:lab-operator', ['*'], 600),
         'wait_timeout': 20, 'poll_interval': 0.1}
    a.update(extra)
    return a


def flows(node):
    status, _, raw = request(node.api, 'GET', '/api/v1/flows', token=args(node)['api_token'])
    assert status == 200
    import json
    return [f['id'] for f in json.loads(raw)['data']['flows']]


def test_smoke_test_four_steps(node):
    res, failed = run_module(smoke_test, args(node), check_mode=True)
    assert not failed and res['changed'] is True and res['flow_created'] is True and 'execution_id' not in res, res
    assert 'qflow-ops-smoke-test' not in flows(node)

    res, failed = run_module(smoke_test, args(node))
    assert not failed and res['changed'] is True and res['flow_created'] is True, res
    assert res['status'] == 'completed' and res['execution']['completedSteps'] == ['check', 'done']
    assert 'qflow-ops-smoke-test' in flows(node)

    for check in (True, False):
        res, failed = run_module(smoke_test, args(node), check_mode=check)
        assert not failed and res['changed'] is False and res['flow_created'] is False, res
    assert res['status'] == 'completed'


def test_smoke_test_missing_flow_without_create(node):
    res, failed = run_module(smoke_test, args(node, create=False))
    assert failed and 'does not exist' in res['msg'] and 'create: true' in res['msg']
    assert 'qflow-ops-smoke-test' not in flows(node)


def test_smoke_test_flow_id_mismatch(node):
    res, failed = run_module(smoke_test, args(node, flow={'id': 'other'}))
    assert failed and 'must be equal' in res['msg']


def test_smoke_test_execution_that_does_not_finish_names_the_step(node):
    node.faults_path.write_text('{"faults": ["slow"]}')
    time.sleep(1.2)  # the node re-reads its faults file every second
    res, failed = run_module(smoke_test, args(node, wait_timeout=1, attempts=1))
    assert failed, res
    assert 'qflow-ops-smoke-test' in res['msg'] and 'still running' in res['msg'] and 'logs_info' in res['msg']
    assert res['status'] == 'running' and len(res['attempts']) == 1


def test_smoke_test_bad_token_is_a_clear_error(node):
    res, failed = run_module(smoke_test, args(node, api_token=make_token('wrong', 'x', ['*'], 600)))
    assert failed and 'INVALID_TOKEN' in res['msg']


def _churn(data_dir):
    db = os.path.join(data_dir, 'state.db')
    conn = sqlite3.connect(db)
    conn.execute('CREATE TABLE IF NOT EXISTS churn (x BLOB)')
    conn.executemany('INSERT INTO churn VALUES (?)', [(b'x' * 4000,) for _ in range(400)])
    conn.commit()
    conn.execute('DELETE FROM churn')
    conn.commit()
    conn.close()
    return db


def test_state_db_four_steps(node):
    data_dir = str(node.tmp / 'data')
    db = _churn(data_dir)
    size0 = os.path.getsize(db)
    a = {'data_dir': data_dir}
    res, failed = run_module(state_db, a, check_mode=True, diff=True)
    assert not failed and res['changed'] is True and res['vacuumed'] is True, res
    assert res['before']['free_pages'] > 300 and res['after'] == res['before'] and os.path.getsize(db) == size0
    assert res['freed_bytes'] > 0 and 'free' in res['diff']['after']

    res, failed = run_module(state_db, a, diff=True)
    assert not failed and res['changed'] is True and res['after']['free_pages'] == 0, res
    assert res['after']['integrity'] == 'ok' and res['after']['size_bytes'] < res['before']['size_bytes']

    for check in (True, False):
        res, failed = run_module(state_db, a, check_mode=check)
        assert not failed and res['changed'] is False and res['vacuumed'] is False, res
    # the node still serves from the vacuumed database
    assert flows(node) is not None


def test_state_db_corrupt_database_fails_and_changes_nothing(tmp_path):
    db = tmp_path / 'state.db'
    conn = sqlite3.connect(str(db))
    conn.execute('CREATE TABLE t (x)')
    conn.executemany('INSERT INTO t VALUES (?)', [(b'y' * 3000,) for _ in range(50)])
    conn.commit()
    conn.close()
    raw = bytearray(db.read_bytes())
    raw[4096 * 2:4096 * 2 + 200] = b'\xff' * 200
    db.write_bytes(bytes(raw))
    res, failed = run_module(state_db, {'data_dir': str(tmp_path)})
    assert failed and res['changed'] is False, res
    assert str(db) in res['msg'] and ('quick_check' in res['msg'] or 'cannot read' in res['msg'])
    assert db.read_bytes() == bytes(raw)


def test_state_db_missing_and_bad_ratio(tmp_path):
    res, failed = run_module(state_db, {'data_dir': str(tmp_path)})
    assert failed and 'does not exist' in res['msg'] and 'qflow_data_dir' in res['msg']
    res, failed = run_module(state_db, {'data_dir': str(tmp_path), 'max_free_ratio': 2})
    assert failed and 'between 0 and 1' in res['msg']
