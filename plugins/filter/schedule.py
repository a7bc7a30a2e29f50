# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of the schedule role: the runbook's jobs, checked and turned into systemd unit lines."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import shlex

from ansible.errors import AnsibleFilterError

NAME = re.compile(r'^[a-z0-9][a-z0-9-]*$')
ENV_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
# Characters an ExecStart= argument may hold without quotes (no quote, backslash, whitespace, specifier or variable).
BARE = re.compile(r'^[A-Za-z0-9_@+=:,./-]+$')
RUNTIME_DIRECTORY = 'qflow-ops'
# flock's exit status when the lock was not free within the wait (EX_TEMPFAIL; ansible-playbook never exits with it).
LOCK_EXIT = 75
JOB_KEYS = ('procedure', 'playbook', 'on_calendar', 'enabled', 'extra_args', 'lock', 'timezone', 'timeout',
            'persistent', 'randomized_delay', 'description')


def _text(value):
    if '\n' in value or '\r' in value or '\0' in value:
        raise ValueError('holds a line break')
    return value


def systemd_quote(value, variables=True):
    """One argument of a systemd command line (ExecStart=) or one Environment= assignment: double-quoted when needed,
    specifiers (%) and, in a command line, variables ($) escaped so that systemd passes the text unchanged."""
    value = _text(str(value))
    bare = bool(BARE.match(value))
    value = value.replace('%', '%%')
    if variables:
        value = value.replace('$', '$$')
    if bare:
        return value
    return '"%s"' % value.replace('\\', '\\\\').replace('"', '\\"')


def _command(argv):
    if not argv[0].startswith('/'):
        raise ValueError('%s is not an absolute path' % argv[0])
    return ' '.join(systemd_quote(a) for a in argv)


def _plain_path(value, what):
    """A path written as is into a unit (WorkingDirectory=, EnvironmentFile=)."""
    value = str(value or '')
    if not value.startswith('/') or re.search(r'[\s%]', value):
        raise ValueError('%s must be an absolute path without spaces or %% (got %r)' % (what, value))
    return value


def _job(raw, index, settings, seen, errors):
    label = 'job %d' % (index + 1)
    if not isinstance(raw, dict):
        errors.append('%s: must be a dict with procedure, playbook and on_calendar, got %r' % (label, raw))
        return None
    procedure = str(raw.get('procedure') or '')
    if procedure:
        label = 'job %d (%s)' % (index + 1, procedure)
    problems = []
    unknown = sorted(set(raw) - set(JOB_KEYS))
    if unknown:
        problems.append('unknown key(s) %s (known: %s)' % (', '.join(unknown), ', '.join(JOB_KEYS)))
    if not NAME.match(procedure):
        problems.append('procedure %r must be lower-case letters, digits and hyphens (it names the units '
                        'qflow-ops-<procedure>.service and .timer)' % procedure)
    elif procedure in seen:
        problems.append('procedure %s is listed twice' % procedure)
    seen.add(procedure)
    playbook = str(raw.get('playbook') or '').strip()
    if not playbook:
        problems.append('playbook is empty (an FQCN such as qflow.ops.morning_health_check, or a path)')
    on_calendar = str(raw.get('on_calendar') or '').strip()
    if not on_calendar:
        problems.append('on_calendar is empty (a systemd calendar expression such as "*-*-* 09:00:00")')
    timezone = str(raw.get('timezone', settings.get('timezone', 'UTC')) or '').strip()
    if re.search(r'\s', timezone):
        problems.append('timezone %r holds a space (a zone name such as Europe/Madrid, or UTC)' % timezone)
    extra_args = raw.get('extra_args') or []
    if isinstance(extra_args, str):
        try:
            extra_args = shlex.split(extra_args)
        except ValueError as exc:
            problems.append('extra_args %r cannot be split into arguments: %s' % (extra_args, exc))
            extra_args = []
    if not isinstance(extra_args, (list, tuple)):
        problems.append('extra_args must be a list of arguments, for example ["-e", "qflow_target=qflow_nodes"]')
        extra_args = []
    extra_args = [str(a) for a in extra_args]
    lock = str(raw.get('lock') or '')
    if lock and not NAME.match(lock):
        problems.append('lock %r must be lower-case letters, digits and hyphens' % lock)
    enabled = raw.get('enabled', True)
    if not isinstance(enabled, bool):
        problems.append('enabled must be true or false, got %r' % (enabled,))
    persistent = raw.get('persistent', settings.get('persistent', True))
    if not isinstance(persistent, bool):
        problems.append('persistent must be true or false, got %r' % (persistent,))
    delay = str(raw.get('randomized_delay', settings.get('randomized_delay', 0)))
    timeout = str(raw.get('timeout', settings.get('timeout', 'infinity')))
    for key, value in (('randomized_delay', delay), ('timeout', timeout)):
        if not re.match(r'^(infinity|[0-9][0-9a-z ]*)$', value):
            problems.append('%s %r is not a systemd time span (for example 0, 30s, 15min, 4h, infinity)' % (key, value))
    if problems:
        errors.extend('%s: %s' % (label, p) for p in problems)
        return None

    unit = 'qflow-ops-%s' % procedure
    lock_file = '/run/%s/%s.lock' % (RUNTIME_DIRECTORY, lock) if lock else ''
    argv = []
    if lock:
        argv = [settings['flock'], '-E', str(LOCK_EXIT), '-w', str(settings.get('lock_wait', 0)), lock_file]
    argv += [settings['ansible_playbook'], playbook, '-i', settings['inventory']] + extra_args
    try:
        exec_start = _command(argv)
        for text in (on_calendar, raw.get('description') or ''):
            _text(str(text))
    except ValueError as exc:
        errors.append('%s: %s' % (label, exc))
        return None
    return {
        'procedure': procedure,
        'description': str(raw.get('description') or procedure.replace('-', ' ').title()),
        'service': unit + '.service',
        'timer': unit + '.timer',
        'playbook': playbook,
        'on_calendar': on_calendar,
        'timezone': timezone,
        'calendar': ('%s %s' % (on_calendar, timezone)) if timezone else on_calendar,
        'enabled': enabled,
        'persistent': persistent,
        'randomized_delay': delay,
        'timeout': timeout,
        'extra_args': extra_args,
        'lock': lock,
        'lock_file': lock_file,
        'exec_start': exec_start,
    }


