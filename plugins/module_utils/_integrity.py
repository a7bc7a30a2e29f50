# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: read-only integrity checks of a node's data (qflow.ops.data_integrity_info, diagnostics).

May change without notice. Nothing here creates or changes a file of the node, except SQLite's shared-memory
index of a running node:

* ``state.db`` is opened with an SQLite URI that creates no file: ``?mode=ro`` while the node's ``-wal`` and ``-shm``
  exist (a running node; SQLite then reads the WAL and, like every reader, updates the shared-memory
  index ``-shm``), otherwise ``?mode=ro&immutable=1`` (no WAL to read: no ``-wal``/``-shm`` is created). A plain
  ``?mode=ro`` open would create both side files on a stopped node.
* ``snapshot`` mode (forensics) copies ``state.db`` and its ``-wal`` with O_RDONLY reads into a private directory
  outside the node and opens the copy, so not even the ``-shm`` lock bytes change.
* Flow definitions are compared with their IPFS content (contract 2.3: the canonical JSON of the stored definition -
  sorted keys, no spaces, UTF-8) with ``cat``, a read-only RPC command.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import sqlite3

from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowError, QflowHttpError
from ansible_collections.qflow.ops.plugins.module_utils._ipfs import IpfsError, verify_repo
from ansible_collections.qflow.ops.plugins.module_utils._state_db import STATE_DB

CHECKS = ('state_db', 'flows_ipfs', 'ipfs_repo')
COUNT_TABLES = ('flows', 'executions')
SIDE_SUFFIXES = ('-wal', '-shm', '-journal')
MAX_LINES = 20
_CHUNK = 1024 * 1024


class IntegrityError(Exception):
    """Bad options or an unreadable directory: the message says what to do."""


# ---------------------------------------------------------------------------------------------
# reading without side effects

def open_read_only(path):
    """A binary file object opened with O_RDONLY (and O_NOATIME when the kernel allows it: the access time of
    evidence is kept when this process owns the file or runs as root)."""
    flags = os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0)
    noatime = getattr(os, 'O_NOATIME', 0)
    fd = None
    if noatime:
        try:
            fd = os.open(path, flags | noatime)
        except OSError:
            fd = None
    if fd is None:
        fd = os.open(path, flags)
    return os.fdopen(fd, 'rb')


def copy_read_only(src, dst):
    """Copy src to dst (a new private file); return the bytes copied."""
    size = 0
    with open_read_only(src) as reader:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'wb') as writer:
            for chunk in iter(lambda: reader.read(_CHUNK), b''):
                writer.write(chunk)
                size += len(chunk)
    return size


