"""Unit tests of the qflow.ops.schedule_plan filter (role qflow.ops.schedule)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.qflow.ops.plugins.filter.schedule import FilterModule, schedule_calendar, schedule_plan, systemd_quote

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULTS = os.path.join(HERE, '..', '..', '..', '..', 'roles', 'schedule', 'defaults', 'main.yml')


def settings(**kw):
    base = {'ansible_playbook': '/opt/qflow-ops/bin/ansible-playbook', 'inventory': '/etc/qflow-ops/hosts.yml',
            'flock': '/usr/bin/flock', 'lock_wait': 7200, 'timezone': 'UTC', 'timeout': '4h', 'persistent': True,
            'randomized_delay': '0', 'report_dir': '/var/lib/qflow-ops/reports', 'environment': {},
            'working_directory': '/var/lib/qflow-ops', 'environment_file': '/etc/qflow-ops/schedule.env',
            'notify_playbook': '/etc/qflow-ops/notify-failure.yml'}
    base.update(kw)
    return base


def job(**kw):
    base = {'procedure': 'morning-health-check', 'playbook': 'qflow.ops.morning_health_check',
            'on_calendar': '*-*-* 09:00:00'}
    base.update(kw)
    return base


def default_jobs():
    with open(DEFAULTS) as fh:
        return yaml.safe_load(fh)['qflow_schedule_jobs']


def test_filter_is_registered():
    assert set(FilterModule().filters()) == {'schedule_plan', 'schedule_calendar'}


def test_the_runbook_defaults():
    plan = schedule_plan(default_jobs(), settings(timezone='Europe/Madrid'))
    by = {j['procedure']: j for j in plan['jobs']}
    assert {p: j['calendar'] for p, j in by.items()} == {
        'nightly-backup': '*-*-* 00:30:00 Europe/Madrid',
        'morning-health-check': '*-*-* 09:00:00 Europe/Madrid',
        'performance-review': '*-*-* 14:00:00 Europe/Madrid',
        'log-review': '*-*-* 17:00:00 Europe/Madrid',
        'weekly-maintenance': 'Sun *-*-* 02:00:00 Europe/Madrid',
        'monthly-maintenance': 'Sun *-*-01..07 01:00:00 Europe/Madrid',
    }
    assert plan['locks'] == ['maintenance']
    assert [p for p, j in by.items() if j['lock']] == ['weekly-maintenance', 'monthly-maintenance']
    assert by['monthly-maintenance']['exec_start'] == (
        '/usr/bin/flock -E 75 -w 7200 /run/qflow-ops/maintenance.lock /opt/qflow-ops/bin/ansible-playbook '
        'qflow.ops.monthly_maintenance -i /etc/qflow-ops/hosts.yml')
    assert by['morning-health-check']['exec_start'] == (
        '/opt/qflow-ops/bin/ansible-playbook qflow.ops.morning_health_check -i /etc/qflow-ops/hosts.yml')
    assert by['morning-health-check']['service'] == 'qflow-ops-morning-health-check.service'
    assert by['morning-health-check']['timer'] == 'qflow-ops-morning-health-check.timer'
    assert by['morning-health-check']['description'] == 'Morning Health Check'
    # a missed maintenance window is not started at boot; the other jobs catch up
    assert {p: j['persistent'] for p, j in by.items()} == {p: not j['lock'] for p, j in by.items()}
    assert plan['notify_exec_start'] == (
        '/opt/qflow-ops/bin/ansible-playbook /etc/qflow-ops/notify-failure.yml -i /etc/qflow-ops/hosts.yml'
        ' -e qflow_schedule_failed_unit=%i')
    assert plan['environment'] == ['ANSIBLE_FORCE_COLOR=0', 'ANSIBLE_NOCOLOR=1',
                                   'QFLOW_REPORT_DIR=/var/lib/qflow-ops/reports']


@pytest.mark.parametrize('arg,quoted', [
    ('qflow_target=qflow_nodes', 'qflow_target=qflow_nodes'),
    ('a b', '"a b"'),
    ('100%', '"100%%"'),
    ('$HOME', '"$$HOME"'),
    ('say "hi"', '"say \\"hi\\""'),
    ('back\\slash', '"back\\\\slash"'),
    (';', '";"'),
    ('', '""'),
    ("it's", '"it\'s"'),
])
def test_exec_arguments_are_quoted_for_systemd(arg, quoted):
    assert systemd_quote(arg) == quoted


def test_environment_keeps_dollars_and_quotes_spaces():
    plan = schedule_plan([job()], settings(environment={'ANSIBLE_CONFIG': '/srv/my ops/ansible.cfg', 'COST': '$5',
                                                        'PCT': '50%'}))
    assert plan['environment'] == ['"ANSIBLE_CONFIG=/srv/my ops/ansible.cfg"', 'ANSIBLE_FORCE_COLOR=0',
                                   'ANSIBLE_NOCOLOR=1', '"COST=$5"', '"PCT=50%%"',
                                   'QFLOW_REPORT_DIR=/var/lib/qflow-ops/reports']


def test_extra_args_list_or_shell_string():
    a = schedule_plan([job(extra_args=['-e', 'qflow_target=qflow nodes', '--limit', 'n%1'])], settings())
    b = schedule_plan([job(extra_args='-e "qflow_target=qflow nodes" --limit n%1')], settings())
    expected = ('/opt/qflow-ops/bin/ansible-playbook qflow.ops.morning_health_check -i /etc/qflow-ops/hosts.yml '
                '-e "qflow_target=qflow nodes" --limit "n%%1"')
    assert a['jobs'][0]['exec_start'] == b['jobs'][0]['exec_start'] == expected


def test_job_settings_override_the_global_ones():
    plan = schedule_plan([job(timezone='', timeout='30min', persistent=False, randomized_delay='5m',
                              enabled=False, description='Check')], settings())
    j = plan['jobs'][0]
    assert (j['calendar'], j['timeout'], j['persistent'], j['randomized_delay'], j['enabled'], j['description']) == (
        '*-*-* 09:00:00', '30min', False, '5m', False, 'Check')


def test_no_notify_playbook_no_notify_unit():
    assert schedule_plan([job()], settings(notify_playbook=''))['notify_exec_start'] == ''


def test_every_bad_job_is_named_at_once():
    jobs = [
        job(),
        job(),                                                   # duplicate
        job(procedure='Morning Check'),                          # not a unit-name slug
        job(procedure='log-review', playbook='', on_calendar=''),
        job(procedure='weekly', lock='Big Lock', extra_args={'-e': 'x'}, colour='red'),
        job(procedure='nl', extra_args=['a\nb']),
        'not-a-dict',
    ]
    with pytest.raises(AnsibleFilterError) as err:
        schedule_plan(jobs, settings())
    msg = str(err.value)
    for expected in ('job 2 (morning-health-check): procedure morning-health-check is listed twice',
                     "job 3 (Morning Check): procedure 'Morning Check' must be lower-case",
                     'job 4 (log-review): playbook is empty', 'job 4 (log-review): on_calendar is empty',
                     "job 5 (weekly): unknown key(s) colour", "job 5 (weekly): extra_args must be a list",
                     "job 5 (weekly): lock 'Big Lock'", 'job 6 (nl): holds a line break',
                     "job 7: must be a dict"):
        assert expected in msg
    assert 'job 1 ' not in msg
    assert msg.endswith('Nothing was written.')


@pytest.mark.parametrize('change,expected', [
    ({'ansible_playbook': 'ansible-playbook'}, "ansible_playbook must be an absolute path"),
    ({'inventory': ''}, 'inventory is empty'),
    ({'lock_wait': -1}, 'lock_wait must be a number of seconds'),
    ({'working_directory': '/srv/qflow ops'}, 'working_directory must be an absolute path without spaces'),
    ({'report_dir': 'reports'}, 'report_dir must be an absolute path'),
    ({'environment': {'BAD-NAME': '1'}}, 'environment BAD-NAME: is not a variable name'),
])
def test_bad_settings(change, expected):
    with pytest.raises(AnsibleFilterError, match='Nothing was written') as err:
        schedule_plan([job()], settings(**change))
    assert expected in str(err.value)


def test_bad_time_spans():
    with pytest.raises(AnsibleFilterError) as err:
        schedule_plan([job(timeout='four hours'), job(procedure='b', randomized_delay='-1')], settings())
    assert "job 1 (morning-health-check): timeout 'four hours' is not a systemd time span" in str(err.value)
    assert "job 2 (b): randomized_delay '-1'" in str(err.value)


ANALYZE_OK = """  Original form: *-*-* 09:00
Normalized form: *-*-* 09:00:00 Europe/Madrid
    Next elapse: Fri 2026-12-04 09:00:00 CET
       From now: 23h left

