# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.window_lock: the pure decisions, the module through main(), races, unsafe paths, and the
action plugin's run id / staleness helpers and wiring."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import multiprocessing
import os
import stat
import subprocess
import sys
import threading
from unittest import mock

import pytest

from qflow_module_runner import run_module

from ansible_collections.qflow.ops.plugins.action import window_lock as action
from ansible_collections.qflow.ops.plugins.module_utils import _window_lock as engine
from ansible_collections.qflow.ops.plugins.module_utils._time import utcnow
from ansible_collections.qflow.ops.plugins.modules import window_lock

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 12, 3, 2, 0, 4, tzinfo=UTC)
ME = {'run_id': 'run-me', 'playbook': 'weekly-maintenance', 'who': 'alice', 'controller': 'ctl-1', 'pid': 4242,
      'pid_start': 777, 'boot_id': 'boot-1'}
OTHER = {'run_id': '3f2a9c1e0b7d4e21', 'playbook': 'monthly-maintenance', 'who': 'bob', 'controller': 'ctl-2',
         'pid': 977, 'pid_start': 555, 'boot_id': 'boot-2'}


def lock_of(holder, since, ttl_seconds=6 * 3600):
    return engine.new_lock(holder, since, ttl_seconds)


@pytest.fixture
def lock_path(tmp_path):
    """A lock path whose directory does not exist yet (the module creates it, 0700)."""
    return str(tmp_path / 'state' / 'locks' / 'var-lib-qflow.json')


def plant(path, lock):
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    with open(path, 'w') as handle:
        json.dump(lock, handle)
    return read(path)


def read(path):
    with open(path, 'rb') as handle:
        return handle.read()


def args(path, state='acquired', holder=True, **extra):
    """Module args; holder True means ME, None means none."""
    result = {'path': path, 'state': state, 'node': 'qflow-node-2'}
    if holder is not None:
        result['holder'] = dict(ME if holder is True else holder)
    result.update(extra)
    return result


# ------------------------------------------------------------------------------------------------------ pure decisions

@pytest.mark.parametrize('state, current, stale_ids, expected', [
    ('acquired', None, (), 'take'),
    ('acquired', 'mine', (), 'none'),
    ('acquired', 'other', (), 'refuse'),
    ('acquired', 'other', ('3f2a9c1e0b7d4e21',), 'break'),
    ('acquired', 'other-expired', (), 'break'),
    ('acquired', 'mine', ('run-me',), 'none'),  # our own run is never stale to us
    ('released', None, (), 'none'),
    ('released', 'mine', (), 'remove'),
    ('released', 'other', (), 'keep'),
    ('released', 'other-expired', (), 'keep'),  # release never touches another run's lock
    ('query', 'other', (), 'none'),
    ('query', None, (), 'none'),
])
def test_decide(state, current, stale_ids, expected):
    locks = {None: None, 'mine': lock_of(ME, NOW), 'other': lock_of(OTHER, NOW - datetime.timedelta(hours=1)),
             'other-expired': lock_of(OTHER, NOW - datetime.timedelta(hours=7))}
    action_name, reason = engine.decide(state, locks[current], ME, NOW, stale_ids)
    assert action_name == expected
    assert (reason is not None) == (expected == 'break')


def test_stale_reason_and_expiry_boundary():
    lock = lock_of(OTHER, NOW, ttl_seconds=3600)
    assert engine.stale_reason(lock, NOW + datetime.timedelta(seconds=3599)) is None
    assert engine.stale_reason(lock, NOW + datetime.timedelta(seconds=3600)) == 'it expired at 2026-12-03T03:00:04Z'
    assert 'no longer running' in engine.stale_reason(lock, NOW, [OTHER['run_id']])
    assert engine.stale_reason(dict(lock, expires=None), NOW + datetime.timedelta(days=365)) is None
    assert engine.stale_reason(dict(lock, expires='garbage'), NOW + datetime.timedelta(days=365)) is None


