# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import gzip
import json

from qflow_stub_http import run_module

from ansible_collections.qflow.ops.plugins.modules import logs_info


def line(minutes_ago, level, component, message):
    dt = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=minutes_ago)
    return json.dumps({'time': dt.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z', 'level': level,
                       'component': component, 'message': message})


def test_logs_info(tmp_path):
    (tmp_path / 'qflow.log').write_text('\n'.join([
        line(1, 'error', 'execution-engine', 'Step step-2 failed: upstream timeout after 3000 ms'),
        line(2, 'error', 'execution-engine', 'Step step-5 failed: upstream timeout after 15 ms'),
        line(3, 'info', 'api', 'GET /health 200'),
        '{broken',
    ]) + '\n')
    with gzip.open(str(tmp_path / 'qflow.log.1.gz'), 'wt') as f:
        f.write(line(60, 'error', 'execution-engine', 'Step step-9 failed: upstream timeout after 12 ms') + '\n')
        f.write(line(60 * 30, 'error', 'execution-engine', 'Step step-1 failed: upstream timeout after 1 ms') + '\n')
    result, failed = run_module(logs_info, {'log_dir': str(tmp_path)})
    assert not failed and result['changed'] is False
    assert result['counts'] == {'debug': 0, 'info': 1, 'warn': 0, 'error': 3, 'fatal': 0}
    assert result['by_component'] == {'execution-engine': 3}
    assert result['unparsed_lines'] == 1
    assert len(result['entries']) == 3
    assert result['patterns'][0]['count'] == 3
    assert result['patterns'][0]['pattern'] == 'Step step-<id> failed: upstream timeout after <duration>'
    assert len(result['files']) == 2

    result, failed = run_module(logs_info, {'log_dir': str(tmp_path), 'since': '10m', 'level': 'info', 'limit': 1,
                                            'component': ['api']})
    assert not failed
    assert [e['message'] for e in result['entries']] == ['GET /health 200']


def test_missing_dir(tmp_path):
    result, failed = run_module(logs_info, {'log_dir': str(tmp_path / 'missing')})
    assert failed
    assert str(tmp_path / 'missing') in result['msg'] and 'does not exist' in result['msg']
    assert 'log_dir' in result['msg']


def test_empty_dir_warns(tmp_path):
    result, failed = run_module(logs_info, {'log_dir': str(tmp_path)})
    assert not failed and result['files'] == [] and result['_warnings']


def test_bad_since(tmp_path):
    result, failed = run_module(logs_info, {'log_dir': str(tmp_path), 'since': 'forever'})
    assert failed and result['msg'].startswith('since: invalid duration')