Normalized form: Sun *-*-01..07 01:00:00 Europe/Madrid
    Next elapse: Sun 2026-12-06 01:00:00 CET
       (in UTC): Sun 2026-12-06 00:00:00 UTC
       From now: 2 days left
"""


def planned(*jobs):
    return schedule_plan(list(jobs), settings(timezone='Europe/Madrid'))['jobs']


def test_calendar_next_elapses_in_order():
    jobs = planned(job(), job(procedure='monthly-maintenance', playbook='p', on_calendar='Sun *-*-01..07 01:00:00',
                              lock='maintenance', enabled=False))
    out = schedule_calendar({'rc': 0, 'stdout': ANALYZE_OK, 'stderr': ''}, jobs)
    assert [(t['procedure'], t['valid'], t['next_elapse']) for t in out] == [
        ('morning-health-check', True, 'Fri 2026-12-04 09:00:00 CET'),
        ('monthly-maintenance', True, 'Sun 2026-12-06 01:00:00 CET')]
    assert out[1]['summary'] == ('Sun *-*-01..07 01:00:00 Europe/Madrid, next Sun 2026-12-06 01:00:00 CET (disabled), '
                                 'lock maintenance')
    assert out[1]['timer'] == 'qflow-ops-monthly-maintenance.timer' and out[1]['lock'] == 'maintenance'


def test_calendar_invalid_expressions_are_named():
    jobs = planned(job(procedure='late', on_calendar='Mon 25:00'), job(),
                   job(procedure='monthly-maintenance', on_calendar='Sun *-*-01..07 01:00:00'))
    stderr = "Failed to parse calendar specification 'Mon 25:00 Europe/Madrid': Invalid argument\n"
    out = schedule_calendar({'rc': 1, 'stdout': ANALYZE_OK, 'stderr': stderr}, jobs)
    assert [(t['procedure'], t['valid'], t['error']) for t in out] == [
        ('late', False, 'Invalid argument'), ('morning-health-check', True, ''), ('monthly-maintenance', True, '')]
    assert out[2]['next_elapse'] == 'Sun 2026-12-06 01:00:00 CET'


def test_calendar_without_systemd_analyze_fails_every_job():
    out = schedule_calendar({'rc': 2, 'failed': True, 'stdout': '', 'stderr': '',
                             'msg': "[Errno 2] No such file or directory: b'systemd-analyze'"}, planned(job()))
    assert not out[0]['valid']
    assert out[0]['error'] == ("systemd-analyze calendar could not check it: [Errno 2] No such file or directory: "
                               "b'systemd-analyze'")


def test_calendar_output_that_does_not_match_is_an_error():
    with pytest.raises(AnsibleFilterError, match='1 calendar blocks for 2 valid expressions'):
        schedule_calendar({'rc': 0, 'stdout': ANALYZE_OK.split('\n\n', maxsplit=1)[0], 'stderr': ''},
                          planned(job(), job(procedure='b')))