def test_refusal_message_names_the_run_and_what_to_do():
    lock = lock_of(dict(OTHER, playbook='weekly-maintenance', who='alice', controller='ctl-1'), NOW)
    msg = engine.refusal_message('qflow-node-2', lock, '/var/lib/qflow-ops/locks/x.json')
    assert msg.startswith('qflow-node-2 is held by weekly-maintenance (run 3f2a9c1e0b7d4e21, started by alice on ctl-1')
    assert 'since 2026-12-03T02:00:04Z, expires 08:00:04Z)' in msg
    assert 'wait for it to finish, or if that run died, remove /var/lib/qflow-ops/locks/x.json after checking' in msg
    assert msg.endswith('nothing was changed')
    # expiry on another day: the full timestamp
    assert 'expires 2026-12-04T02:00:04Z' in engine.describe(lock_of(OTHER, NOW, ttl_seconds=86400))


def test_check_dir_stat_rules():
    def st(mode, uid):
        return os.stat_result((mode, 0, 0, 0, uid, 0, 0, 0, 0, 0))
    engine.check_dir_stat(st(stat.S_IFDIR | 0o700, 1000), '/d', 1000)
    engine.check_dir_stat(st(stat.S_IFDIR | 0o755, 1000), '/d', 1000)
    with pytest.raises(engine.LockError, match='owned by uid 1000, not by the user that runs the task .uid 0.'):
        engine.check_dir_stat(st(stat.S_IFDIR | 0o700, 1000), '/d', 0)
    with pytest.raises(engine.LockError, match='mode 0777'):
        engine.check_dir_stat(st(stat.S_IFDIR | 0o777, 0), '/d', 0)
    with pytest.raises(engine.LockError, match='mode 0770'):
        engine.check_dir_stat(st(stat.S_IFDIR | 0o770, 0), '/d', 0)
    with pytest.raises(engine.LockError, match='symbolic link'):
        engine.check_dir_stat(st(stat.S_IFLNK | 0o777, 0), '/d', 0)
    with pytest.raises(engine.LockError, match='not a directory'):
        engine.check_dir_stat(st(stat.S_IFREG | 0o600, 0), '/d', 0)


# ------------------------------------------------------------------------------------------------- module, four steps

