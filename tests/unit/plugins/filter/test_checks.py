"""Unit tests of the qflow.ops filters used by the roles."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.qflow.ops.plugins.filter.checks import FilterModule, collect_checks, seconds, unknown_vars


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {'unknown_vars', 'collect_checks', 'seconds', 'step_item'}


def test_unknown_vars_suggests_the_close_name():
    known = ['qflow_health_cpu_max_percent', 'qflow_health_memory_max_percent']
    assert unknown_vars(['qflow_health_cpu_max_percent'], known) == []
    assert unknown_vars(['qflow_health_cpu_max_precent'], known) == [
        'qflow_health_cpu_max_precent (did you mean qflow_health_cpu_max_percent?)']
    assert unknown_vars(['qflow_health_zzz'], known) == ['qflow_health_zzz']


def test_unknown_vars_rejects_a_bad_known_list():
    with pytest.raises(AnsibleFilterError):
        unknown_vars(['a'], 'a')


def test_collect_checks_reports_silent_hosts():
    item = {'node': 'n1', 'item': 'cpu', 'ok': True}
    hostvars = {'n1': {'qflow_checks': [item]}, 'n2': {}}
    out = collect_checks(hostvars, ['n1', 'n2', 'n3'])
    assert out[0] == item
    assert [(c['node'], c['item'], c['ok']) for c in out[1:]] == [('n2', 'reachable', False), ('n3', 'reachable', False)]
    assert 'unreachable' in out[1]['detail']


@pytest.mark.parametrize('value,expected', [('24h', 86400.0), ('15m', 900.0), (90, 90.0), ('2w', 1209600.0), ('7d', 604800.0)])
def test_seconds(value, expected):
    assert seconds(value) == expected


def test_seconds_rejects_garbage():
    with pytest.raises(AnsibleFilterError, match="invalid duration 'soon'"):
        seconds('soon')


def test_step_item_values():
    from ansible_collections.qflow.ops.plugins.filter.checks import step_item
    assert step_item({'changed': True}, 'n1', 'logs', 'Logs', 'freed 3 B')['value'] == 'changed'
    item = step_item({'changed': True}, 'n1', 'logs', 'Logs', 'freed 3 B', check_mode=True)
    assert item == {'node': 'n1', 'item': 'logs', 'title': 'Logs', 'ok': True, 'value': 'would change',
                    'threshold': 'done', 'detail': 'freed 3 B'}
    assert step_item({'changed': False}, 'n1', 'logs', 'Logs')['value'] == 'no change'
    failed = step_item({'failed': True, 'msg': 'boom'}, 'n1', 'logs', 'Logs', 'x')
    assert failed['ok'] is False and failed['value'] == 'failed' and failed['detail'] == 'boom'
    skipped = step_item({'skipped': True, 'false_condition': 'x'}, 'n1', 'ipfs', 'IPFS', 'no IPFS API')
    assert skipped['ok'] is True and skipped['value'] == 'skipped'
    assert step_item({}, 'n1', 'x', 'X')['value'] == 'not run' and step_item({}, 'n1', 'x', 'X')['ok'] is True
    assert step_item(None, 'n1', 'x', 'X', expect_change=True)['ok'] is False
    assert step_item({'unreachable': True, 'msg': 'ssh'}, 'n1', 'x', 'X')['ok'] is False
