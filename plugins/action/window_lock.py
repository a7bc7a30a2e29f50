# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of qflow.ops.window_lock: identify this run on the controller, find dead runs of this controller.

The pure helpers (:func:`parse_stat_start`, :func:`main_pid`, :func:`derive_run_id`, :func:`fill_holder`,
:func:`who_default`, :func:`dead_holder_reason`) are unit-tested without a running playbook.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import getpass
import hashlib
import multiprocessing
import os
import socket

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

MODULE = 'qflow.ops.window_lock'
PROC = '/proc'


def _read_text(path):
    try:
        with open(path, 'r') as handle:
            return handle.read()
    except (IOError, OSError, UnicodeDecodeError):
        return None


def parse_stat_start(text):
    """The start time (field 22, clock ticks since boot) from the text of /proc/<pid>/stat, or None.

    The command name (field 2) is in parentheses and may hold spaces and parentheses itself: fields are counted
    after the last ')'."""
    if not text or ')' not in text:
        return None
    rest = text[text.rindex(')') + 1:].split()
    try:
        return int(rest[19])  # rest[0] is field 3 (state)
    except (IndexError, ValueError):
        return None


def process_start(pid, proc=PROC):
    """Start time of process ``pid`` in clock ticks since boot, or None when unknown (no such process, no /proc)."""
    return parse_stat_start(_read_text('%s/%d/stat' % (proc, pid)))


def main_pid(process_name, pid, ppid):
    """The ansible-playbook process: this one in the main process, else (a forked task worker) its parent."""
    return pid if process_name == 'MainProcess' else ppid


def derive_run_id(controller, boot_id, pid, pid_start):
    """A run id that every task of one ansible-playbook run shares and no other run has: 16 hex digits of the SHA-256
    of the controller's host name, its boot id, and the pid and start time of the ansible-playbook process."""
    text = '%s|%s|%s|%s' % (controller, boot_id or '', pid, pid_start if pid_start is not None else '')
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


def controller_identity(proc=PROC, process_name=None, pid=None, ppid=None, hostname=None):
    """This run, seen from the controller: dict(run_id, controller, boot_id, pid, pid_start)."""
    if process_name is None:
        process_name = multiprocessing.current_process().name
    playbook_pid = main_pid(process_name, os.getpid() if pid is None else pid, os.getppid() if ppid is None else ppid)
    boot_id = (_read_text('%s/sys/kernel/random/boot_id' % proc) or '').strip() or None
    start = process_start(playbook_pid, proc)
    controller = hostname or socket.gethostname()
    return dict(run_id=derive_run_id(controller, boot_id, playbook_pid, start), controller=controller,
                boot_id=boot_id, pid=playbook_pid, pid_start=start)


def controller_user():
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        return 'uid %d' % os.getuid()


def who_default(task_vars, fallback):
    """The AWX / Automation Controller user who launched the job (extra vars), else ``fallback``."""
    for name in ('awx_user_name', 'tower_user_name'):
        value = (task_vars or {}).get(name)
        if value:
            return str(value)
    return fallback


def fill_holder(given, identity, who, playbook):
    """``given`` (the task's holder; keys set to None count as not given) completed with this run's identity."""
    holder = dict((key, value) for key, value in (given or {}).items() if value is not None)
    defaults = dict(identity)
    defaults.update(who=who, playbook=playbook)
    for key, value in defaults.items():
        if value is not None:
            holder.setdefault(key, value)
    return holder


def pid_alive(pid, pid_start=None, proc=PROC, kill=os.kill):
    """Whether process ``pid`` is the same live process (same start time when ``pid_start`` is known)."""
    try:
        kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # EPERM: it exists, it belongs to someone else
    if pid_start is not None:
        start = process_start(pid, proc)
        if start is not None and start != pid_start:
            return False  # the pid was reused by another process
    return True


def dead_holder_reason(lock, identity, run_id, alive=pid_alive):
    """Why the holder of ``lock`` is a dead run of this controller, or None when it may be alive or is not ours to judge.

    ``identity`` is :func:`controller_identity`; ``run_id`` this run's id; ``alive(pid, pid_start)`` tells whether a
    process of this controller still runs. A run of another controller, or one whose boot id is unknown, is never
    judged here (its lock expires)."""
    if not isinstance(lock, dict) or not lock.get('run_id') or lock.get('run_id') == run_id:
        return None
    controller = identity.get('controller')
    if not controller or lock.get('controller') != controller:
        return None
    if not lock.get('boot_id') or not identity.get('boot_id'):
        return None
    if lock['boot_id'] != identity['boot_id']:
        return 'the controller %s rebooted since that run started (boot id %s, now %s)' % (
            controller, lock['boot_id'], identity['boot_id'])
    pid = lock.get('pid')
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if alive(pid, lock.get('pid_start')):
        return None
    return 'its ansible-playbook process %d on %s is gone' % (pid, controller)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('path', 'state', 'holder', 'ttl', 'stale_run_ids', 'node'))

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        self._supports_async = False
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        task_vars = task_vars or {}

        args = dict(self._task.args)
        state = args.get('state') or 'acquired'
        holder = args.get('holder')
        if holder is not None and not isinstance(holder, dict):
            raise AnsibleActionFail('holder must be a dictionary (run_id, playbook, who, ...), got %s'
                                    % type(holder).__name__)
        identity = controller_identity()
        if state != 'query' or holder:
            # the play's name is a fallback for a lock's playbook; releasing or reading needs none
            args['holder'] = fill_holder(holder, identity, who_default(task_vars, controller_user()),
                                         task_vars.get('ansible_play_name') if state == 'acquired' else None)
        if not args.get('node'):
            args['node'] = task_vars.get('inventory_hostname')

        dead = None
        if state == 'acquired':
            query = self._execute_module(module_name=MODULE, task_vars=task_vars,
                                         module_args=dict(path=args.get('path'), state='query', node=args['node']))
            if query.get('failed'):
                return merge_hash(result, query)
            held_by = query.get('held_by')
            dead = dead_holder_reason(held_by, identity, args['holder'].get('run_id'))
            if dead:
                args['stale_run_ids'] = list(args.get('stale_run_ids') or []) + [held_by['run_id']]

        result = merge_hash(result, self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        if state == 'query' and not result.get('failed') and not result.get('stale_reason'):
            # say so when the holder is a dead run of this controller (a query never changes the lock)
            dead = dead_holder_reason(result.get('held_by'), identity, (args.get('holder') or identity).get('run_id'))
            if dead:
                result['stale_reason'] = dead
                if isinstance(result.get('msg'), str):
                    result['msg'] += '; stale - %s' % dead
            return result
        broken = result.get('broken')
        if dead and isinstance(broken, dict):
            generic = result.get('stale_reason')
            result['stale_reason'] = dead
            if generic and isinstance(result.get('msg'), str):
                result['msg'] = result['msg'].replace(generic, dead)
        return result
