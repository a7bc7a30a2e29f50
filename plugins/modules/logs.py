#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: logs
short_description: Compress or delete old rotated Qflow log files
version_added: 0.1.0
author:
  - qflow.ops maintainers (@AnarQorp)
description:
  - Cleans up the rotated log files of a Qflow node (C(qflow.log.1), C(qflow.log.2), ... in O(log_dir)). A file's age
    is its modification time.
  - O(action=compress) gzips every matching uncompressed file older than O(older_than) into C(<name>.gz) and removes
    the original. The compressed file is written under a temporary name, fsynced and renamed into place, and keeps
    the original's modification time, mode and (when permitted) owner. Files that are already compressed
    (C(.gz), C(.bz2), C(.xz), C(.zst), C(.lz4), C(.Z), C(.zip)) are not compressed again.
  - With O(compress_delete_after), compressed files older than that are deleted as well. An uncompressed file that
    is already older than O(compress_delete_after) is deleted at once rather than compressed and deleted on the next
    run, so that a second run changes nothing.
  - O(action=delete) deletes every matching file older than O(older_than), compressed or not.
  - The live C(qflow.log) is never touched. A pattern that would match it is refused. Hidden files, symlinks,
    directories and C(.tmp)/C(.lock) files are never touched either.
  - The node renames C(qflow.log.N) to C(qflow.log.N+1) when it rotates and does not rename C(.gz) files. When
    C(qflow.log.N.gz) already exists from an earlier run and holds other content, the new archive is named
    C(qflow.log.N.<mtime as YYYYmmddTHHMMSSZ>.gz); when it holds the same content, the original is just deleted.
    M(qflow.ops.logs_info) reads all these names.
  - Options and the directory are checked before anything is changed. A bad duration, a pattern that matches
    C(qflow.log) or a missing O(log_dir) make the module fail with nothing changed.
extends_documentation_fragment:
  - qflow.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Lists what would be deleted and compressed and changes nothing. RV(freed_bytes) then counts only the files
        that would be deleted, because the compressed size is not known in advance.
  diff_mode:
    support: full
    details:
      - Shows the names of the matching files before and after (predicted in check mode).
options:
  log_dir:
    description:
      - Directory that holds C(qflow.log) and its rotations (inventory variable C(qflow_log_dir)).
      - If it is missing the module fails.
    type: path
    default: /var/log/qflow
  older_than:
    description:
      - Files whose modification time is older than this are compressed (O(action=compress)) or deleted
        (O(action=delete)).
      - A number with an optional unit V(s), V(m), V(h), V(d) or V(w), for example V(30d).
    type: str
    required: true
  action:
    description:
      - What to do with the old files.
    type: str
    choices: [compress, delete]
    default: compress
  patterns:
    description:
      - Shell globs matched against the file names in O(log_dir) (not paths), case-sensitive.
      - A pattern that matches the live C(qflow.log) (for example V(qflow.log*) or V(*)) is refused.
    type: list
    elements: str
    default: ['qflow.log.*']
  compress_delete_after:
    description:
      - With O(action=compress), also delete compressed files older than this. Refused with O(action=delete).
      - A number with an optional unit V(s), V(m), V(h), V(d) or V(w), for example V(90d).
    type: str
notes:
  - Run with C(become=true) when the log directory belongs to the qflow user.
  - Just before a file is compressed or deleted, the module checks that it is still the same file (same inode, size
    and modification time). A file that the node rotated in the meantime is left alone and listed in RV(skipped).
seealso:
  - module: qflow.ops.logs_info
'''

EXAMPLES = r'''
- name: Compress rotated logs older than 7 days, delete archives older than 90 days
  qflow.ops.logs:
    log_dir: "{{ qflow_log_dir }}"
    older_than: 7d
    compress_delete_after: 90d
  become: true

- name: Delete rotated logs older than 30 days
  qflow.ops.logs:
    log_dir: "{{ qflow_log_dir }}"
    older_than: 30d
    action: delete
  become: true
  register: qflow_logs_cleanup

