# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

from ansible.module_utils.six.moves.urllib.parse import parse_qs, urlsplit

from qflow_stub_http import Route, free_port, run_module, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.modules import alerts_info


def ago(minutes):
    dt = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=minutes)
    return dt.strftime('%Y-%m-%dT%H:%M:%S.%f') + '000Z'  # nanoseconds, as Alertmanager writes them


def alert(name, severity, minutes, instance='127.0.1.2:9090', state='active', silenced=False):
    return {
        'labels': {'alertname': name, 'severity': severity, 'service': 'qflow', 'instance': instance},
        'annotations': {'summary': '%s on %s' % (name, instance)},
        'startsAt': ago(minutes), 'endsAt': ago(-5), 'updatedAt': ago(0), 'fingerprint': name.lower(),
        'status': {'state': state, 'silencedBy': ['s1'] if silenced else [], 'inhibitedBy': []},
        'receivers': [{'name': 'default'}],
    }


ALERTS = [
    alert('QflowHighLatency', 'warning', 10),
    alert('QflowHighErrorRate', 'critical', 120),
    alert('QflowServiceDown', 'critical', 5, instance='127.0.1.3:9090'),
    alert('QflowLowCacheHitRate', 'warning', 3000),
    alert('QflowNodeHealthCritical', 'critical', 1, state='suppressed', silenced=True),
]


def server(stub_server):
    return stub_server({'/api/v2/alerts': Route(200, ALERTS)})


def test_all_active(stub_server):
    srv = server(stub_server)
    result, failed = run_module(alerts_info, {'alertmanager_url': srv.url})
    assert not failed and result['changed'] is False
    names = [a['name'] for a in result['alerts']]
    # critical first, newest first within a severity; the silenced one is dropped
    assert names == ['QflowServiceDown', 'QflowHighErrorRate', 'QflowHighLatency', 'QflowLowCacheHitRate']
    assert result['counts'] == {'critical': 2, 'warning': 2} and result['critical'] == 2
    first = result['alerts'][0]
    assert set(['name', 'severity', 'state', 'starts_at', 'instance', 'summary', 'labels', 'annotations']) <= set(first)
    assert first['summary'] == 'QflowServiceDown on 127.0.1.3:9090' and first['state'] == 'active'
    query = parse_qs(urlsplit(srv.requests[0]['path']).query)
    assert query['active'] == ['true'] and query['silenced'] == ['false'] and query['inhibited'] == ['false']


def test_since_severity_matchers(stub_server):
    srv = server(stub_server)
    result, failed = run_module(alerts_info, {'alertmanager_url': srv.url, 'since': '1h'})
    assert [a['name'] for a in result['alerts']] == ['QflowServiceDown', 'QflowHighLatency']
    result, failed = run_module(alerts_info, {'alertmanager_url': srv.url, 'severity': ['warning']})
    assert [a['name'] for a in result['alerts']] == ['QflowHighLatency', 'QflowLowCacheHitRate']
    assert result['critical'] == 0
    result, failed = run_module(alerts_info, {'alertmanager_url': srv.url, 'matchers': {'instance': '127.0.1.2:9090'},
                                              'severity': ['critical']})
    assert [a['name'] for a in result['alerts']] == ['QflowHighErrorRate']
    query = parse_qs(urlsplit(srv.requests[-1]['path']).query)
    assert query['filter'] == ['instance="127.0.1.2:9090"']


def test_include_silenced(stub_server):
    srv = server(stub_server)
    result, failed = run_module(alerts_info, {'alertmanager_url': srv.url, 'include_silenced': True, 'since': '30m'})
    assert [a['name'] for a in result['alerts']] == ['QflowNodeHealthCritical', 'QflowServiceDown', 'QflowHighLatency']
    assert result['alerts'][0]['silenced'] is True and result['alerts'][0]['state'] == 'suppressed'


def test_errors(stub_server):
    port = free_port()
    result, failed = run_module(alerts_info, {'alertmanager_url': 'http://127.0.0.1:%d' % port})
    assert failed and 'Cannot reach Alertmanager at http://127.0.0.1:%d/api/v2/alerts' % port in result['msg']
    srv = stub_server({'/api/v2/alerts': Route(200, '<html>')})
    result, failed = run_module(alerts_info, {'alertmanager_url': srv.url})
    assert failed and 'not JSON' in result['msg']
    result, failed = run_module(alerts_info, {'alertmanager_url': srv.url, 'since': 'yesterday'})
    assert failed and result['msg'].startswith('since: invalid duration')