def test_acquire_four_steps(lock_path):
    a = args(lock_path, ttl='6h')

    res, failed = run_module(window_lock, a, check_mode=True, diff=True)
    assert not failed and res['changed'] is True, res
    assert not os.path.exists(os.path.dirname(lock_path)), 'check mode created the lock dir'
    assert res['held_by']['run_id'] == 'run-me' and res['holder']['run_id'] == 'run-me'
    assert res['diff']['before'] == {} and res['diff']['after']['playbook'] == 'weekly-maintenance'
    assert res['broken'] is None and res['msg'].startswith('qflow-node-2: would take ')

    res, failed = run_module(window_lock, a, diff=True)
    assert not failed and res['changed'] is True, res
    assert res['msg'].startswith('qflow-node-2: took %s for weekly-maintenance (run run-me, started by alice' % lock_path)
    on_disk = json.loads(read(lock_path).decode())
    assert on_disk == res['holder'] == res['held_by'] == res['diff']['after']
    assert set(on_disk) == set(engine.LOCK_FIELDS)
    since = datetime.datetime.strptime(on_disk['since'], '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=UTC)
    expires = datetime.datetime.strptime(on_disk['expires'], '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=UTC)
    assert expires - since == datetime.timedelta(hours=6) and abs((utcnow() - since).total_seconds()) < 60
    assert stat.S_IMODE(os.stat(os.path.dirname(lock_path)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(lock_path).st_mode) == 0o600
    assert os.listdir(os.path.dirname(lock_path)) == ['var-lib-qflow.json'], 'a temp file was left behind'
    before = read(lock_path)

    for check in (True, False):
        res, failed = run_module(window_lock, a, check_mode=check, diff=True)
        assert not failed and res['changed'] is False, res
        assert res['diff']['before'] == res['diff']['after'] == on_disk
        assert 'held by this run already' in res['msg']
        assert read(lock_path) == before, 'since/expires must not be renewed'


def test_release_four_steps(lock_path):
    content = plant(lock_path, lock_of(ME, utcnow()))
    a = args(lock_path, state='released')

    res, failed = run_module(window_lock, a, check_mode=True, diff=True)
    assert not failed and res['changed'] is True and res['held_by'] is None, res
    assert res['diff']['after'] == {} and res['diff']['before']['run_id'] == 'run-me'
    assert read(lock_path) == content and res['msg'].startswith('qflow-node-2: would release')

    res, failed = run_module(window_lock, a, diff=True)
    assert not failed and res['changed'] is True, res
    assert not os.path.lexists(lock_path) and os.listdir(os.path.dirname(lock_path)) == []

    for check in (True, False):
        res, failed = run_module(window_lock, a, check_mode=check, diff=True)
        assert not failed and res['changed'] is False and res['held_by'] is None, res
        assert 'is free' in res['msg']


def test_release_without_lock_dir_changes_nothing(lock_path):
    res, failed = run_module(window_lock, args(lock_path, state='released'))
    assert not failed and res['changed'] is False
    assert not os.path.exists(os.path.dirname(lock_path)), 'release must not create the lock dir'


def test_refused_while_another_live_run_holds_it(lock_path):
    other = lock_of(dict(OTHER, playbook='weekly-maintenance', who='alice', controller='ctl-1'), utcnow())
    content = plant(lock_path, other)
    for check in (True, False):
        res, failed = run_module(window_lock, args(lock_path, holder=dict(ME, playbook='monthly-maintenance')),
                                 check_mode=check)
        assert failed and res['changed'] is False, res
        msg = res['msg']
        assert msg.startswith('qflow-node-2 is held by weekly-maintenance (run 3f2a9c1e0b7d4e21, started by alice on ctl-1')
        assert 'since %s' % other['since'] in msg and 'wait for it to finish' in msg and lock_path in msg
        assert res['held_by'] == other and res['broken'] is None
        assert read(lock_path) == content, 'a refused acquire changed the lock'


@pytest.mark.parametrize('how', ['expired', 'stale_run_ids'])
def test_stale_lock_is_replaced(lock_path, how):
    if how == 'expired':
        old = lock_of(OTHER, utcnow() - datetime.timedelta(hours=7))
        extra = {}
    else:
        old = lock_of(OTHER, utcnow())
        extra = {'stale_run_ids': ['unrelated', OTHER['run_id']]}
    plant(lock_path, old)

    res, failed = run_module(window_lock, args(lock_path, **extra), check_mode=True, diff=True)
    assert not failed and res['changed'] is True and res['broken'] == old, res
    assert json.loads(read(lock_path).decode()) == old, 'check mode replaced the lock'
    assert res['msg'].startswith('qflow-node-2: would replace the stale lock of monthly-maintenance')

    res, failed = run_module(window_lock, args(lock_path, **extra), diff=True)
    assert not failed and res['changed'] is True, res
    assert res['broken'] == old and res['diff']['before'] == old
    assert res['stale_reason'] == ('it expired at %s' % old['expires'] if how == 'expired'
                                   else 'its run 3f2a9c1e0b7d4e21 is no longer running')
    assert json.loads(read(lock_path).decode())['run_id'] == 'run-me'
    assert os.listdir(os.path.dirname(lock_path)) == ['var-lib-qflow.json']
    assert res['msg'].startswith('qflow-node-2: replaced the stale lock of monthly-maintenance (run 3f2a9c1e0b7d4e21')
    assert res['msg'].endswith('%s; now held by weekly-maintenance (run run-me)' % res['stale_reason'])

    res, failed = run_module(window_lock, args(lock_path, **extra))
    assert not failed and res['changed'] is False and res['broken'] is None


def test_release_by_another_run_leaves_the_lock(lock_path):
    other = lock_of(OTHER, utcnow() - datetime.timedelta(hours=9))  # even an expired one
    content = plant(lock_path, other)
    for check in (True, False):
        res, failed = run_module(window_lock, args(lock_path, state='released'), check_mode=check, diff=True)
        assert not failed and res['changed'] is False, res
        assert res['held_by'] == other and 'not released' in res['msg'] and 'monthly-maintenance' in res['msg']
        assert read(lock_path) == content


def test_query(lock_path):
    res, failed = run_module(window_lock, args(lock_path, state='query', holder=None))
    assert not failed and res['changed'] is False and res['held_by'] is None and res['holder'] is None
    old = lock_of(OTHER, utcnow() - datetime.timedelta(hours=7))
    content = plant(lock_path, old)
    res, failed = run_module(window_lock, args(lock_path, state='query', holder=None))
    assert not failed and res['held_by'] == old and res['stale_reason'].startswith('it expired at')
    assert 'stale - it expired' in res['msg'] and read(lock_path) == content


def test_bad_arguments(lock_path):
    res, failed = run_module(window_lock, args(lock_path, holder={'playbook': 'weekly'}))
    assert failed and 'holder.run_id is required' in res['msg']
    res, failed = run_module(window_lock, args(lock_path, ttl='soon'))
    assert failed and res['msg'].startswith('ttl: invalid duration')
    res, failed = run_module(window_lock, args(lock_path, ttl='0'))
    assert failed and 'more than 0' in res['msg']
    assert not os.path.exists(os.path.dirname(lock_path))


def test_corrupt_lock_is_refused_not_broken(lock_path):
    os.makedirs(os.path.dirname(lock_path), mode=0o700)
    with open(lock_path, 'w') as handle:
        handle.write('{"not": "a lock"')
    res, failed = run_module(window_lock, args(lock_path))
    assert failed and 'is not a window lock' in res['msg']
    assert read(lock_path) == b'{"not": "a lock"'


# ------------------------------------------------------------------------------------------------------------ races

def _race_worker(path, run_id, barrier, queue):
    barrier.wait()
    try:
        outcome = engine.execute(path, 'acquired', dict(ME, run_id=run_id), utcnow(), 3600)
        queue.put((run_id, outcome['action']))
    except Exception as exc:  # pragma: no cover - reported to the parent
        queue.put((run_id, 'error: %s' % exc))


def _race(path, n=8):
    ctx = multiprocessing.get_context('fork')
    barrier = ctx.Barrier(n)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_race_worker, args=(path, 'racer-%d' % i, barrier, queue)) for i in range(n)]
    for proc in procs:
        proc.start()
    results = dict(queue.get(timeout=60) for dummy in procs)
    for proc in procs:
        proc.join(60)
    return results


def test_racing_acquirers_of_a_free_lock_exactly_one_wins(lock_path):
    results = _race(lock_path)
    winners = [run_id for run_id, act in results.items() if act == 'take']
    assert len(winners) == 1, results
    assert sorted(results.values()) == ['refuse'] * 7 + ['take'], results
    assert json.loads(read(lock_path).decode())['run_id'] == winners[0]
    assert os.listdir(os.path.dirname(lock_path)) == ['var-lib-qflow.json']


def test_racing_acquirers_of_a_stale_lock_exactly_one_wins(lock_path):
    plant(lock_path, lock_of(OTHER, utcnow() - datetime.timedelta(hours=7)))
    results = _race(lock_path)
    assert sorted(results.values()) == ['break'] + ['refuse'] * 7, results
    winner = [run_id for run_id, act in results.items() if act == 'break'][0]
    assert json.loads(read(lock_path).decode())['run_id'] == winner


def test_link_is_exclusive_without_the_dir_lock(tmp_path):
    """The link(2) step alone (no flock) lets exactly one of many threads create the lock."""
    fd = os.open(str(tmp_path), os.O_RDONLY)
    try:
        barrier = threading.Barrier(16)
        wins = []

        def worker(i):
            barrier.wait()
            if engine.link_new(fd, 'lock.json', {'run_id': 'thread-%d' % i}):
                wins.append(i)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        os.close(fd)
    assert len(wins) == 1
    assert json.loads((tmp_path / 'lock.json').read_text())['run_id'] == 'thread-%d' % wins[0]
    assert sorted(os.listdir(str(tmp_path))) == ['lock.json']


# ------------------------------------------------------------------------------------------------------ unsafe paths

@pytest.mark.parametrize('target_exists', [False, True])
def test_symlink_at_the_lock_path_is_refused(tmp_path, lock_path, target_exists):
    os.makedirs(os.path.dirname(lock_path), mode=0o700)
    target = tmp_path / 'victim'
    if target_exists:
        target.write_bytes(b'precious\n')
    os.symlink(str(target), lock_path)
    for state in ('acquired', 'released', 'query'):
        for check in (True, False):
            res, failed = run_module(window_lock, args(lock_path, state=state), check_mode=check)
            assert failed and 'is a symbolic link' in res['msg'], (state, check, res)
    assert os.path.islink(lock_path)
    if target_exists:
        assert target.read_bytes() == b'precious\n'
    else:
        assert not os.path.lexists(str(target))
    assert sorted(os.listdir(os.path.dirname(lock_path))) == ['var-lib-qflow.json']


def test_symlinked_lock_dir_is_refused(tmp_path):
    real = tmp_path / 'elsewhere'
    real.mkdir(mode=0o700)
    os.symlink(str(real), str(tmp_path / 'locks'))
    res, failed = run_module(window_lock, args(str(tmp_path / 'locks' / 'n.json')))
    assert failed and 'is a symbolic link' in res['msg'] and os.listdir(str(real)) == []


def test_world_writable_lock_dir_is_refused(lock_path):
    directory = os.path.dirname(lock_path)
    os.makedirs(directory)
    os.chmod(directory, 0o777)
    for check in (True, False):
        res, failed = run_module(window_lock, args(lock_path), check_mode=check)
        assert failed and 'mode 0777' in res['msg'] and 'chmod 0700' in res['msg'], res
    assert os.listdir(directory) == []


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to give the lock dir to another user')
def test_lock_dir_of_another_user_is_refused(lock_path):
    directory = os.path.dirname(lock_path)
    os.makedirs(directory, mode=0o700)
    os.chown(directory, 12345, 12345)
    for state in ('acquired', 'released', 'query'):
        res, failed = run_module(window_lock, args(lock_path, state=state))
        assert failed and 'owned by uid 12345' in res['msg'], res
    assert os.listdir(directory) == []


def test_lock_dir_path_is_a_file(tmp_path):
    (tmp_path / 'locks').write_text('x')
    res, failed = run_module(window_lock, args(str(tmp_path / 'locks' / 'n.json')))
    assert failed and 'not a directory' in res['msg']


# --------------------------------------------------------------------------------------------- action plugin helpers

STAT = ('4242 (ansible-playbook) S 1 4242 4242 0 -1 4194560 5000 0 0 0 120 30 0 0 20 0 3 0 81234567 300000000 '
        '20000 18446744073709551615 1 1 0 0 0 0 0 16781312 2 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n')


def test_parse_stat_start():
    assert action.parse_stat_start(STAT) == 81234567
    tricky = STAT.replace('(ansible-playbook)', '(a) b (c) 9 9)')  # a command name with spaces and parentheses
    assert action.parse_stat_start(tricky) == 81234567
    assert action.parse_stat_start('') is None and action.parse_stat_start('4242 (x) S 1') is None


@pytest.mark.skipif(not os.path.exists('/proc/self/stat'), reason='needs /proc')
def test_process_start_of_real_processes():
    mine = action.process_start(os.getpid())
    assert isinstance(mine, int) and mine > 0
    assert action.process_start(os.getpid()) == mine
    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
    try:
        assert action.process_start(child.pid) >= mine
        assert action.pid_alive(child.pid, action.process_start(child.pid))
        assert not action.pid_alive(child.pid, action.process_start(child.pid) + 1), 'a reused pid counts as dead'
    finally:
        child.kill()
        child.wait()
    assert not action.pid_alive(child.pid)


def test_main_pid_and_run_id():
    assert action.main_pid('MainProcess', 10, 1) == 10
    assert action.main_pid('WorkerProcess-3', 11, 10) == 10
    base = action.derive_run_id('ctl-1', 'boot-1', 4242, 81234567)
    assert base == action.derive_run_id('ctl-1', 'boot-1', 4242, 81234567) and len(base) == 16
    variants = {action.derive_run_id('ctl-2', 'boot-1', 4242, 81234567),
                action.derive_run_id('ctl-1', 'boot-2', 4242, 81234567),
                action.derive_run_id('ctl-1', 'boot-1', 4243, 81234567),
                action.derive_run_id('ctl-1', 'boot-1', 4242, 81234568)}
    assert len(variants) == 4 and base not in variants


def test_controller_identity_from_a_fake_proc(tmp_path):
    (tmp_path / 'sys' / 'kernel' / 'random').mkdir(parents=True)
    (tmp_path / 'sys' / 'kernel' / 'random' / 'boot_id').write_text('boot-1\n')
    (tmp_path / '4242').mkdir()
    (tmp_path / '4242' / 'stat').write_text(STAT)
    ident = action.controller_identity(proc=str(tmp_path), process_name='WorkerProcess-1', pid=5000, ppid=4242,
                                       hostname='ctl-1')
    assert ident == {'run_id': action.derive_run_id('ctl-1', 'boot-1', 4242, 81234567), 'controller': 'ctl-1',
                     'boot_id': 'boot-1', 'pid': 4242, 'pid_start': 81234567}


def _identity_in_worker(queue):
    queue.put(action.controller_identity())


@pytest.mark.skipif(not os.path.exists('/proc/self/stat'), reason='needs /proc')
def test_forked_workers_share_the_main_process_run_id():
    """What Ansible does: task workers are forked from the ansible-playbook process; they all get its run id."""
    ctx = multiprocessing.get_context('fork')
    queue = ctx.Queue()
    procs = [ctx.Process(target=_identity_in_worker, args=(queue,)) for dummy in range(2)]
    for proc in procs:
        proc.start()
    seen = [queue.get(timeout=30) for dummy in procs]
    for proc in procs:
        proc.join(30)
    main = action.controller_identity()
    assert main['pid'] == os.getpid() and main['pid_start'] is not None and main['boot_id']
    assert seen[0] == seen[1] == main


def test_who_and_fill_holder():
    assert action.who_default({'awx_user_name': 'carol', 'tower_user_name': 'dave'}, 'root') == 'carol'
    assert action.who_default({'tower_user_name': 'dave'}, 'root') == 'dave'
    assert action.who_default({'awx_user_name': ''}, 'root') == 'root'
    ident = {'run_id': 'r1', 'controller': 'ctl-1', 'boot_id': 'b1', 'pid': 1, 'pid_start': 2}
    holder = action.fill_holder({'playbook': 'weekly-maintenance', 'who': None}, ident, 'alice', 'play name')
    assert holder == dict(ident, playbook='weekly-maintenance', who='alice')
    assert action.fill_holder({'run_id': 'awx-job-7'}, ident, 'alice', None)['run_id'] == 'awx-job-7'


IDENT = {'run_id': 'run-me', 'controller': 'ctl-1', 'boot_id': 'boot-1', 'pid': 4242, 'pid_start': 777}


@pytest.mark.parametrize('change, alive, expected', [
    ({}, False, 'its ansible-playbook process 977 on ctl-1 is gone'),
    ({}, True, None),
    ({'boot_id': 'boot-0'}, True, 'the controller ctl-1 rebooted since that run started'),
    ({'controller': 'ctl-2'}, False, None),          # another controller: only its expiry counts
    ({'boot_id': None}, False, None),               # unknown boot: cannot judge
    ({'run_id': 'run-me'}, False, None),            # ourselves
    ({'pid': None}, False, None),
])
def test_dead_holder_reason(change, alive, expected):
    lock = dict(OTHER, controller='ctl-1', boot_id='boot-1')
    lock.update(change)
    calls = []

    def fake_alive(pid, pid_start):
        calls.append((pid, pid_start))
        return alive

    reason = action.dead_holder_reason(lock, IDENT, 'run-me', fake_alive)
    if expected is None:
        assert reason is None
    else:
        assert reason.startswith(expected)
    if not change and calls:
        assert calls == [(977, 555)]
    assert action.dead_holder_reason(None, IDENT, 'run-me', fake_alive) is None


def _action_plugin(task_args, check_mode=False):
    task = mock.MagicMock()
    task.args = task_args
    task.async_val = 0
    task.check_mode = check_mode
    task.action = 'qflow.ops.window_lock'
    connection = mock.MagicMock()
    connection._shell.tmpdir = '/tmp/x'
    return action.ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(), mock.MagicMock())


