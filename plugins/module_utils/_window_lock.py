# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: the maintenance-window lock of a node. May change without notice.

A lock is a small JSON file ``{run_id, playbook, who, controller, pid, pid_start, boot_id, since, expires}`` in a
private directory on the node. The decisions are pure functions (:func:`decide`, :func:`stale_reason`,
:func:`refusal_message`); :func:`execute` does the file work:

- the lock dir is opened once, without following a symlink, and refused unless it is a directory owned by the
  running user that neither group nor others can write (root must not trust a directory someone else controls);
- every later operation is relative to that directory's fd, and the lock file is opened with ``O_NOFOLLOW``;
- a new lock is a fully written temp file hard-linked to the lock name: ``link(2)`` fails with EEXIST when the name
  exists, so two acquirers racing for a free lock cannot both win;
- a stale lock is replaced by an atomic rename, under an exclusive ``flock(2)`` of the lock dir that every writer
  holds while it reads, decides and writes, so two acquirers racing for a stale lock cannot both win either.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import errno
import fcntl
import json
import os
import stat
import time
import uuid

from ansible_collections.qflow.ops.plugins.module_utils._files import FilesError, ensure_private_dir
from ansible_collections.qflow.ops.plugins.module_utils._time import parse_iso

HOLDER_FIELDS = ('run_id', 'playbook', 'who', 'controller', 'pid', 'pid_start', 'boot_id')
LOCK_FIELDS = HOLDER_FIELDS + ('since', 'expires')
MAX_LOCK_BYTES = 64 * 1024
FLOCK_TIMEOUT = 30.0


class LockError(Exception):
    """The lock cannot be read or written safely; the message says what to do."""


# ---------------------------------------------------------------------------------------------------------- decisions

def iso_seconds(dt):
    """ISO 8601 UTC to the second with a Z suffix: 2026-12-03T02:00:04Z."""
    return dt.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def new_lock(holder, now, ttl_seconds):
    """The lock record of ``holder`` (a dict with at least run_id) taken at ``now`` for ``ttl_seconds``."""
    lock = dict((key, holder.get(key)) for key in HOLDER_FIELDS)
    lock['since'] = iso_seconds(now)
    lock['expires'] = iso_seconds(now + datetime.timedelta(seconds=ttl_seconds))
    return lock


def _when(value):
    try:
        return parse_iso(value) if value else None
    except (TypeError, ValueError):
        return None


def stale_reason(lock, now, stale_run_ids=()):
    """Why another run's ``lock`` may be broken, or None while it must be respected.

    Stale when its ``expires`` has passed, or when the caller knows that the holder's run is dead (its run_id is in
    ``stale_run_ids``). A lock without a readable ``expires`` never expires by time."""
    run_id = lock.get('run_id')
    if run_id and run_id in (stale_run_ids or ()):
        return 'its run %s is no longer running' % run_id
    expires = _when(lock.get('expires'))
    if expires is not None and expires <= now:
        return 'it expired at %s' % iso_seconds(expires)
    return None


def describe(lock):
    """'weekly-maintenance (run 3f2a..., started by alice on ctl-1, pid 4242, since ..., expires ...)'."""
    since = _when(lock.get('since'))
    expires = _when(lock.get('expires'))
    parts = ['run %s' % (lock.get('run_id') or '?')]
    started = 'started by %s' % (lock.get('who') or 'an unknown user')
    if lock.get('controller'):
        started += ' on %s' % lock['controller']
    if lock.get('pid'):
        started += ' (pid %s)' % lock['pid']
    parts.append(started)
    if since is not None:
        parts.append('since %s' % iso_seconds(since))
    if expires is not None:
        same_day = since is not None and since.astimezone(datetime.timezone.utc).date() == \
            expires.astimezone(datetime.timezone.utc).date()
        parts.append('expires %s' % (expires.astimezone(datetime.timezone.utc).strftime('%H:%M:%SZ') if same_day
                                     else iso_seconds(expires)))
    return '%s (%s)' % (lock.get('playbook') or 'an unnamed playbook', ', '.join(parts))


def refusal_message(node, lock, path):
    return ('%s is held by %s; wait for it to finish, or if that run died, remove %s after checking that it no '
            'longer runs; nothing was changed' % (node, describe(lock), path))