def canonical_flow(doc):
    """The bytes the node stores in IPFS for a flow definition (doc: the JSON text of the flows.doc column)."""
    flow = json.loads(doc)
    return json.dumps(flow, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode('utf-8')


def _stat_key(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def read_only_uri(path):
    """(URI, description) opening path without creating or writing a file of the node (see the module docstring)."""
    uri = 'file:%s' % quote(os.path.abspath(path))
    if os.path.exists(path + '-wal') and os.path.exists(path + '-shm'):
        return uri + '?mode=ro', 'read-only URI mode=ro (the node\'s -wal is read; SQLite updates its shared-memory index -shm like every reader)'
    if os.path.exists(path + '-wal'):
        return (uri + '?mode=ro&immutable=1',
                'read-only URI mode=ro&immutable=1 (a -wal without -shm exists and was not read: recent commits may be missing)')
    return uri + '?mode=ro&immutable=1', 'read-only URI mode=ro&immutable=1 (no -wal: nothing is created)'


def snapshot(path, workdir, attempts=3):
    """Copy path and its -wal into workdir with read-only opens; retry while the node changes them during the copy.

    Return (copy path, description)."""
    copy = os.path.join(workdir, os.path.basename(path))
    for attempt in range(attempts):
        for suffix in ('',) + SIDE_SUFFIXES:
            if os.path.lexists(copy + suffix):
                os.unlink(copy + suffix)
        before = (_stat_key(path), _stat_key(path + '-wal'))
        copy_read_only(path, copy)
        if os.path.exists(path + '-wal'):
            try:
                copy_read_only(path + '-wal', copy + '-wal')
            except (IOError, OSError):
                pass  # checkpointed and removed meanwhile: the main file holds everything
        after = (_stat_key(path), _stat_key(path + '-wal'))
        if before == after:
            return copy, 'snapshot copy of state.db and its -wal (O_RDONLY reads; the node\'s files are never opened by SQLite)'
    return copy, ('snapshot copy of state.db and its -wal (O_RDONLY reads); the node wrote during each of %d copies, so the '
                  'copy may be inconsistent' % attempts)


def _quote_ident(name):
    return '"%s"' % name.replace('"', '""')


# ---------------------------------------------------------------------------------------------
# state.db

def db_file(data_dir):
    return os.path.join(data_dir, STATE_DB)


def check_data_dir(data_dir):
    """Raise IntegrityError when data_dir cannot be read."""
    if not os.path.exists(data_dir):
        raise IntegrityError('data dir %s does not exist; set data_dir (inventory variable qflow_data_dir)' % data_dir)
    if not os.path.isdir(data_dir):
        raise IntegrityError('data_dir %s is not a directory; set data_dir to the node\'s data directory' % data_dir)
    if not os.access(data_dir, os.R_OK | os.X_OK):
        raise IntegrityError('data dir %s is not readable by this user; run the task with become: true' % data_dir)


def inspect_db(path, integrity='full', workdir=None, tables=None, want_flows=False):
    """Everything readable about the SQLite file ``path``, without writing to the node. Never raises for a damaged
    database: a file that is not a database, or that SQLite cannot read, is ``ok: false`` with the SQLite error.

    ``integrity``: ``full`` (PRAGMA integrity_check), ``quick`` (PRAGMA quick_check) or None. ``workdir``: take a
    snapshot copy there and open the copy (forensics). ``tables``: the tables to count (None: every table).
    With ``want_flows`` the rows (id, doc, ipfs_cid) of the flows table are returned under ``_flows``.
    Raise IntegrityError only when the file exists but this user cannot read it.
    """
    out = {'path': path, 'exists': os.path.isfile(path), 'ok': False, 'error': None, 'integrity': None,
           'opened_as': None, 'size_bytes': None, 'wal_bytes': 0, 'page_size': None, 'pages': None, 'free_pages': None,
           'journal_mode': None, 'tables': {}}
    if not out['exists']:
        out['error'] = '%s does not exist' % path
        return out
    if not os.access(path, os.R_OK):
        raise IntegrityError('%s is not readable by this user; run the task with become: true' % path)
    out['size_bytes'] = os.path.getsize(path)
    if os.path.exists(path + '-wal'):
        out['wal_bytes'] = os.path.getsize(path + '-wal')
    conn = None
    try:
        if workdir:
            copy, out['opened_as'] = snapshot(path, workdir)
            conn = sqlite3.connect(copy)
        else:
            uri, out['opened_as'] = read_only_uri(path)
            conn = sqlite3.connect(uri, uri=True)
        problems = []
        try:
            out['page_size'] = conn.execute('PRAGMA page_size').fetchone()[0]
            out['pages'] = conn.execute('PRAGMA page_count').fetchone()[0]
            out['free_pages'] = conn.execute('PRAGMA freelist_count').fetchone()[0]
            out['journal_mode'] = conn.execute('PRAGMA journal_mode').fetchone()[0]
        except sqlite3.Error as exc:
            out['error'] = 'SQLite cannot read the database: %s' % exc
            return out
        if integrity:
            pragma = 'integrity_check' if integrity == 'full' else 'quick_check'
            try:
                rows = [str(r[0]) for r in conn.execute('PRAGMA %s' % pragma).fetchmany(MAX_LINES)]
            except sqlite3.Error as exc:
                rows = ['SQLite error during %s: %s' % (pragma, exc)]
            out['integrity'] = rows
            if rows != ['ok']:
                problems.append('PRAGMA %s: %s' % (pragma, '; '.join(rows[:5])))
        try:
            names = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        except sqlite3.Error as exc:
            names = []
            problems.append('cannot list the tables: %s' % exc)
        for table in (names if tables is None else tables):
            if table not in names:
                out['tables'][table] = None
                continue
            try:
                out['tables'][table] = conn.execute('SELECT COUNT(*) FROM %s' % _quote_ident(table)).fetchone()[0]
            except sqlite3.Error as exc:
                out['tables'][table] = None
                problems.append('cannot count the rows of %s: %s' % (table, exc))
        if want_flows:
            out['_flows'] = None
            if 'flows' in names:
                try:
                    columns = [r[1] for r in conn.execute('PRAGMA table_info(flows)')]
                    cid = 'ipfs_cid' if 'ipfs_cid' in columns else 'NULL'
                    out['_flows'] = [(r[0], r[1], r[2]) for r in conn.execute(
                        'SELECT id, doc, %s FROM flows ORDER BY id' % cid)]
                    out['ipfs_cid_column'] = cid != 'NULL'
                except sqlite3.Error as exc:
                    out['_flows_error'] = 'cannot read the flows table: %s' % exc
                    problems.append(out['_flows_error'])
        if problems:
            out['error'] = '; '.join(problems)
        else:
            out['ok'] = True
        return out
    except sqlite3.Error as exc:
        out['error'] = 'SQLite cannot open the database: %s' % exc
        return out
    finally:
        if conn is not None:
            conn.close()


# ---------------------------------------------------------------------------------------------
# flows vs IPFS

def check_flows_ipfs(rows, client, timeout=5):
    """Compare the IPFS content of every flow row that has an ipfs_cid with the canonical JSON of its stored definition.

    Return (check dict, corrupted flows [{id, ipfs_cid, problem}]). Reads only (``cat``)."""
    check = {'ok': True, 'detail': '', 'checked': 0, 'matched': 0, 'without_cid': 0, 'corrupted': 0}
    corrupted = []
    for fid, doc, cid in rows:
        if not cid:
            check['without_cid'] += 1
            continue
        check['checked'] += 1
        try:
            expected = canonical_flow(doc)
        except (TypeError, ValueError):
            expected = None
        try:
            content = client.raw('cat', [('arg', cid), ('timeout', '%ds' % timeout)], timeout=timeout + 2)
        except QflowHttpError as exc:
            if exc.kind == 'connection':
                check.update(ok=False, detail='the IPFS daemon could not be reached: %s' % exc.msg,
                             error=exc.msg)
                return check, corrupted
            corrupted.append({'id': fid, 'ipfs_cid': cid, 'problem': 'not readable from IPFS: %s' % exc.msg})
            continue
        except IpfsError as exc:
            corrupted.append({'id': fid, 'ipfs_cid': cid, 'problem': 'missing or unreadable in IPFS: %s' % exc.msg})
            continue
        if expected is None:
            corrupted.append({'id': fid, 'ipfs_cid': cid, 'problem': 'the stored definition (flows.doc) is not JSON'})
        elif content != expected:
            try:
                same_json = json.loads(content.decode('utf-8')) == json.loads(doc)
            except (ValueError, UnicodeDecodeError):
                same_json = False
            corrupted.append({'id': fid, 'ipfs_cid': cid, 'problem': (
                'the IPFS content is the same JSON but not in canonical form' if same_json else
                'the IPFS content differs from the stored definition (%d bytes in IPFS, %d expected)'
                % (len(content), len(expected)))})
        else:
            check['matched'] += 1
    check['corrupted'] = len(corrupted)
    check['ok'] = not corrupted
    check['detail'] = '%d of %d flows with a CID match their IPFS content%s' % (
        check['matched'], check['checked'],
        ('; %d flows have no CID yet (the node adds them when IPFS answers)' % check['without_cid'])
        if check['without_cid'] else '')
    return check, corrupted


# ---------------------------------------------------------------------------------------------
# the whole run of data_integrity_info

def run(data_dir, checks, ipfs_client=None, timeout=10):
    """Return {ok, checks, counts, corrupted_flows, problems}. Raise IntegrityError only for an unreadable dir/file."""
    check_data_dir(data_dir)
    path = db_file(data_dir)
    result = {'checks': {}, 'counts': {'flows': None, 'executions': None}, 'corrupted_flows': [], 'problems': []}
    problems = result['problems']
    db = None
    if 'state_db' in checks or 'flows_ipfs' in checks:
        db = inspect_db(path, integrity='full' if 'state_db' in checks else None, tables=list(COUNT_TABLES),
                        want_flows='flows_ipfs' in checks)
        for table in COUNT_TABLES:
            result['counts'][table] = db['tables'].get(table)
    if 'state_db' in checks:
        entry = dict((k, v) for k, v in db.items() if not k.startswith('_'))
        if db['ok']:
            entry['detail'] = 'PRAGMA integrity_check ok; %s' % ', '.join(
                '%s %s rows' % (t, db['tables'].get(t)) for t in COUNT_TABLES)
        else:
            entry['detail'] = db['error']
            problems.append('state.db (%s): %s' % (path, db['error']))
        result['checks']['state_db'] = entry
    if 'flows_ipfs' in checks:
        rows = db.get('_flows')
        if rows is None:
            why = db.get('_flows_error') or db['error'] or 'state.db has no flows table'
            entry = {'ok': False, 'detail': 'flows cannot be compared with IPFS: %s' % why, 'checked': 0, 'matched': 0,
                     'without_cid': 0, 'corrupted': 0}
        elif not db.get('ipfs_cid_column'):
            entry = {'ok': True, 'detail': 'the flows table has no ipfs_cid column (flows are not kept in IPFS)',
                     'checked': 0, 'matched': 0, 'without_cid': len(rows), 'corrupted': 0}
        else:
            entry, corrupted = check_flows_ipfs(rows, ipfs_client, timeout)
            result['corrupted_flows'] = corrupted
            for flow in corrupted:
                problems.append('flow %s (%s): %s' % (flow['id'], flow['ipfs_cid'], flow['problem']))
        if not entry['ok'] and not result['corrupted_flows']:
            problems.append('flows_ipfs: %s' % entry['detail'])
        result['checks']['flows_ipfs'] = entry
    if 'ipfs_repo' in checks:
        try:
            verified = verify_repo(ipfs_client, block_timeout=max(1, min(timeout, 30)))
            entry = {'ok': not verified['problems'], 'method': verified['method'], 'checked': verified['checked'],
                     'problems': verified['problems'][:MAX_LINES],
                     'detail': '%d blocks checked with %s, %d problems' % (
                         verified['checked'], verified['method'], len(verified['problems']))}
            problems.extend('ipfs_repo: %s' % p for p in verified['problems'][:MAX_LINES])
        except QflowError as exc:
            entry = {'ok': False, 'method': None, 'checked': 0, 'problems': [],
                     'detail': 'the IPFS repo could not be verified: %s' % exc.msg}
            problems.append('ipfs_repo: %s' % entry['detail'])
        result['checks']['ipfs_repo'] = entry
    result['ok'] = all(c['ok'] for c in result['checks'].values())
    return result
