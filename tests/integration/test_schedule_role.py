"""The role qflow.ops.schedule run with ansible-playbook against localhost into a temporary root (no lab, no systemctl):
check mode writes nothing, a real run writes the runbook's units, both again change nothing; systemd itself reads
the units (systemd-analyze verify) and computes their next elapses (systemd-analyze calendar); a bad OnCalendar or
job fails naming the job before anything is written; a credential never reaches the output."""

from __future__ import absolute_import, division, print_function

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ANALYZE = shutil.which('systemd-analyze')
TZ = 'Europe/Madrid'
SECRET = 'https://hooks.example.invalid/services/T000/B000/s3cr3t-webhook-token'
PLAY = """
- name: Install the schedule
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Schedule
      ansible.builtin.include_role:
        name: qflow.ops.schedule
"""
# runbook: procedure -> (OnCalendar without the zone, weekday or None for daily, hour, minute, days of month)
RUNBOOK = {
    'nightly-backup': ('*-*-* 00:30:00', None, 0, 30, None),
    'morning-health-check': ('*-*-* 09:00:00', None, 9, 0, None),
    'performance-review': ('*-*-* 14:00:00', None, 14, 0, None),
    'log-review': ('*-*-* 17:00:00', None, 17, 0, None),
    'weekly-maintenance': ('Sun *-*-* 02:00:00', 'Sun', 2, 0, None),
    'monthly-maintenance': ('Sun *-*-01..07 01:00:00', 'Sun', 1, 0, range(1, 8)),
}
ELAPSE = re.compile(r'(?:Next elapse|Iter\. #\d+): (\w{3}) (\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) (\S+)')

pytestmark = [pytest.mark.nolab,  # no lab: the role into a temporary root on localhost (make test runs it beside make check)
              pytest.mark.skipif(ANALYZE is None, reason='systemd-analyze is not installed (Debian package systemd)')]


@pytest.fixture
def root(tmp_path):
    """A temporary root: the unit dir, the working/report dirs, the config dir, the play and its vars."""
    (tmp_path / 'units').mkdir()
    (tmp_path / 'play.yml').write_text(PLAY)
    (tmp_path / 'hosts.yml').write_text('qflow_nodes:\n  hosts:\n    qflow-node-1:\n')
    return tmp_path