def test_action_plugin_passes_a_dead_local_run_as_stale(lock_path):
    """The plugin runs a query, judges the holder, then the real state with stale_run_ids (modules run in-process)."""
    ident = action.controller_identity()
    dead = dict(OTHER, controller=ident['controller'], boot_id=ident['boot_id'], pid=ident['pid'],
                pid_start=(ident['pid_start'] or 0) + 1)  # our pid with another start time: a dead run whose pid was reused
    plant(lock_path, lock_of(dead, utcnow()))
    calls = []

    def execute_module(module_name=None, module_args=None, task_vars=None, **kwargs):
        calls.append(dict(module_args))
        res, failed = run_module(window_lock, module_args)
        res.pop('_warnings')
        return dict(res, failed=True) if failed else res

    plugin = _action_plugin({'path': lock_path, 'holder': {'playbook': 'weekly-maintenance'}})
    with mock.patch.object(plugin, '_execute_module', side_effect=execute_module):
        result = plugin.run(task_vars={'inventory_hostname': 'qflow-node-2', 'awx_user_name': 'carol',
                                       'ansible_play_name': 'Weekly maintenance'})
    assert [c.get('state') for c in calls] == ['query', None]
    assert calls[1]['stale_run_ids'] == [OTHER['run_id']]
    assert calls[1]['holder'] == dict(ident, playbook='weekly-maintenance', who='carol')
    assert not result.get('failed') and result['changed'] is True, result
    assert result['broken']['run_id'] == OTHER['run_id']
    assert result['stale_reason'] == 'its ansible-playbook process %d on %s is gone' % (ident['pid'], ident['controller'])
    assert result['stale_reason'] in result['msg'] and 'no longer running' not in result['msg']
    assert json.loads(read(lock_path).decode())['run_id'] == ident['run_id']