def schedule_plan(jobs, settings):
    """Check the jobs of the schedule role and return what its templates write.

    settings: ansible_playbook, inventory, flock, lock_wait, timezone, timeout, persistent, randomized_delay,
    report_dir, environment (dict of plain variables), working_directory, environment_file, notify_playbook.
    Every problem is collected and raised at once, each naming its job.
    """
    if not isinstance(settings, dict):
        raise AnsibleFilterError('schedule_plan: settings must be a dict')
    if not isinstance(jobs, (list, tuple)):
        raise AnsibleFilterError('schedule_plan: the jobs must be a list, got %s' % type(jobs).__name__)
    errors = []
    settings = dict(settings)
    for key in ('ansible_playbook', 'flock'):
        value = str(settings.get(key) or '')
        if not value.startswith('/'):
            errors.append('%s must be an absolute path, got %r' % (key, value))
    inventory = str(settings.get('inventory') or '').strip()
    if not inventory:
        errors.append('inventory is empty: the inventory the procedures run against on this controller')
    try:
        lock_wait = int(settings.get('lock_wait', 0))
        if lock_wait < 0:
            raise ValueError
    except (TypeError, ValueError):
        errors.append('lock_wait must be a number of seconds >= 0, got %r' % (settings.get('lock_wait'),))
        lock_wait = 0
    settings['lock_wait'] = lock_wait
    paths = {}
    for key in ('working_directory', 'environment_file'):
        if key == 'environment_file' and not settings.get(key):
            paths[key] = ''
            continue
        try:
            paths[key] = _plain_path(settings.get(key), key)
        except ValueError as exc:
            errors.append(str(exc))
    environment = {'QFLOW_REPORT_DIR': str(settings.get('report_dir') or ''), 'ANSIBLE_NOCOLOR': '1',
                   'ANSIBLE_FORCE_COLOR': '0'}
    extra_env = settings.get('environment') or {}
    if not isinstance(extra_env, dict):
        errors.append('environment must be a dict of variable names and values')
        extra_env = {}
    environment.update((str(k), '' if v is None else str(v)) for k, v in extra_env.items())
    if not environment['QFLOW_REPORT_DIR'].startswith('/'):
        errors.append('report_dir must be an absolute path, got %r' % environment['QFLOW_REPORT_DIR'])
    env_lines = []
    for name in sorted(environment):
        try:
            if not ENV_NAME.match(name):
                raise ValueError('is not a variable name')
            env_lines.append(systemd_quote('%s=%s' % (name, environment[name]), variables=False))
        except ValueError as exc:
            errors.append('environment %s: %s' % (name, exc))
    if errors:
        # the settings are wrong: the jobs would only repeat it
        raise AnsibleFilterError('schedule: ' + '; '.join(errors) + '. Nothing was written.')
    settings['inventory'] = inventory
    seen = set()
    planned = [_job(raw, i, settings, seen, errors) for i, raw in enumerate(jobs)]
    if errors:
        raise AnsibleFilterError('schedule: ' + '; '.join(errors) + '. Nothing was written.')
    notify_exec = ''
    if settings.get('notify_playbook'):
        notify_exec = _command([settings['ansible_playbook'], str(settings['notify_playbook']), '-i', inventory])
        # %i: the failed unit's name, the instance of qflow-ops-notify-failure@.service (OnFailure=...@%n.service)
        notify_exec += ' -e qflow_schedule_failed_unit=%i'
    return {
        'jobs': planned,
        'environment': env_lines,
        'working_directory': paths['working_directory'],
        'environment_file': paths['environment_file'],
        'notify_exec_start': notify_exec,
        'runtime_directory': RUNTIME_DIRECTORY,
        'locks': sorted(set(j['lock'] for j in planned if j['lock'])),
        'lock_exit_status': LOCK_EXIT,
    }