def decide(state, current, holder, now, stale_run_ids=()):
    """Pure decision. Return (action, reason) with action one of:

    - ``none``: nothing to do (already held by this run, nothing to release, or a query);
    - ``take``: the lock is free, take it;
    - ``break``: another run's lock is stale (``reason`` says why): replace it with ours;
    - ``refuse``: another live run holds the lock (``reason`` is None; the caller words the message);
    - ``remove``: release this run's lock;
    - ``keep``: release asked, but another run holds the lock: leave it.
    """
    run_id = (holder or {}).get('run_id')
    if state == 'query':
        return 'none', None
    if state == 'acquired':
        if current is None:
            return 'take', None
        if current.get('run_id') == run_id:
            return 'none', None
        reason = stale_reason(current, now, stale_run_ids)
        if reason:
            return 'break', reason
        return 'refuse', None
    if state == 'released':
        if current is None:
            return 'none', None
        if current.get('run_id') == run_id:
            return 'remove', None
        return 'keep', None
    raise ValueError('unknown state %r' % (state,))


def check_dir_stat(st, directory, euid):
    """Refuse a lock dir that is not a directory, is owned by another user, or that group or others can write."""
    if stat.S_ISLNK(st.st_mode):
        raise LockError('lock dir %s is a symbolic link; a lock dir must be a real directory (mode 0700) owned by the '
                        'user that runs the task; remove the link or choose another path; nothing was changed' % directory)
    if not stat.S_ISDIR(st.st_mode):
        raise LockError('lock dir %s is not a directory; remove it or choose another path; nothing was changed' % directory)
    if st.st_uid != euid:
        raise LockError('lock dir %s is owned by uid %d, not by the user that runs the task (uid %d); another user could '
                        'forge or remove locks there: chown it, or choose another path (or become that user); '
                        'nothing was changed' % (directory, st.st_uid, euid))
    if st.st_mode & 0o022:
        raise LockError('lock dir %s has mode %04o: group or others can write it and so forge or remove locks; '
                        'chmod 0700 it or choose another path; nothing was changed' % (directory, stat.S_IMODE(st.st_mode)))


def parse_lock(data, path):
    """Decode a lock file's bytes. Raise LockError when it is not a lock this module wrote."""
    try:
        lock = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        lock = None
    if not isinstance(lock, dict) or not isinstance(lock.get('run_id'), str) or not lock.get('run_id'):
        raise LockError('%s is not a window lock (JSON with a run_id); check what wrote it, then remove it; '
                        'nothing was changed' % path)
    return lock


# ----------------------------------------------------------------------------------------------------------- file work