def test_action_plugin_refuses_a_live_local_run(lock_path):
    ident = action.controller_identity()
    live = dict(OTHER, controller=ident['controller'], boot_id=ident['boot_id'], pid=ident['pid'],
                pid_start=ident['pid_start'])
    content = plant(lock_path, lock_of(live, utcnow()))

    def execute_module(module_name=None, module_args=None, task_vars=None, **kwargs):
        res, failed = run_module(window_lock, module_args)
        return dict(res, failed=True) if failed else res

    plugin = _action_plugin({'path': lock_path, 'holder': {'playbook': 'monthly-maintenance', 'run_id': 'other-run'}})
    with mock.patch.object(plugin, '_execute_module', side_effect=execute_module):
        result = plugin.run(task_vars={'inventory_hostname': 'qflow-node-2'})
    assert result['failed'] and result['msg'].startswith('qflow-node-2 is held by monthly-maintenance (run 3f2a')
    assert read(lock_path) == content


# ------------------------------------------------------------------------------- end to end through ansible-playbook

PLAYBOOK = '''
- name: Window
  hosts: node
  gather_facts: false
  tasks:
    - name: Lock
      ansible.builtin.include_role:
        name: qflow.ops.run_guard
        tasks_from: lock
    - name: Hold the node until the flag file exists
      ansible.builtin.wait_for:
        path: "{{ flag }}"
        timeout: 120
      when: flag is defined
    - name: Unlock
      ansible.builtin.include_role:
        name: qflow.ops.run_guard
        tasks_from: unlock
'''