- name: Show what was freed
  ansible.builtin.debug:
    msg: "{{ qflow_logs_cleanup.deleted | length }} files deleted, {{ qflow_logs_cleanup.freed_bytes }} bytes freed"
'''

RETURN = r'''
deleted:
  description: Paths of the files deleted (that would be deleted in check mode), sorted.
  returned: success
  type: list
  elements: str
  sample: ['/var/log/qflow/qflow.log.9.gz']
compressed:
  description: Paths of the files compressed (that would be compressed in check mode), sorted. The originals are gone.
  returned: success
  type: list
  elements: str
  sample: ['/var/log/qflow/qflow.log.3']
created:
  description: Paths of the compressed files written, in the order of RV(compressed).
  returned: success
  type: list
  elements: str
  sample: ['/var/log/qflow/qflow.log.3.gz']
skipped:
  description: Files that were due but left alone, with the reason (rotated by the node while the task ran, name clash).
  returned: success
  type: list
  elements: dict
  sample: [{"path": "/var/log/qflow/qflow.log.4", "reason": "changed since it was listed (rotated by the node?)"}]
freed_bytes:
  description:
    - Bytes freed. Deleted file sizes, plus original minus compressed size for compressed files.
    - In check mode only the files that would be deleted count.
  returned: success
  type: int
  sample: 104857600
cutoff:
  description: Files modified before this time (ISO 8601 UTC) were due for O(action).
  returned: success
  type: str
  sample: '2026-10-28T04:30:00.000Z'
