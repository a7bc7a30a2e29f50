# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import gzip
import json
import os
import time

import pytest

from ansible_collections.qflow.ops.plugins.module_utils._logs import (
    LogDirError,
    list_log_files,
    normalize_level,
    normalize_message,
    summarize,
)

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def ts(minutes_ago):
    dt = NOW - datetime.timedelta(minutes=minutes_ago)
    return dt.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (dt.microsecond // 1000)


def rec(minutes_ago, level, component, message, **extra):
    d = {'time': ts(minutes_ago), 'level': level, 'component': component, 'message': message}
    d.update(extra)
    return json.dumps(d)


def write(path, lines, gz=False, mtime=None):
    data = '\n'.join(lines) + '\n'
    if gz:
        with gzip.open(path, 'wt', encoding='utf-8') as f:
            f.write(data)
    else:
        with open(path, 'w', encoding='utf-8') as f:
            f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


@pytest.mark.parametrize('message,expected', [
    ('Step step-2 failed: upstream timeout after 3000 ms', 'Step step-<id> failed: upstream timeout after <duration>'),
    ('Execution 3f2b1c9e-8d4a-4f7e-9b21-0a1b2c3d4e5f failed with code 503', 'Execution <uuid> failed with code <n>'),
    ('exec-7f3a9c aborted by "alice" at 2026-11-27T03:12:45.123Z', 'exec-<id> aborted by "<str>" at <time>'),
    ('Cache key 0xdeadbeef ratio 0.75 took 1.5s', 'Cache key <hex> ratio <n> took <duration>'),
    ('hash a1b2c3d4e5f60718 mismatch', 'hash <hex> mismatch'),
    ('Node 10.0.0.12:4001 unreachable (attempt 3/5)', 'Node <ip> unreachable (attempt <n>/<n>)'),
    ("user 'bob' denied", "user '<str>' denied"),
    ('execution-engine started', 'execution-engine started'),
])
def test_normalize_message(message, expected):
    assert normalize_message(message) == expected


def test_normalize_level():
    assert normalize_level('WARNING') == 'warn'
    assert normalize_level(50) == 'error'
    assert normalize_level(None) == 'info'


def test_patterns_group_messages_differing_by_numbers_and_uuids(tmp_path):
    lines = [
        rec(30, 'error', 'execution-engine', 'Step step-2 failed for 3f2b1c9e-8d4a-4f7e-9b21-0a1b2c3d4e5f after 3000 ms'),
        rec(20, 'error', 'execution-engine', 'Step step-7 failed for 0a0b1c9e-8d4a-4f7e-9b21-0a1b2c3d4e5f after 120 ms'),
        rec(10, 'error', 'execution-engine', 'Step step-11 failed for ffffffff-8d4a-4f7e-9b21-0a1b2c3d4e5f after 9 ms'),
        rec(5, 'error', 'storage', 'Step step-11 failed for ffffffff-8d4a-4f7e-9b21-0a1b2c3d4e5f after 9 ms'),
        rec(4, 'warn', 'storage', 'Slow write of 12 rows'),
        rec(3, 'info', 'api', 'GET /health 200'),
    ]
    write(str(tmp_path / 'qflow.log'), lines)
    out = summarize(str(tmp_path), since_seconds=3600, min_level='warn', now=NOW)
    top = out['patterns'][0]
    assert top['count'] == 3
    assert top['pattern'] == 'Step step-<id> failed for <uuid> after <duration>'
    assert top['level'] == 'error' and top['component'] == 'execution-engine'
    assert top['first_seen'] == ts(30) and top['last_seen'] == ts(10)
    assert top['example'].startswith('Step step-11')
    assert len(out['patterns']) == 3  # same text in another component is another pattern
    assert out['counts'] == {'debug': 0, 'info': 1, 'warn': 1, 'error': 4, 'fatal': 0}
    assert out['by_component'] == {'execution-engine': 3, 'storage': 2}
    assert [e['time'] for e in out['entries']] == [ts(4), ts(5), ts(10), ts(20), ts(30)]  # newest first


def test_rotated_and_gz_files_since_and_level(tmp_path):
    now_epoch = time.time()
    write(str(tmp_path / 'qflow.log'), [rec(1, 'error', 'api', 'current 1'), 'not json at all', '[1, 2]'])
    write(str(tmp_path / 'qflow.log.1'), [rec(90, 'warn', 'cache', 'rotated 1'), rec(200, 'error', 'cache', 'too old')])
    gz_lines = [rec(100, 'fatal', 'system', 'gz entry'), json.dumps({'level': 'error', 'message': 'no time'})]
    write(str(tmp_path / 'qflow.log.2.gz'), gz_lines, gz=True)
    # last written long before any window: skipped without being read
    write(str(tmp_path / 'qflow.log.3.gz'), [rec(10, 'error', 'api', 'would be counted')], gz=True,
          mtime=now_epoch - 30 * 86400)
    write(str(tmp_path / 'other.log'), [rec(1, 'error', 'api', 'not ours')])
    out = summarize(str(tmp_path), since_seconds=3 * 3600, min_level='warn', now=NOW)
    names = [os.path.basename(f) for f in out['files']]
    assert names == ['qflow.log', 'qflow.log.1', 'qflow.log.2.gz']
    assert [os.path.basename(f) for f in out['files_skipped']] == ['qflow.log.3.gz']
    assert out['unparsed_lines'] == 3  # garbage, JSON array, record without time
    msgs = [e['message'] for e in out['entries']]
    assert msgs == ['current 1', 'rotated 1', 'gz entry']  # 'too old' is outside 3h
    assert out['counts']['fatal'] == 1 and out['counts']['error'] == 1 and out['counts']['warn'] == 1

    out = summarize(str(tmp_path), since_seconds=3 * 3600, min_level='error', components=['system', 'api'], now=NOW)
    assert [e['message'] for e in out['entries']] == ['current 1', 'gz entry']
    assert out['counts']['warn'] == 0  # component filter applies to counts
    out = summarize(str(tmp_path), since_seconds=30 * 60, min_level='debug', now=NOW)
    assert [e['message'] for e in out['entries']] == ['current 1']


def test_limit_and_max_patterns(tmp_path):
    write(str(tmp_path / 'qflow.log'), [rec(i, 'error', 'api', 'message kind %s' % chr(65 + i)) for i in range(10)])
    out = summarize(str(tmp_path), since_seconds=0, limit=3, max_patterns=2, now=NOW)
    assert len(out['entries']) == 3 and out['matched'] == 10
    assert len(out['patterns']) == 2 and out['patterns_total'] == 10
    assert out['since'] is None


def test_entries_carry_extra_fields(tmp_path):
    write(str(tmp_path / 'qflow.log'), [rec(1, 'error', 'execution-engine', 'x', executionId='e1', flowId='f1')])
    out = summarize(str(tmp_path), now=NOW)
    assert out['entries'][0]['extra'] == {'executionId': 'e1', 'flowId': 'f1'}
    assert out['entries'][0]['file'] == 'qflow.log'


def test_missing_dir(tmp_path):
    with pytest.raises(LogDirError) as exc:
        list_log_files(str(tmp_path / 'nope'))
    assert str(tmp_path / 'nope') in str(exc.value) and 'log_dir' in str(exc.value)