def _playbook_env(tmp_path):
    # the collections root this test imports qflow.ops from (…/ansible_collections/qflow/ops/plugins/modules/x.py)
    root = os.path.abspath(window_lock.__file__)
    for dummy in range(6):
        root = os.path.dirname(root)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=root, ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='default',
               ANSIBLE_CALLBACK_RESULT_FORMAT='json', ANSIBLE_RETRY_FILES_ENABLED='0')
    env.pop('ANSIBLE_CONFIG', None)
    env['ANSIBLE_CONFIG'] = str(tmp_path / 'none.cfg')
    (tmp_path / 'none.cfg').write_text('[defaults]\n')
    (tmp_path / 'hosts.ini').write_text('node ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
    (tmp_path / 'window.yml').write_text(PLAYBOOK)
    return env


def _playbook(tmp_path, env, procedure, *extra, **kwargs):
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(tmp_path / 'hosts.ini'),
           str(tmp_path / 'window.yml'), '-e', 'qflow_lock_procedure=%s' % procedure,
           '-e', 'qflow_lock_dir=%s' % (tmp_path / 'locks'), '-e', 'qflow_data_dir=/srv/qflow/node-1'] + list(extra)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                            **kwargs)


@pytest.mark.skipif(not os.path.exists('/proc/self/stat'), reason='needs /proc')
def test_two_windows_through_ansible_playbook(tmp_path):
    """A real run holds the node; a second is refused naming it; once the first dies (SIGKILL), the next run from this
    controller replaces its lock at once (its process is gone), and releases it at the end."""
    import signal
    import time
    env = _playbook_env(tmp_path)
    lock_file = tmp_path / 'locks' / 'srv-qflow-node-1.json'
    holder = _playbook(tmp_path, env, 'weekly-maintenance', '-e', 'flag=%s' % (tmp_path / 'flag'),
                       start_new_session=True)
    try:
        deadline = time.time() + 120
        while not lock_file.exists() and holder.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert lock_file.exists(), holder.communicate()[0] if holder.poll() is not None else 'no lock after 120 s'
        held = json.loads(lock_file.read_text())
        assert held['playbook'] == 'weekly-maintenance' and held['pid'] == holder.pid
        assert held['pid_start'] == action.process_start(holder.pid)

        second = _playbook(tmp_path, env, 'monthly-maintenance')
        out = second.communicate(timeout=120)[0]
        assert second.returncode == 2, out
        assert 'is held by weekly-maintenance (run %s, started by %s on %s (pid %d), since %s' % (
            held['run_id'], held['who'], held['controller'], holder.pid, held['since']) in out, out
        assert 'Release the maintenance-window lock' not in out  # the refused host stopped at the lock
        assert json.loads(lock_file.read_text()) == held
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()

    third = _playbook(tmp_path, env, 'emergency-outage', '-v')
    out = third.communicate(timeout=120)[0]
    assert third.returncode == 0, out
    assert 'its ansible-playbook process %d on %s is gone' % (holder.pid, held['controller']) in out, out
    assert '"run_id": "%s"' % held['run_id'] in out  # broken
    assert not lock_file.exists()  # released at the end of the third run


def test_action_plugin_query_says_when_the_holder_is_a_dead_local_run(lock_path):
    ident = action.controller_identity()
    dead = dict(OTHER, controller=ident['controller'], boot_id='an-earlier-boot')
    content = plant(lock_path, lock_of(dead, utcnow()))

    def execute_module(module_name=None, module_args=None, task_vars=None, **kwargs):
        res, failed = run_module(window_lock, module_args)
        return dict(res, failed=True) if failed else res

    plugin = _action_plugin({'path': lock_path, 'state': 'query'})
    with mock.patch.object(plugin, '_execute_module', side_effect=execute_module):
        result = plugin.run(task_vars={'inventory_hostname': 'qflow-node-2'})
    assert not result.get('failed') and result['changed'] is False and result['held_by']['run_id'] == OTHER['run_id']
    assert result['stale_reason'].startswith('the controller %s rebooted since that run started' % ident['controller'])
    assert result['msg'].endswith('; stale - %s' % result['stale_reason'])
    assert read(lock_path) == content
