# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.logs on a temp log dir whose files have chosen modification times."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import os
import stat
import time

from qflow_stub_http import run_module

from ansible_collections.qflow.ops.plugins.modules import logs

DAY = 86400
NOW = time.time()


def make(path, content, days_old, mode=0o640, gz=False):
    data = content.encode('utf-8')
    if gz:
        data = gzip.compress(data)
    with open(str(path), 'wb') as handle:
        handle.write(data)
    os.chmod(str(path), mode)
    mtime = NOW - days_old * DAY
    os.utime(str(path), (mtime, mtime))
    return mtime


def listing(directory):
    """name -> (size, mtime_ns, mode) of every entry, hidden files included."""
    out = {}
    for name in sorted(os.listdir(str(directory))):
        st = os.lstat(os.path.join(str(directory), name))
        out[name] = (st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return out


def line(n):
    return ''.join('{"time": "2026-11-01T00:00:%02d.000Z", "level": "info", "component": "api", "message": "GET /health 200"}\n'
                   % (i % 60) for i in range(n))


def log_dir(tmp_path):
    d = tmp_path / 'qflow'
    d.mkdir()
    make(d / 'qflow.log', line(10), 40)  # the live file, even when old, is never touched
    make(d / 'qflow.log.1', line(50), 1)
    make(d / 'qflow.log.2', line(200), 10, mode=0o600)
    make(d / 'qflow.log.3', line(300), 45)
    make(d / 'qflow.log.4.gz', line(100), 100, gz=True)
    make(d / 'other.txt', 'not a log', 400)
    return d


def test_compress_four_steps(tmp_path):
    d = log_dir(tmp_path)
    args = {'log_dir': str(d), 'older_than': '7d'}
    original = (d / 'qflow.log.2').read_bytes()
    untouched = dict((n, v) for n, v in listing(d).items() if n not in ('qflow.log.2', 'qflow.log.3'))
    mtime2 = os.stat(str(d / 'qflow.log.2')).st_mtime_ns

    before = listing(d)
    res, failed = run_module(logs, args, check_mode=True, diff=True)
    assert not failed, res
    assert res['changed'] is True
    assert res['compressed'] == [str(d / 'qflow.log.2'), str(d / 'qflow.log.3')]
    assert res['created'] == [str(d / 'qflow.log.2.gz'), str(d / 'qflow.log.3.gz')]
    assert res['deleted'] == [] and res['freed_bytes'] == 0
    assert res['diff'] == {'before': {'files': ['qflow.log.1', 'qflow.log.2', 'qflow.log.3', 'qflow.log.4.gz']},
                           'after': {'files': ['qflow.log.1', 'qflow.log.2.gz', 'qflow.log.3.gz', 'qflow.log.4.gz']}}
    assert listing(d) == before

    res, failed = run_module(logs, args, diff=True)
    assert not failed, res
    assert res['changed'] is True and res['compressed'] == [str(d / 'qflow.log.2'), str(d / 'qflow.log.3')]
    assert res['freed_bytes'] > 0
    assert res['diff']['after'] == {'files': ['qflow.log.1', 'qflow.log.2.gz', 'qflow.log.3.gz', 'qflow.log.4.gz']}
    now = listing(d)
    assert sorted(now) == ['other.txt', 'qflow.log', 'qflow.log.1', 'qflow.log.2.gz', 'qflow.log.3.gz', 'qflow.log.4.gz']
    assert now['qflow.log.2.gz'][1] == mtime2 and now['qflow.log.2.gz'][2] == 0o600  # mtime and mode kept
    assert now['qflow.log.3.gz'][2] == 0o640
    assert gzip.decompress((d / 'qflow.log.2.gz').read_bytes()) == original
    assert dict((n, v) for n, v in now.items() if n in untouched) == untouched

    res, failed = run_module(logs, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is False and res['compressed'] == [] and res['deleted'] == []
    assert res['diff']['before'] == res['diff']['after']

    res, failed = run_module(logs, args)
    assert not failed and res['changed'] is False and res['freed_bytes'] == 0
    assert listing(d) == now


def test_delete_four_steps(tmp_path):
    d = log_dir(tmp_path)
    args = {'log_dir': str(d), 'older_than': '30d', 'action': 'delete'}
    sizes = dict((n, v[0]) for n, v in listing(d).items())
    before = listing(d)

    res, failed = run_module(logs, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is True
    assert res['deleted'] == [str(d / 'qflow.log.3'), str(d / 'qflow.log.4.gz')] and res['compressed'] == []
    assert res['freed_bytes'] == sizes['qflow.log.3'] + sizes['qflow.log.4.gz']
    assert res['diff'] == {'before': {'files': ['qflow.log.1', 'qflow.log.2', 'qflow.log.3', 'qflow.log.4.gz']},
                           'after': {'files': ['qflow.log.1', 'qflow.log.2']}}
    assert listing(d) == before

    res, failed = run_module(logs, args, diff=True)
    assert not failed and res['changed'] is True
    assert res['deleted'] == [str(d / 'qflow.log.3'), str(d / 'qflow.log.4.gz')]
    assert res['freed_bytes'] == sizes['qflow.log.3'] + sizes['qflow.log.4.gz']
    expected = dict((n, v) for n, v in before.items() if n not in ('qflow.log.3', 'qflow.log.4.gz'))
    assert listing(d) == expected  # the live qflow.log (40 days old) and other.txt stay

    res, failed = run_module(logs, args, check_mode=True)
    assert not failed and res['changed'] is False and res['deleted'] == []
    res, failed = run_module(logs, args)
    assert not failed and res['changed'] is False
    assert listing(d) == expected


def test_compress_delete_after_is_idempotent(tmp_path):
    d = log_dir(tmp_path)
    args = {'log_dir': str(d), 'older_than': '7d', 'compress_delete_after': '40d'}
    res, failed = run_module(logs, args, check_mode=True)
    assert not failed and res['changed'] is True
    # qflow.log.3 (45 days) would only be compressed to be deleted next time: it is deleted at once
    assert res['compressed'] == [str(d / 'qflow.log.2')]
    assert res['deleted'] == [str(d / 'qflow.log.3'), str(d / 'qflow.log.4.gz')]
    res, failed = run_module(logs, args)
    assert not failed and res['changed'] is True
    assert sorted(listing(d)) == ['other.txt', 'qflow.log', 'qflow.log.1', 'qflow.log.2.gz']
    state = listing(d)
    res, failed = run_module(logs, args)
    assert not failed and res['changed'] is False and listing(d) == state


def test_name_clash_with_an_earlier_archive(tmp_path):
    d = tmp_path / 'logs'
    d.mkdir()
    make(d / 'qflow.log.2', line(20), 10)
    make(d / 'qflow.log.2.gz', line(5), 60, gz=True)  # compressed by an earlier run, then the name came back
    make(d / 'qflow.log.3', line(7), 12)
    make(d / 'qflow.log.3.gz', line(7), 12, gz=True)  # same content: an interrupted earlier run
    res, failed = run_module(logs, {'log_dir': str(d), 'older_than': '7d'})
    assert not failed and res['changed'] is True
    stamped = [n for n in os.listdir(str(d)) if n.startswith('qflow.log.2.2') and n.endswith('Z.gz')]
    assert len(stamped) == 1 and res['created'] == [str(d / stamped[0])]
    assert res['deleted'] == [str(d / 'qflow.log.3')]
    assert sorted(os.listdir(str(d))) == sorted(['qflow.log.2.gz', stamped[0], 'qflow.log.3.gz'])
    assert gzip.decompress((d / stamped[0]).read_bytes()) == line(20).encode('utf-8')
    res, failed = run_module(logs, {'log_dir': str(d), 'older_than': '7d'})
    assert not failed and res['changed'] is False


def test_bad_input_fails_and_changes_nothing(tmp_path):
    d = log_dir(tmp_path)
    before = listing(d)
    cases = [
        ({'older_than': 'soon'}, "older_than: invalid duration 'soon'"),
        ({'older_than': '7d', 'compress_delete_after': 'later'}, "compress_delete_after: invalid duration 'later'"),
        ({'older_than': '7d', 'action': 'delete', 'compress_delete_after': '9d'}, 'only with action=compress'),
        ({'older_than': '7d', 'patterns': ['qflow.log*']}, "'qflow.log*' matches the live log file qflow.log"),
        ({'older_than': '1s', 'action': 'delete', 'patterns': ['*']}, "'*' matches the live log file qflow.log"),
        ({'older_than': '7d', 'patterns': ['qflow.log.*', 'qflow.lo?']}, "'qflow.lo?' matches the live log file"),
        ({'older_than': '7d', 'patterns': ['../qflow.log.*']}, 'is not a file name glob'),
        ({'older_than': '7d', 'patterns': []}, 'patterns must not be empty'),
    ]
    for args, expected in cases:
        for check_mode in (False, True):
            res, failed = run_module(logs, dict(args, log_dir=str(d)), check_mode=check_mode)
            assert failed and expected in res['msg'], res
            assert 'Nothing was changed' in res['msg'] and res['changed'] is False
            assert listing(d) == before


def test_missing_log_dir(tmp_path):
    missing = str(tmp_path / 'nope')
    for check_mode in (False, True):
        res, failed = run_module(logs, {'log_dir': missing, 'older_than': '30d'}, check_mode=check_mode)
        assert failed and missing in res['msg'] and 'does not exist' in res['msg'] and 'log_dir' in res['msg']
    assert not os.path.exists(missing)
    (tmp_path / 'afile').write_text('x')
    res, failed = run_module(logs, {'log_dir': str(tmp_path / 'afile'), 'older_than': '30d'})
    assert failed and 'is not a directory' in res['msg']


def test_symlinks_hidden_and_temp_files_are_left_alone(tmp_path):
    d = tmp_path / 'logs'
    d.mkdir()
    target = tmp_path / 'elsewhere.log'
    make(target, line(3), 90)
    os.symlink(str(target), str(d / 'qflow.log.5'))
    make(d / '.qflow.log.6.gz.tmp-abc', 'partial', 90)
    make(d / 'qflow.log.7.tmp', 'x', 90)
    make(d / 'qflow.log.8.lock', '', 90)
    before = listing(d)
    res, failed = run_module(logs, {'log_dir': str(d), 'older_than': '1d', 'action': 'delete'})
    assert not failed and res['changed'] is False and listing(d) == before
    assert target.exists()


def test_a_file_rotated_before_it_is_touched_is_skipped(tmp_path, monkeypatch):
    d = tmp_path / 'logs'
    d.mkdir()
    real_plan = logs.plan

    def plan_then_rotate(*a, **kw):
        ops = real_plan(*a, **kw)
        make(d / 'qflow.log.3', line(40), 0.5)  # the node renamed a younger file to qflow.log.3
        return ops

    monkeypatch.setattr(logs, 'plan', plan_then_rotate)
    for action in ('delete', 'compress'):
        make(d / 'qflow.log.3', line(30), 20)
        res, failed = run_module(logs, {'log_dir': str(d), 'older_than': '7d', 'action': action})
        assert not failed and res['changed'] is False, res
        assert res['skipped'][0]['path'] == str(d / 'qflow.log.3') and 'rotated' in res['skipped'][0]['reason']
        assert res['_warnings'] and res['deleted'] == [] and res['compressed'] == []
        assert sorted(os.listdir(str(d))) == ['qflow.log.3']
        assert (d / 'qflow.log.3').read_text() == line(40)


def test_a_file_rotated_while_it_is_compressed_is_skipped(tmp_path, monkeypatch):
    d = tmp_path / 'logs'
    d.mkdir()
    make(d / 'qflow.log.3', line(30), 20)
    real_copy = logs.shutil.copyfileobj

    def copy_then_rotate(src, dst, length=0):
        real_copy(src, dst, length)
        os.replace(str(d / 'qflow.log.3'), str(d / 'qflow.log.4'))
        make(d / 'qflow.log.3', line(40), 0.5)

    monkeypatch.setattr(logs.shutil, 'copyfileobj', copy_then_rotate)
    res, failed = run_module(logs, {'log_dir': str(d), 'older_than': '7d'})
    assert not failed and res['changed'] is False and 'rotated' in res['skipped'][0]['reason'], res
    # the archive of the renamed file is dropped; both files are intact and no temp file is left
    assert sorted(os.listdir(str(d))) == ['qflow.log.3', 'qflow.log.4']
    assert (d / 'qflow.log.4').read_text() == line(30) and (d / 'qflow.log.3').read_text() == line(40)


def test_write_error_removes_the_temp_file(tmp_path, monkeypatch):
    d = tmp_path / 'logs'
    d.mkdir()
    make(d / 'qflow.log.3', line(30), 20)
    before = listing(d)

    def broken_copy(src, dst, length=0):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(logs.shutil, 'copyfileobj', broken_copy)
    res, failed = run_module(logs, {'log_dir': str(d), 'older_than': '7d'})
    assert failed and 'No space left on device' in res['msg'] and res['changed'] is False
    assert listing(d) == before