diff:
  description: Names of the files matched by O(patterns), before and after (predicted in check mode).
  returned: success
  type: dict
  contains:
    before:
      description: Matching files before the task.
      type: dict
      sample: {files: [qflow.log.1, qflow.log.2, qflow.log.3]}
    after:
      description: Matching files after the task.
      type: dict
      sample: {files: [qflow.log.1, qflow.log.2, qflow.log.3.gz]}
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: compressed 1 and deleted 0 files older than 7d in /var/log/qflow (94371840 bytes freed)
'''

import datetime
import errno
import fnmatch
import gzip
import hashlib
import os
import shutil
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.qflow.ops.plugins.module_utils._files import fsync_dir
from ansible_collections.qflow.ops.plugins.module_utils._time import iso, parse_duration

LIVE_LOG = 'qflow.log'
COMPRESSED_SUFFIXES = ('.gz', '.bz2', '.xz', '.zst', '.lz4', '.Z', '.zip')
IGNORED_SUFFIXES = ('.tmp', '.lock')
CHUNK = 1 << 20


class LogCleanError(Exception):
    pass


def check_patterns(patterns):
    if not patterns:
        raise LogCleanError("patterns must not be empty; the default is ['qflow.log.*']. Nothing was changed.")
    for pattern in patterns:
        if not pattern or '/' in pattern or os.sep in pattern:
            raise LogCleanError('patterns: %r is not a file name glob (no directories; set log_dir instead). Nothing '
                                'was changed.' % (pattern,))
        if fnmatch.fnmatchcase(LIVE_LOG, pattern):
            raise LogCleanError("patterns: %r matches the live log file %s, which this module never touches. Use a "
                                "pattern for rotated files only, such as 'qflow.log.*'. Nothing was changed."
                                % (pattern, LIVE_LOG))


def scan(log_dir, patterns):
    """Regular files of log_dir matched by patterns (never qflow.log, hidden, .tmp or .lock files), sorted by name."""
    if not os.path.exists(log_dir):
        raise LogCleanError('Log directory %s does not exist. Set log_dir (inventory qflow_log_dir) to the directory '
                            'where the node writes qflow.log (QFLOW_LOG_DIR in the node env file). Nothing was changed.'
                            % log_dir)
    if not os.path.isdir(log_dir):
        raise LogCleanError('log_dir %s is not a directory. Point log_dir at the directory that holds qflow.log. '
                            'Nothing was changed.' % log_dir)
    try:
        names = sorted(os.listdir(log_dir))
    except OSError as exc:
        raise LogCleanError('Cannot list log directory %s: %s. Run the task with become: true or as a user that can '
                            'read it. Nothing was changed.' % (log_dir, exc))
    files = []
    for name in names:
        if name == LIVE_LOG or name.startswith('.') or name.endswith(IGNORED_SUFFIXES):
            continue
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            continue
        path = os.path.join(log_dir, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        files.append(dict(name=name, path=path, size=st.st_size, mtime=st.st_mtime, ident=_ident(st),
                          compressed=name.endswith(COMPRESSED_SUFFIXES)))
    return files


def _ident(st):
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _stamp(mtime):
    return datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')


def _sha256(handle):
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(CHUNK), b''):
        digest.update(chunk)
    return digest.hexdigest()


def _same_content(plain_path, gz_path):
    try:
        with open(plain_path, 'rb') as plain:
            want = _sha256(plain)
        with gzip.open(gz_path, 'rb') as packed:
            return _sha256(packed) == want
    except (IOError, OSError, EOFError):
        return False


def compress_target(f):
    """('compress', dest) for a free name, ('duplicate', dest) when dest already holds the same content, or
    ('clash', dest) when both candidate names are taken by other content."""
    directory = os.path.dirname(f['path'])
    dest = None
    for name in (f['name'] + '.gz', '%s.%s.gz' % (f['name'], _stamp(f['mtime']))):
        dest = os.path.join(directory, name)
        if not os.path.lexists(dest):
            return 'compress', dest
        if os.path.isfile(dest) and not os.path.islink(dest) and _same_content(f['path'], dest):
            return 'duplicate', dest
    return 'clash', dest


def plan(files, now, older_than, action, delete_after):
    """Return a list of (op, file, dest) with op 'delete', 'compress', 'duplicate' or 'clash'."""
    ops = []
    for f in files:
        age = now - f['mtime']
        if action == 'delete' or f['compressed']:
            limit = older_than if action == 'delete' else delete_after
            if limit is not None and age > limit:
                ops.append(('delete', f, None))
        elif age > older_than:
            if delete_after is not None and age > delete_after:
                ops.append(('delete', f, None))
            else:
                op, dest = compress_target(f)
                ops.append((op, f, dest))
    return ops


def _still_same(f):
    try:
        return _ident(os.lstat(f['path'])) == f['ident']
    except OSError:
        return False


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def gzip_file(f, dest):
    """gzip f['path'] into dest atomically (temp file, fsync, no-clobber rename), keeping mtime, mode and owner,
    then remove the original. Return the compressed size, or None when the file changed since it was listed."""
    directory = os.path.dirname(dest)
    with open(f['path'], 'rb') as src:
        st = os.fstat(src.fileno())
        if _ident(st) != f['ident']:
            return None
        fd, tmp = tempfile.mkstemp(prefix='.%s.tmp-' % os.path.basename(dest), dir=directory)
        try:
            with os.fdopen(fd, 'wb') as raw:
                with gzip.GzipFile(filename=f['name'], mode='wb', fileobj=raw, mtime=int(st.st_mtime)) as packed:
                    shutil.copyfileobj(src, packed, CHUNK)
                raw.flush()
                os.fsync(raw.fileno())
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            try:
                os.chown(tmp, st.st_uid, st.st_gid)
            except OSError:
                pass  # not root: the archive belongs to the user running the task
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            size = os.stat(tmp).st_size
            try:
                os.link(tmp, dest)  # never replaces an existing file
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    raise LogCleanError('%s appeared while %s was being compressed; left both alone' % (dest, f['path']))
                if os.path.lexists(dest):
                    raise
                os.rename(tmp, dest)  # file systems without hard links
            _remove(tmp)
        except BaseException:
            _remove(tmp)
            raise
    fsync_dir(directory)
    if not _still_same(f):
        # the node rotated the file while it was compressed: its content lives on under the next number
        _remove(dest)
        fsync_dir(directory)
        return None
    os.unlink(f['path'])
    fsync_dir(directory)
    return size


def main():
    module = AnsibleModule(
        argument_spec=dict(
            log_dir=dict(type='path', default='/var/log/qflow'),
            older_than=dict(type='str', required=True),
            action=dict(type='str', default='compress', choices=['compress', 'delete']),
            patterns=dict(type='list', elements='str', default=['qflow.log.*']),
            compress_delete_after=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    log_dir = p['log_dir']
    result = dict(changed=False, deleted=[], compressed=[], created=[], skipped=[], freed_bytes=0)

    try:
        older_than = parse_duration(p['older_than'])
    except ValueError as exc:
        module.fail_json(msg='older_than: %s. Nothing was changed.' % exc, **result)
    delete_after = None
    if p['compress_delete_after'] is not None:
        if p['action'] != 'compress':
            module.fail_json(msg='compress_delete_after is used only with action=compress (older_than already sets '
                                 'the age for action=delete). Nothing was changed.', **result)
        try:
            delete_after = parse_duration(p['compress_delete_after'])
        except ValueError as exc:
            module.fail_json(msg='compress_delete_after: %s. Nothing was changed.' % exc, **result)
    try:
        check_patterns(p['patterns'])
        files = scan(log_dir, p['patterns'])
    except LogCleanError as exc:
        module.fail_json(msg=str(exc), **result)

    now = datetime.datetime.now(datetime.timezone.utc)
    result['cutoff'] = iso(now - datetime.timedelta(seconds=older_than))
    ops = plan(files, now.timestamp(), older_than, p['action'], delete_after)
    before_names = [f['name'] for f in files]
    gone, added = set(), []

    def skip(f, reason):
        result['skipped'].append(dict(path=f['path'], reason=reason))
        module.warn('%s left alone: %s' % (f['path'], reason))

    try:
        for op, f, dest in ops:
            if op == 'clash':
                skip(f, '%s and %s already exist with other content' % (f['name'] + '.gz', os.path.basename(dest)))
                continue
            if op in ('delete', 'duplicate'):
                if not module.check_mode:
                    if not _still_same(f):
                        skip(f, 'changed since it was listed (rotated by the node?)')
                        continue
                    os.unlink(f['path'])
                    fsync_dir(log_dir)
                if op == 'duplicate':
                    module.warn('%s deleted: %s already holds the same content' % (f['path'], dest))
                result['deleted'].append(f['path'])
                result['freed_bytes'] += f['size']
                gone.add(f['name'])
                continue
            if not module.check_mode:
                size = gzip_file(f, dest)
                if size is None:
                    skip(f, 'changed since it was listed (rotated by the node?)')
                    continue
                result['freed_bytes'] += f['size'] - size
            result['compressed'].append(f['path'])
            result['created'].append(dest)
            gone.add(f['name'])
            added.append(os.path.basename(dest))
    except (IOError, OSError, LogCleanError) as exc:
        result['changed'] = bool(result['deleted'] or result['compressed']) and not module.check_mode
        module.fail_json(msg='Cannot clean up %s: %s. Run the task with become: true or check the file. Done before '
                             'the error: %d deleted, %d compressed.'
                             % (log_dir, exc, len(result['deleted']), len(result['compressed'])), **result)

    result['deleted'].sort()
    result['changed'] = bool(result['deleted'] or result['compressed'])
    after_names = sorted([n for n in before_names if n not in gone] + added)
    result['diff'] = dict(before=dict(files=before_names), after=dict(files=after_names))
    verb = 'would compress' if module.check_mode else 'compressed'
    result['msg'] = '%s %d and %s %d files older than %s in %s (%d bytes freed)' % (
        verb, len(result['compressed']), 'would delete' if module.check_mode else 'deleted', len(result['deleted']),
        p['older_than'], log_dir, result['freed_bytes'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