FAILED_CALENDAR = re.compile(r"Failed to parse calendar specification '(.*)': (.*)$")


def schedule_calendar(result, jobs):
    """Read one `systemd-analyze calendar <expr>...` run (the registered command result) over the planned jobs:
    per job its entry of qflow_schedule_timers, with valid, error and next_elapse. systemd-analyze prints one block
    per valid expression, in order, and one stderr line per invalid one."""
    if not isinstance(result, dict) or not isinstance(jobs, (list, tuple)):
        raise AnsibleFilterError('schedule_calendar: expects the registered command result and the planned jobs')
    errors = {}
    for line in str(result.get('stderr') or '').splitlines():
        m = FAILED_CALENDAR.search(line.strip())
        if m:
            errors[m.group(1)] = m.group(2)
    failed = result.get('rc', 0) != 0 or result.get('failed')
    why = 'not accepted by systemd-analyze calendar'
    if failed and not errors:
        # systemd-analyze did not run (missing) or failed for another reason: no expression can be trusted
        why = (str(result.get('stderr') or '').strip() or str(result.get('msg') or '').strip()
               or 'systemd-analyze exited with %s' % result.get('rc'))
        why = 'systemd-analyze calendar could not check it: %s' % why
    blocks = [b for b in re.split(r'\n\s*\n', str(result.get('stdout') or '')) if 'Normalized form:' in b]
    valid = [j for j in jobs if j['calendar'] not in errors] if not (failed and not errors) else []
    if len(blocks) != len(valid):
        raise AnsibleFilterError('schedule_calendar: %d calendar blocks for %d valid expressions in the output of '
                                 'systemd-analyze calendar: %r' % (len(blocks), len(valid), result.get('stdout')))
    nexts = {}
    for job, block in zip(valid, blocks):
        m = re.search(r'Next elapse: (.*)', block)
        nexts[id(job)] = m.group(1).strip() if m else ''
    timers = []
    for job in jobs:
        ok = id(job) in nexts
        error = '' if ok else errors.get(job['calendar']) or why
        entry = {'procedure': job['procedure'], 'timer': job['timer'], 'service': job['service'],
                 'on_calendar': job['calendar'], 'enabled': job['enabled'], 'lock': job['lock'], 'valid': ok,
                 'error': error, 'next_elapse': nexts.get(id(job), '')}
        entry['summary'] = '%s, next %s%s%s' % (job['calendar'], entry['next_elapse'] or '-',
                                                '' if job['enabled'] else ' (disabled)',
                                                ', lock %s' % job['lock'] if job['lock'] else '')
        timers.append(entry)
    return timers


class FilterModule(object):

    def filters(self):
        return {'schedule_plan': schedule_plan, 'schedule_calendar': schedule_calendar}
