# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: file helpers. May change without notice."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import tempfile


def fsync_dir(path):
    """fsync(2) a directory so that a rename in it is durable. Errors are ignored."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class FilesError(Exception):
    """A file operation failed; the message says what to do."""


def ensure_private_dir(path, what='backup dir', option='backup_dir'):
    """Create ``path`` with mode 0700 unless it is a directory already. Return True when it was created.

    ``what`` names the directory and ``option`` the module option that sets it, in error messages."""
    if os.path.isdir(path):
        return False
    if os.path.lexists(path):
        raise FilesError('%s %s exists but is not a directory; remove it or choose another %s' % (what, path, option))
    try:
        os.makedirs(path, 0o700)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise FilesError('cannot create the %s %s: %s; create it (mode 0700) or run with become: true' % (what, path, exc))
    return True


def write_atomic(path, data, mode=0o600):
    """Write bytes to path through a temp file in the same dir + fsync + chmod + rename.

    Readers see either the old or the new content, never a partial file. The temp file is removed on any error.
    """
    directory = os.path.dirname(path) or '.'
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.tmp-', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        try:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)