def _open_dir(directory):
    """Open ``directory`` without following a symlink; return its fd, or None when it does not exist."""
    flags = os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0) | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(directory, flags)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            check_dir_stat(os.lstat(directory), directory, os.geteuid())
        raise LockError('cannot open the lock dir %s: %s; nothing was changed' % (directory, exc.strerror or exc))
    try:
        check_dir_stat(os.fstat(fd), directory, os.geteuid())
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read(dfd, name, path):
    """Return (lock, (st_dev, st_ino)) of the lock file, or (None, None) when there is none."""
    flags = os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(name, flags, dir_fd=dfd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None, None
        if exc.errno == errno.ELOOP:
            raise LockError('%s is a symbolic link; a window lock is a regular file and links are never followed: '
                            'check who planted it, then remove it; nothing was changed' % path)
        raise LockError('cannot read %s: %s; nothing was changed' % (path, exc.strerror or exc))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LockError('%s is not a regular file; check what it is, then remove it; nothing was changed' % path)
        chunks = []
        size = 0
        while True:
            chunk = os.read(fd, 8192)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_LOCK_BYTES:
                raise LockError('%s is larger than %d bytes, not a window lock; check what wrote it, then remove it; '
                                'nothing was changed' % (path, MAX_LOCK_BYTES))
    finally:
        os.close(fd)
    return parse_lock(b''.join(chunks), path), (st.st_dev, st.st_ino)


def _identity(dfd, name):
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    return (st.st_dev, st.st_ino)


def _write_temp(dfd, name, lock):
    """Write ``lock`` to a new temp file next to the lock name (O_EXCL, O_NOFOLLOW, 0600, fsync). Return its name."""
    tmp = '.%s.%s.tmp' % (name, uuid.uuid4().hex)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
    fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
    try:
        data = (json.dumps(lock, sort_keys=True, indent=2) + '\n').encode('utf-8')
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quiet(dfd, tmp)
        raise
    os.close(fd)
    return tmp


def _unlink_quiet(dfd, name):
    try:
        os.unlink(name, dir_fd=dfd)
    except OSError:
        pass


def _fsync_fd(fd):
    try:
        os.fsync(fd)
    except OSError:
        pass


def link_new(dfd, name, lock):
    """Create the lock ``name`` holding ``lock``; False when the name exists already (another acquirer won)."""
    tmp = _write_temp(dfd, name, lock)
    try:
        os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise
    finally:
        _unlink_quiet(dfd, tmp)
    _fsync_fd(dfd)
    return True


def _replace(dfd, name, lock):
    tmp = _write_temp(dfd, name, lock)
    try:
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        _unlink_quiet(dfd, tmp)
        raise
    _fsync_fd(dfd)


def _flock(dfd, directory, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(dfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise LockError('cannot lock the lock dir %s: %s; nothing was changed' % (directory, exc.strerror or exc))
        if time.monotonic() >= deadline:
            raise LockError('another task kept the lock dir %s busy for %ds; try again; nothing was changed'
                            % (directory, timeout))
        time.sleep(0.05)


def execute(path, state, holder, now, ttl_seconds, stale_run_ids=(), check_mode=False, flock_timeout=FLOCK_TIMEOUT):
    """Read the lock at ``path``, decide, and (unless ``check_mode``) act. Return a dict:

    ``action`` (see :func:`decide`), ``before`` (the lock read, or None), ``after`` (the lock after the action,
    predicted in check mode), ``reason`` (why a stale lock is broken), ``stale_reason`` (why the current lock of
    another run is stale, for a query). Raise LockError when the lock dir or file is unsafe or unreadable.

    In check mode nothing is created, locked or written: a missing lock dir means a free lock."""
    path = os.path.abspath(path)
    directory, name = os.path.split(path)
    if not name:
        raise LockError('path %s names a directory, not a lock file; nothing was changed' % path)
    if not check_mode and state == 'acquired':
        try:
            ensure_private_dir(directory, what='lock dir', option='path')
        except FilesError as exc:
            # another acquirer may have created it between the check and makedirs: fine when it is a directory now
            # (its owner and mode are checked next)
            if not os.path.isdir(directory):
                raise LockError('%s; nothing was changed' % exc)
    dfd = _open_dir(directory)
    if dfd is None:
        current = None
        action, reason = decide(state, current, holder, now, stale_run_ids)
        return _outcome(action, reason, current, holder, now, ttl_seconds, stale_run_ids)
    try:
        if not check_mode and state != 'query':
            _flock(dfd, directory, flock_timeout)
        for _attempt in range(5):
            current, ident = _read(dfd, name, path)
            action, reason = decide(state, current, holder, now, stale_run_ids)
            outcome = _outcome(action, reason, current, holder, now, ttl_seconds, stale_run_ids)
            if check_mode or action in ('none', 'refuse', 'keep'):
                return outcome
            if action == 'take':
                if link_new(dfd, name, outcome['after']):
                    return outcome
                continue  # someone created it between our read and our link: read again
            if _identity(dfd, name) != ident:
                continue  # changed under us (by something that does not take the dir lock): read again
            if action == 'break':
                _replace(dfd, name, outcome['after'])
            else:  # remove
                os.unlink(name, dir_fd=dfd)
                _fsync_fd(dfd)
            return outcome
        raise LockError('%s kept changing while it was being %s; try again; nothing was changed'
                        % (path, 'acquired' if state == 'acquired' else 'released'))
    except OSError as exc:
        raise LockError('cannot %s %s: %s' % ('acquire' if state == 'acquired' else 'release', path,
                                              exc.strerror or exc))
    finally:
        os.close(dfd)  # also drops the flock


def _outcome(action, reason, current, holder, now, ttl_seconds, stale_run_ids):
    after = current
    if action in ('take', 'break'):
        after = new_lock(holder, now, ttl_seconds)
    elif action == 'remove':
        after = None
    stale = None
    if current is not None and current.get('run_id') != (holder or {}).get('run_id'):
        stale = stale_reason(current, now, stale_run_ids)
    return dict(action=action, reason=reason, before=current, after=after, stale_reason=stale)