def run(root, *args, **overrides):
    variables = {
        'ansible_python_interpreter': sys.executable,
        'qflow_schedule_unit_dir': str(root / 'units'),
        'qflow_schedule_manage_service': False,
        'qflow_schedule_inventory': str(root / 'hosts.yml'),
        'qflow_schedule_ansible_playbook': str(BIN / 'ansible-playbook'),
        'qflow_schedule_user': 'root' if os.geteuid() == 0 else os.environ.get('USER', 'nobody'),
        'qflow_schedule_working_dir': str(root / 'work'),
        'qflow_schedule_report_dir': str(root / 'work' / 'reports'),
        'qflow_schedule_config_dir': str(root / 'etc'),
        'qflow_schedule_timezone': TZ,
    }
    variables.update(overrides)
    (root / 'vars.json').write_text(json.dumps(variables))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_PIPELINING='1',
               ANSIBLE_CALLBACK_RESULT_FORMAT='json', PATH=str(BIN) + os.pathsep + os.environ.get('PATH', ''))
    proc = subprocess.run([str(BIN / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local', str(root / 'play.yml'),
                           '-e', '@' + str(root / 'vars.json'), *args],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    return proc


def recap(proc):
    m = re.search(r'localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', proc.stdout)
    assert m, proc.stdout + proc.stderr
    return {'ok': int(m.group(1)), 'changed': int(m.group(2)), 'failed': int(m.group(4))}


def written(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob('*')
                  if p.name not in ('play.yml', 'hosts.yml', 'vars.json'))


def unit(root, name):
    """A unit file as {section: [(key, value), ...]} (order kept, repeated keys kept)."""
    sections, current = {}, None
    for line in (root / 'units' / name).read_text().splitlines():
        if not line or line.startswith('#'):
            continue
        if line.startswith('['):
            current = sections.setdefault(line.strip('[]'), [])
            continue
        key, _, value = line.partition('=')
        current.append((key, value))
    return sections


def value(sections, section, key):
    values = [v for k, v in sections[section] if k == key]
    assert len(values) == 1, (section, key, values)
    return values[0]


def elapses(expr, iterations=3):
    """(weekday, datetime fields, zone) of the next elapses systemd computes, in the job's zone."""
    proc = subprocess.run([ANALYZE, 'calendar', '--iterations=%d' % iterations, expr], capture_output=True,
                          text=True, env=dict(os.environ, TZ=TZ), timeout=30)
    assert proc.returncode == 0, proc.stderr
    found = [(m.group(1), tuple(int(g) for g in m.groups()[1:7]), m.group(8)) for m in ELAPSE.finditer(proc.stdout)]
    assert len(found) == iterations, proc.stdout
    return found


def test_check_real_check_real(root):
    # a credential for the EnvironmentFile: written mode 0600, never shown (not even with --diff -v)
    secret = {'qflow_schedule_secret_env': {'QFLOW_NOTIFY_WEBHOOK_URL': SECRET, 'ANSIBLE_VAULT_PASSWORD_FILE': '/x'}}

    # 1. check mode (with --diff): would change, writes nothing
    proc = run(root, '--check', '--diff', '-v', **secret)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert recap(proc)['changed'] >= 4
    assert written(root) == ['units'], 'check mode wrote files'
    assert SECRET not in proc.stdout + proc.stderr
    assert '+OnCalendar=Sun *-*-01..07 01:00:00 %s' % TZ in proc.stdout, 'the diff shows the timer to be written'

    # 2. real: the units, the notification playbook, the directories, the credentials
    proc = run(root, '--diff', '-v', **secret)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert recap(proc)['changed'] >= 4
    names = sorted(p.name for p in (root / 'units').iterdir())
    assert names == sorted(['qflow-ops-notify-failure@.service']
                           + ['qflow-ops-%s.%s' % (p, kind) for p in RUNBOOK for kind in ('service', 'timer')])
    assert (root / 'etc' / 'notify-failure.yml').is_file()
    assert stat.S_IMODE((root / 'work' / 'reports').stat().st_mode) == 0o750
    path = root / 'etc' / 'schedule.env'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [line for line in path.read_text().splitlines() if not line.startswith('#')]
    assert lines == ['ANSIBLE_VAULT_PASSWORD_FILE="/x"', 'QFLOW_NOTIFY_WEBHOOK_URL="%s"' % SECRET]

    # 3. check mode again, 4. real again: nothing to change
    for args in (('--check', '--diff'), ('--diff',)):
        proc = run(root, '-v', *args, **secret)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert recap(proc)['changed'] == 0, proc.stdout
        assert SECRET not in proc.stdout + proc.stderr
    last = proc.stdout

    # the units say what the runbook says
    for procedure, (calendar, weekday, hour, minute, days) in RUNBOOK.items():
        timer = unit(root, 'qflow-ops-%s.timer' % procedure)
        on_calendar = value(timer, 'Timer', 'OnCalendar')
        assert on_calendar == '%s %s' % (calendar, TZ)
        assert value(timer, 'Timer', 'Unit') == 'qflow-ops-%s.service' % procedure
        assert value(timer, 'Timer', 'RandomizedDelaySec') == '0'
        assert value(timer, 'Timer', 'Persistent') == ('false' if 'maintenance' in procedure else 'true')
        assert value(timer, 'Install', 'WantedBy') == 'timers.target'

        service = unit(root, 'qflow-ops-%s.service' % procedure)
        assert value(service, 'Service', 'Type') == 'oneshot'
        assert value(service, 'Service', 'User') == ('root' if os.geteuid() == 0 else os.environ.get('USER'))
        assert value(service, 'Service', 'WorkingDirectory') == str(root / 'work')
        assert value(service, 'Unit', 'OnFailure') == 'qflow-ops-notify-failure@%n.service'
        assert value(service, 'Service', 'EnvironmentFile') == '-%s' % (root / 'etc' / 'schedule.env')
        env = [v for k, v in service['Service'] if k == 'Environment']
        assert 'QFLOW_REPORT_DIR=%s' % (root / 'work' / 'reports') in env
        playbook = 'qflow.ops.' + procedure.replace('-', '_')
        command = '%s %s -i %s' % (BIN / 'ansible-playbook', playbook, root / 'hosts.yml')
        exec_start = value(service, 'Service', 'ExecStart')
        if 'maintenance' in procedure:
            # weekly and monthly share one lock on the controller
            assert exec_start == '/usr/bin/flock -E 75 -w 7200 /run/qflow-ops/maintenance.lock ' + command
            assert value(service, 'Service', 'RuntimeDirectory') == 'qflow-ops'
        else:
            assert exec_start == command

        # systemd's own reading of the calendar: the next three elapses on the runbook's weekday, day and time
        for day_name, (_y, _mo, day, h, mi, s), zone in elapses(on_calendar):
            assert (h, mi, s) == (hour, minute, 0), (procedure, on_calendar)
            assert zone in ('CET', 'CEST')
            if weekday:
                assert day_name == weekday
            if days:
                assert day in days

    notify = unit(root, 'qflow-ops-notify-failure@.service')
    assert value(notify, 'Service', 'ExecStart') == '%s %s -i %s -e qflow_schedule_failed_unit=%%i' % (
        BIN / 'ansible-playbook', root / 'etc' / 'notify-failure.yml', root / 'hosts.yml')

    # systemd parses every unit without a complaint (unknown keys, bad values, bad quoting)
    units = sorted(str(p) for p in (root / 'units').glob('qflow-ops-[!n]*'))
    proc = subprocess.run([ANALYZE, 'verify', '--man=no', *units], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, SYSTEMD_UNIT_PATH='%s:' % (root / 'units')))
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr

    # the role reports the schedule with the next elapse in the job's zone
    assert re.search(r'"qflow-ops-monthly-maintenance\.timer": "Sun \*-\*-01\.\.07 01:00:00 %s, next Sun '
                     r'\d{4}-\d\d-0[1-7] 01:00:00 CES?T, lock maintenance"' % TZ, last), last


def test_bad_on_calendar_names_the_job_and_writes_nothing(root):
    jobs = [{'procedure': 'morning-health-check', 'playbook': 'qflow.ops.morning_health_check',
             'on_calendar': '*-*-* 09:00:00'},
            {'procedure': 'late-review', 'playbook': 'qflow.ops.log_review', 'on_calendar': 'Mon 25:00'}]
    proc = run(root, qflow_schedule_jobs=jobs)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "OnCalendar of job late-review is not valid: 'Mon 25:00 %s'" % TZ in out
    assert 'morning-health-check is not valid' not in out
    assert 'nothing was written' in out
    assert written(root) == ['units']


def test_bad_job_and_missing_programs_fail_before_writing(root):
    proc = run(root, qflow_schedule_jobs=[{'procedure': 'Morning Check', 'playbook': 'x', 'on_calendar': '09:00'}],
               qflow_schedule_flock=str(root / 'no-flock'))
    assert proc.returncode != 0
    assert "job 1 (Morning Check): procedure 'Morning Check' must be lower-case" in proc.stdout + proc.stderr
    assert written(root) == ['units']

    proc = run(root, qflow_schedule_flock=str(root / 'no-flock'))
    assert proc.returncode != 0
    assert '%s: not found (or not executable)' % (root / 'no-flock') in proc.stdout + proc.stderr
    assert written(root) == ['units']


def test_failure_notification_names_the_failed_checks(root):
    """The playbook behind qflow-ops-notify-failure@.service, run as the unit runs it (implicit localhost, the
    procedures' inventory, QFLOW_REPORT_DIR and the webhook from the environment), against a stub webhook. Here
    systemctl cannot answer (no systemd as PID 1): result and exit status are reported as unknown."""
    sys.path.insert(0, str(ROOT / 'tests' / 'unit' / 'plugins'))  # the shared stub HTTP server of the unit tests
    from qflow_stub_http import Route, StubServer

    run_dir = root / 'reports' / 'morning-health-check' / '20261203T080000Z'
    run_dir.mkdir(parents=True)
    checks = [{'node': 'qflow-node-1', 'item': 'cpu', 'ok': False}, {'node': 'qflow-node-1', 'item': 'memory', 'ok': True},
              {'node': 'qflow-node-2', 'item': 'backup', 'ok': False}]
    (run_dir / 'report.json').write_text(json.dumps({'result': 'fail', 'checks': checks, 'summary': {
        'nodes': 2, 'items': 3, 'passed': 1, 'failed': 2}}))
    (root / 'reports' / 'morning-health-check' / 'latest').symlink_to(run_dir.name)
    playbook = ROOT / 'roles' / 'schedule' / 'files' / 'notify-failure.yml'
    stub = StubServer({'POST /services/T0/B0/s3cr3t': Route(200, 'ok')})
    try:
        def notify(**env):
            return subprocess.run(
                [str(BIN / 'ansible-playbook'), str(playbook), '-i', str(root / 'hosts.yml'),
                 '-e', 'qflow_schedule_failed_unit=qflow-ops-morning-health-check.service'],
                cwd=root, capture_output=True, text=True, timeout=300,
                env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                         QFLOW_REPORT_DIR=str(root / 'reports'), **env))

        proc = notify(QFLOW_NOTIFY_WEBHOOK_URL=stub.url + '/services/T0/B0/s3cr3t')
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert 's3cr3t' not in proc.stdout + proc.stderr
        assert len(stub.requests) == 1
        body = json.loads(stub.requests[0]['body'])
        assert body['text'] == '2 of 3 checks failed: qflow-node-1 cpu, qflow-node-2 backup.'
        attachment = body['attachments'][0]
        assert attachment['title'] == 'Scheduled morning-health-check failed on %s' % os.uname().nodename
        fields = {f['title']: f['value'] for f in attachment['fields']}
        assert fields['Unit'] == 'qflow-ops-morning-health-check.service'
        assert fields['Report'] == '%s/morning-health-check/latest/report.md' % (root / 'reports')
        assert fields['Result'] == fields['Exit status'] == 'unknown'

        # no webhook configured: nothing is sent, and that is not a failure
        proc = notify(QFLOW_NOTIFY_WEBHOOK_URL='')
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert 'nothing was sent' in proc.stdout
        assert len(stub.requests) == 1
    finally:
        stub.close()
