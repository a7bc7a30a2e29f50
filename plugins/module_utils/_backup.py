# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: the backup engine behind qflow.ops.backup and qflow.ops.backup_info.

May change without notice. Runs on the target with the Python standard library only.

Layout of a backup directory::

    <backup_dir>/catalog.json                        the catalog (format 1)
    <backup_dir>/.catalog.lock                       flock(2) lock serialising writers
    <backup_dir>/qflow-backup-<id>.tar.gz            one archive per backup, mode 0600
    <backup_dir>/.tmp-<id>/, .tmp-<id>.tar.gz        staging, removed on success and on error

An archive holds ``manifest.json`` (format 1: id, node_id, created, files [{path, size, sha256}]),
``data/...`` (the data dir; SQLite ``*.db`` files copied with the online backup API, ``-wal``/``-shm``
skipped) and ``config/qflow-config.yaml`` (+ ``config/qflow.env`` only when asked). With an IPFS client, the DAGs
the node keeps in IPFS are exported as ``ipfs/<cid>.car`` (CARv1, listed in ``files`` like every member) and the
manifest says which: ``ipfs: {roots: [cid], source}``; a restore re-imports and pins the roots the daemon lacks.

The IPFS client is duck-typed (``pins(type)``, ``is_pinned(cid)``, ``dag_export(cid, path)``, ``dag_import(path)``;
_ipfs.IpfsClient) so this engine keeps to the standard library.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import zlib

from ansible_collections.qflow.ops.plugins.module_utils._files import FilesError, ensure_private_dir, fsync_dir, write_atomic
from ansible_collections.qflow.ops.plugins.module_utils._integrity import inspect_db
from ansible_collections.qflow.ops.plugins.module_utils._time import iso, parse_iso, utcnow

FORMAT = 1
CATALOG_NAME = 'catalog.json'
LOCK_NAME = '.catalog.lock'
MANIFEST_NAME = 'manifest.json'
ARCHIVE_PREFIX = 'qflow-backup-'
ARCHIVE_SUFFIX = '.tar.gz'
CONFIG_MEMBER = 'config/qflow-config.yaml'
ENV_MEMBER = 'config/qflow.env'
SQLITE_SUFFIXES = ('.db',)
SQLITE_SIDE_FILES = ('-wal', '-shm', '-journal')
STAMP_FORMAT = '%Y%m%dT%H%M%SZ'
NODE_ID_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$')
_CHUNK = 1024 * 1024
MAX_IN_MEMORY_DB = 64 * 1024 * 1024  # larger SQLite members are verified through a file in the system temp dir


class BackupError(Exception):
    """A failure with a message meant for the operator (cause + what to do next)."""


# ---------------------------------------------------------------------------------------------
# small helpers

def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def archive_name(backup_id):
    return ARCHIVE_PREFIX + backup_id + ARCHIVE_SUFFIX


def is_archive_name(name):
    return name.startswith(ARCHIVE_PREFIX) and name.endswith(ARCHIVE_SUFFIX) and len(name) > len(ARCHIVE_PREFIX) + len(ARCHIVE_SUFFIX)


def stamp(dt):
    return dt.strftime(STAMP_FORMAT)


def _remove_quietly(path):
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)
    except OSError:
        pass


def age_seconds(created, now=None):
    try:
        created_dt = parse_iso(created)
    except (TypeError, ValueError):
        return None
    now = now or utcnow()
    return round((now - created_dt).total_seconds(), 3)


def human_age(seconds):
    if seconds is None:
        return 'unknown age'
    seconds = int(seconds)
    if seconds < 120:
        return '%ds' % seconds
    if seconds < 7200:
        return '%dm' % (seconds // 60)
    if seconds < 172800:
        return '%dh%02dm' % (seconds // 3600, (seconds % 3600) // 60)
    return '%dd%02dh' % (seconds // 86400, (seconds % 86400) // 3600)


# ---------------------------------------------------------------------------------------------
# catalog

def catalog_path(backup_dir):
    return os.path.join(backup_dir, CATALOG_NAME)


def read_catalog(backup_dir):
    """Return the catalog dict. A missing catalog (or backup dir) is an empty catalog."""
    path = catalog_path(backup_dir)
    try:
        with open(path, 'rb') as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return {'format': FORMAT, 'backups': []}
        raise BackupError('cannot read the backup catalog %s: %s; check its permissions (run with become: true)' % (path, exc))
    try:
        data = json.loads(raw.decode('utf-8'))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError('the backup catalog %s is not valid JSON (%s); move it aside and run again: the archives it listed '
                          'will then be reported as orphaned and can be re-registered' % (path, exc))
    if not isinstance(data, dict) or not isinstance(data.get('backups'), list):
        raise BackupError('the backup catalog %s has no "backups" list; move it aside and run again' % path)
    if data.get('format', FORMAT) != FORMAT:
        raise BackupError('the backup catalog %s has format %r, this collection understands format %d; upgrade qflow.ops'
                          % (path, data.get('format'), FORMAT))
    return data


def write_catalog(backup_dir, catalog):
    data = json.dumps(catalog, indent=2, sort_keys=True).encode('utf-8') + b'\n'
    write_atomic(catalog_path(backup_dir), data, 0o600)


class CatalogLock(object):
    """Exclusive flock on <backup_dir>/.catalog.lock for the duration of a with-block."""

    def __init__(self, backup_dir):
        self.path = os.path.join(backup_dir, LOCK_NAME)
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None
        return False


def _entry_view(backup_dir, entry, now):
    """Catalog entry + what the directory says about it now (status missing, age)."""
    view = dict(entry)
    view['path'] = os.path.join(backup_dir, entry.get('file') or '')
    view['age_seconds'] = age_seconds(entry.get('created'), now)
    if not entry.get('file') or not os.path.isfile(view['path']):
        view['status'] = 'missing'
    view.setdefault('verified', False)
    view.setdefault('verified_at', None)
    return view


def _created_key(entry):
    try:
        return parse_iso(entry.get('created')).timestamp()
    except (TypeError, ValueError):
        return 0.0


def list_backups(backup_dir, now=None):
    """Return {catalog, backups (newest first, with status/age), orphaned (archive names not in the catalog), exists}.

    Never writes anything.
    """
    now = now or utcnow()
    if not os.path.isdir(backup_dir):
        return {'exists': False, 'backups': [], 'orphaned': [], 'catalog_path': catalog_path(backup_dir)}
    catalog = read_catalog(backup_dir)
    entries = [e for e in catalog['backups'] if isinstance(e, dict)]
    views = [_entry_view(backup_dir, e, now) for e in entries]
    views.sort(key=_created_key, reverse=True)
    known = set(e.get('file') for e in entries)
    orphaned = sorted(name for name in os.listdir(backup_dir) if is_archive_name(name) and name not in known)
    return {'exists': True, 'backups': views, 'orphaned': orphaned, 'catalog_path': catalog_path(backup_dir)}


def latest_completed(backups, node_id=None, verified_only=False):
    for entry in backups:  # newest first
        if entry.get('status') != 'completed':
            continue
        if node_id is not None and entry.get('node_id') != node_id:
            continue
        if verified_only and not entry.get('verified'):
            continue
        return entry
    return None


# ---------------------------------------------------------------------------------------------
# creation

def default_node_id(hostname):
    short = (hostname or '').split('.')[0]
    return short or 'qflow-node'


def check_sources(data_dir, config_path, env_path=None, include_env_file=False):
    """Raise BackupError naming the first missing source. Reads only."""
    if not os.path.exists(data_dir):
        raise BackupError('data dir %s does not exist; set data_dir (inventory variable qflow_data_dir) to the node\'s data '
                          'directory; nothing was written' % data_dir)
    if not os.path.isdir(data_dir):
        raise BackupError('data dir %s is not a directory; set data_dir to the node\'s data directory; nothing was written' % data_dir)
    if not os.access(data_dir, os.R_OK | os.X_OK):
        raise BackupError('data dir %s is not readable by this user; run the task with become: true; nothing was written' % data_dir)
    if not os.path.isfile(config_path):
        raise BackupError('config file %s does not exist or is not a regular file; set config_path (inventory variable '
                          'qflow_config_path); nothing was written' % config_path)
    if include_env_file and (not env_path or not os.path.isfile(env_path)):
        raise BackupError('include_env_file is true but the env file %s does not exist; set env_path (inventory variable '
                          'qflow_env_path) or drop include_env_file; nothing was written' % env_path)


def _is_sqlite_db(name):
    return name.endswith(SQLITE_SUFFIXES)


def _is_sqlite_side_file(name):
    for suffix in SQLITE_SIDE_FILES:
        if name.endswith(suffix) and _is_sqlite_db(name[:-len(suffix)]):
            return True
    return False


def _sqlite_online_copy(src_path, dst_path):
    """Consistent copy of a (possibly live, WAL-mode) SQLite database with the online backup API."""
    side_before = dict((s, os.path.exists(src_path + s)) for s in ('-wal', '-shm'))
    try:
        src_stat = os.stat(src_path)
    except OSError:
        src_stat = None
    src = sqlite3.connect(src_path, timeout=60)
    try:
        dst = sqlite3.connect(dst_path)
        try:
            src.backup(dst)
            dst.commit()
        finally:
            dst.close()
    finally:
        src.close()
    # If the node was stopped the -wal/-shm files were created by this connection and normally deleted on close.
    # Should they stay (node started meanwhile), give them to the database owner so the service can still write them.
    if src_stat is not None and hasattr(os, 'geteuid') and os.geteuid() == 0:
        for suffix, existed in side_before.items():
            side = src_path + suffix
            if not existed and os.path.exists(side):
                try:
                    os.chown(side, src_stat.st_uid, src_stat.st_gid)
                except OSError:
                    pass
    for suffix in ('-wal', '-shm', '-journal'):
        _remove_quietly(dst_path + suffix)


def _sqlite_integrity(data, label):
    """Return None when PRAGMA integrity_check says ok, else a message naming label."""
    buf = bytearray(data)
    if len(buf) >= 20 and buf[:16] == b'SQLite format 3\x00':
        buf[18] = 1  # treat a WAL-mode header as legacy so the image can be opened without a -wal file
        buf[19] = 1
    conn = None
    tmpdir = None
    try:
        conn = sqlite3.connect(':memory:')
        if hasattr(conn, 'deserialize'):
            conn.deserialize(bytes(buf))
        else:  # Python < 3.11
            conn.close()
            tmpdir = tempfile.mkdtemp(prefix='qflow-verify-')
            path = os.path.join(tmpdir, 'check.db')
            with open(path, 'wb') as handle:
                handle.write(bytes(buf))
            conn = sqlite3.connect(path)
        rows = conn.execute('PRAGMA integrity_check').fetchall()
    except sqlite3.Error as exc:
        return '%s: SQLite cannot open the database (%s)' % (label, exc)
    finally:
        if conn is not None:
            conn.close()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    result = [r[0] for r in rows]
    if result != ['ok']:
        return '%s: PRAGMA integrity_check failed: %s' % (label, '; '.join(str(r) for r in result[:5]))
    return None


def _sqlite_integrity_file(path, label):
    """PRAGMA integrity_check on a staged copy on disk (no need to hold it in memory). Side files are removed."""
    rows = []
    try:
        conn = sqlite3.connect(path)
        try:
            rows = conn.execute('PRAGMA integrity_check').fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return '%s: SQLite cannot open the database (%s)' % (label, exc)
    finally:
        for suffix in SQLITE_SIDE_FILES:
            _remove_quietly(path + suffix)
    result = [r[0] for r in rows]
    if result != ['ok']:
        return '%s: PRAGMA integrity_check failed: %s' % (label, '; '.join(str(r) for r in result[:5]))
    return None


def _qflow_version_from_db(path):
    """Best effort: a key/value table (meta, metadata, settings) holding qflow_version or version."""
    try:
        conn = sqlite3.connect(path)
    except sqlite3.Error:
        return None
    try:
        tables = set(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"))
        for table in ('meta', 'metadata', 'settings', 'kv'):
            if table not in tables:
                continue
            try:
                row = conn.execute('SELECT value FROM "%s" WHERE key IN (\'qflow_version\', \'version\') ORDER BY key DESC LIMIT 1' % table).fetchone()
            except sqlite3.Error:
                continue
            if row and row[0]:
                return str(row[0])
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return None


def _stage_data_dir(data_dir, stage_root, exclude_dir=None):
    """Copy the data dir into <stage_root>/data. Return (staged list of (member, path), skipped list, qflow_version)."""
    staged = []
    skipped = []
    version = None
    exclude_real = os.path.realpath(exclude_dir) if exclude_dir else None
    for root, dirs, files in os.walk(data_dir):
        rel_root = os.path.relpath(root, data_dir)
        if exclude_real:
            # a backup dir inside the data dir must not back itself up
            for name in list(dirs):
                if os.path.realpath(os.path.join(root, name)) == exclude_real:
                    dirs.remove(name)
                    skipped.append(os.path.normpath(os.path.join('data', rel_root, name)) + ' (the backup dir)')
        dirs.sort()
        # do not descend into symlinked dirs (os.walk default) and keep them out of the archive
        for name in list(dirs):
            if os.path.islink(os.path.join(root, name)):
                skipped.append(os.path.normpath(os.path.join('data', rel_root, name)) + ' (symlink)')
        for name in sorted(files):
            src = os.path.join(root, name)
            member = os.path.normpath(os.path.join('data', rel_root, name)).replace(os.sep, '/')
            if _is_sqlite_side_file(name):
                continue
            try:
                st = os.lstat(src)
            except OSError:
                continue  # vanished while walking
            if not stat.S_ISREG(st.st_mode):
                skipped.append(member + (' (symlink)' if stat.S_ISLNK(st.st_mode) else ' (not a regular file)'))
                continue
            dst = os.path.join(stage_root, member)
            if not os.path.isdir(os.path.dirname(dst)):
                os.makedirs(os.path.dirname(dst), 0o700)
            if _is_sqlite_db(name):
                try:
                    _sqlite_online_copy(src, dst)
                except sqlite3.Error as exc:
                    raise BackupError('cannot copy the SQLite database %s with the online backup API: %s; check that it is a '
                                      'SQLite file and that the node is not holding an exclusive lock' % (src, exc))
                if version is None:
                    version = _qflow_version_from_db(dst)
            else:
                shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)
            staged.append((member, dst))
    return staged, skipped, version


def _new_backup_id(backup_dir, node_id, now, known_ids):
    base = '%s-%s' % (node_id, stamp(now))
    candidate = base
    counter = 1
    while (candidate in known_ids or os.path.lexists(os.path.join(backup_dir, archive_name(candidate)))
           or os.path.lexists(os.path.join(backup_dir, '.tmp-' + candidate))):
        counter += 1
        candidate = '%s-%d' % (base, counter)
    return candidate


def predict_backup_id(backup_dir, node_id, now=None):
    now = now or utcnow()
    known = set()
    if os.path.isdir(backup_dir):
        try:
            known = set(e.get('id') for e in read_catalog(backup_dir)['backups'] if isinstance(e, dict))
        except BackupError:
            pass
        return _new_backup_id(backup_dir, node_id, now, known)
    return '%s-%s' % (node_id, stamp(now))


def _tarinfo(name, size, mtime):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o600
    info.uid = info.gid = 0
    info.uname = info.gname = ''
    info.type = tarfile.REGTYPE
    return info


def _write_archive(tmp_archive, manifest_bytes, staged, mtime):
    fd = os.open(tmp_archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'wb') as raw:
        with tarfile.open(fileobj=raw, mode='w:gz') as tar:
            tar.addfile(_tarinfo(MANIFEST_NAME, len(manifest_bytes), mtime), io.BytesIO(manifest_bytes))
            for member, path in staged:
                with open(path, 'rb') as handle:
                    tar.addfile(_tarinfo(member, os.fstat(handle.fileno()).st_size, mtime), handle)
        raw.flush()
        os.fsync(raw.fileno())


def ensure_backup_dir(backup_dir):
    try:
        return ensure_private_dir(backup_dir)
    except FilesError as exc:
        raise BackupError(str(exc))


def create_backup(backup_dir, data_dir, config_path, node_id, env_path=None, include_env_file=False, verify=True, now=None,
                  kind=None, partial_ok=False, ipfs=None):
    """Create, (verify), publish and catalog one backup. Return the catalog entry + details.

    Atomic: nothing appears under the final name or in the catalog unless every step succeeded.
    ``kind`` (for example ``safety``) is recorded in the catalog entry. With ``partial_ok`` a missing data dir or
    config file is left out instead of failing (safety backups taken before a restore onto an incomplete node).
    """
    if not NODE_ID_RE.match(node_id or ''):
        raise BackupError('node_id %r cannot be used in a file name: use letters, digits, ".", "_" and "-" only' % (node_id,))
    if not partial_ok:
        check_sources(data_dir, config_path, env_path, include_env_file)
    ensure_backup_dir(backup_dir)
    now = now or utcnow()

    with CatalogLock(backup_dir):
        catalog = read_catalog(backup_dir)
        known = set(e.get('id') for e in catalog['backups'] if isinstance(e, dict))
        backup_id = _new_backup_id(backup_dir, node_id, now, known)
        final = os.path.join(backup_dir, archive_name(backup_id))
        stage = os.path.join(backup_dir, '.tmp-' + backup_id)
        tmp_archive = stage + ARCHIVE_SUFFIX
        published = False
        entry = manifest = verification = None
        skipped = []
        excluded = []
        try:
            os.mkdir(stage, 0o700)
            if os.path.isdir(data_dir):
                staged, skipped, version = _stage_data_dir(data_dir, stage, exclude_dir=backup_dir)
            else:
                staged, skipped, version = [], [], None
            os.makedirs(os.path.join(stage, 'config'), 0o700)
            if not partial_ok or os.path.isfile(config_path):
                config_copy = os.path.join(stage, CONFIG_MEMBER)
                shutil.copyfile(config_path, config_copy)
                os.chmod(config_copy, 0o600)
                staged.append((CONFIG_MEMBER, config_copy))
            if include_env_file:
                env_copy = os.path.join(stage, ENV_MEMBER)
                shutil.copyfile(env_path, env_copy)
                os.chmod(env_copy, 0o600)
                staged.append((ENV_MEMBER, env_copy))
            elif env_path:
                excluded.append('%s (env file with secrets; include_env_file=false)' % env_path)

            ipfs_manifest = _stage_ipfs(ipfs, stage, staged) if ipfs is not None else None

            table_counts = {}
            for member, path in staged:
                if member.endswith(SQLITE_SUFFIXES) and member.startswith('data/'):
                    problem = _sqlite_integrity_file(path, member)
                    if problem:
                        raise BackupError('the online copy of %s is not consistent (%s); the source database may be '
                                          'corrupt: run PRAGMA integrity_check on it and restore from an earlier backup' % (member, problem))
                    table_counts[member] = table_row_counts(path)

            files = [{'path': member, 'size': os.path.getsize(path), 'sha256': sha256_file(path)} for member, path in staged]
            manifest = {'format': FORMAT, 'id': backup_id, 'node_id': node_id, 'created': iso(now), 'files': files}
            if version:
                manifest['qflow_version'] = version
            if table_counts:
                manifest['tables'] = table_counts
            if ipfs_manifest is not None:
                manifest['ipfs'] = ipfs_manifest
            manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode('utf-8') + b'\n'

            _write_archive(tmp_archive, manifest_bytes, staged, now.timestamp())
            archive_sha = sha256_file(tmp_archive)
            size = os.path.getsize(tmp_archive)

            verified_at = None
            if verify:
                verification = verify_archive(tmp_archive, archive_sha, display_name=archive_name(backup_id))
                if not verification['ok']:
                    raise BackupError('the new archive failed verification and was discarded: %s; check the disk holding %s'
                                      % ('; '.join(verification['errors'][:5]), backup_dir))
                verified_at = iso(utcnow())

            os.rename(tmp_archive, final)
            published = True
            fsync_dir(backup_dir)

            entry = {
                'id': backup_id,
                'file': archive_name(backup_id),
                'node_id': node_id,
                'created': iso(now),
                'size': size,
                'sha256': archive_sha,
                'status': 'completed',
                'verified': bool(verify),
                'verified_at': verified_at,
                'files': len(files),
            }
            if version:
                entry['qflow_version'] = version
            if kind:
                entry['kind'] = kind
            catalog['backups'].append(entry)
            write_catalog(backup_dir, catalog)
        except BaseException as exc:
            _remove_quietly(tmp_archive)
            if published:
                _remove_quietly(final)
            if isinstance(exc, BackupError):
                raise
            if isinstance(exc, (OSError, IOError, tarfile.TarError, sqlite3.Error, ValueError)):
                raise BackupError('backup of %s into %s failed: %s; nothing was kept (no partial archive, catalog unchanged); fix '
                                  'the cause (disk space, permissions) and run again' % (data_dir, backup_dir, exc))
            raise
        finally:
            _remove_quietly(stage)

    result = dict(entry)
    result['path'] = final
    result['manifest'] = manifest
    result['ipfs'] = manifest.get('ipfs')
    result['skipped_files'] = skipped
    result['excluded'] = excluded
    result['verification'] = verification
    return result


# ---------------------------------------------------------------------------------------------
# IPFS: the node's DAGs as CAR files

IPFS_DIR = 'ipfs'
IPFS_SOURCE_FLOWS = 'state.db flows.ipfs_cid'
IPFS_SOURCE_PINS = 'pin/ls'
_CID_RE = re.compile(r'^[A-Za-z0-9]{8,128}$')


def ipfs_member(cid):
    return '%s/%s.car' % (IPFS_DIR, cid)


def _flow_cids(state_db_copy):
    """CIDs the flows table of a (staged) state.db references, or None when it has no ipfs_cid column."""
    conn = sqlite3.connect(state_db_copy)
    try:
        if 'ipfs_cid' not in _table_columns(conn, 'flows'):
            return None
        return sorted(set(r[0] for r in conn.execute('SELECT ipfs_cid FROM flows WHERE ipfs_cid IS NOT NULL') if r[0]))
    finally:
        conn.close()
        _side_files_remove(state_db_copy)


def _ipfs_failure(what, exc):
    return BackupError('%s: %s; nothing was kept (no partial archive, catalog unchanged); start the IPFS daemon or fix '
                       'ipfs_api_url, or leave ipfs_api_url unset to back up without IPFS' % (what, exc))


def _stage_ipfs(ipfs, stage, staged):
    """Export the DAGs the node keeps in IPFS into <stage>/ipfs and add them to staged. The roots are the CIDs the
    staged flows table references (consistent with the archived state.db), else every recursive pin of the daemon.
    Return the manifest's ``ipfs`` entry."""
    state_copy = dict(staged).get(STATE_DB_MEMBER)
    roots = None
    if state_copy:
        try:
            roots = _flow_cids(state_copy)
        except sqlite3.Error:
            roots = None
    source = IPFS_SOURCE_FLOWS
    if roots is None:
        source = IPFS_SOURCE_PINS
        try:
            roots = sorted(cid for cid, kind in ipfs.pins('recursive').items() if kind in ('recursive', None))
        except Exception as exc:  # pylint: disable=broad-except
            raise _ipfs_failure('cannot list the IPFS pins', exc)
    os.mkdir(os.path.join(stage, IPFS_DIR), 0o700)
    for cid in roots:
        if not _CID_RE.match(cid):
            raise BackupError('the flows table references %r, which is not a CID; fix the row or back up without '
                              'ipfs_api_url; nothing was kept' % (cid,))
        path = os.path.join(stage, ipfs_member(cid))
        try:
            ipfs.dag_export(cid, path)
        except Exception as exc:  # pylint: disable=broad-except
            raise _ipfs_failure('cannot export the IPFS DAG %s (dag/export)' % cid, exc)
        os.chmod(path, 0o600)
        staged.append((ipfs_member(cid), path))
    return {'roots': roots, 'source': source}


# ---------------------------------------------------------------------------------------------
# verification

def _safe_member_name(name):
    if name.startswith('/') or name.startswith('\\'):
        return False
    parts = name.replace('\\', '/').split('/')
    return '..' not in parts


def verify_archive(path, expected_sha256=None, display_name=None):
    """Check an archive against its catalog sha256 and its own manifest. Never writes (except a temp copy of a
    SQLite member larger than MAX_IN_MEMORY_DB in the system temp dir, removed before returning).

    Return {ok, errors: [messages naming the file], checked_files}.
    """
    spool = {'dir': None, 'files': []}
    try:
        return _verify_archive(path, expected_sha256, display_name, spool)
    finally:
        for handle in spool['files']:
            handle.close()
        if spool['dir']:
            shutil.rmtree(spool['dir'], ignore_errors=True)


def _verify_archive(path, expected_sha256, display_name, spool):
    label = display_name or os.path.basename(path)
    errors = []
    checked = 0
    if not os.path.isfile(path):
        return {'ok': False, 'errors': ['%s: archive file is missing (%s)' % (label, path)], 'checked_files': 0}
    try:
        actual = sha256_file(path)
    except (IOError, OSError) as exc:
        return {'ok': False, 'errors': ['%s: cannot read the archive: %s' % (label, exc)], 'checked_files': 0}
    if expected_sha256 and actual != expected_sha256:
        errors.append('%s: archive sha256 %s does not match the catalog (%s): the file was changed or corrupted after it was written'
                      % (label, actual, expected_sha256))

    manifest = None
    seen = {}
    db_members = {}
    current = MANIFEST_NAME
    try:
        with tarfile.open(path, mode='r:gz') as tar:
            for info in tar:
                current = info.name
                if not _safe_member_name(info.name):
                    errors.append('%s: member %s has an unsafe path (absolute or with ..)' % (label, info.name))
                    continue
                if not info.isfile():
                    errors.append('%s: member %s is not a regular file' % (label, info.name))
                    continue
                handle = tar.extractfile(info)
                if info.name == MANIFEST_NAME:
                    raw = handle.read()
                    try:
                        manifest = json.loads(raw.decode('utf-8'))
                    except (ValueError, UnicodeDecodeError) as exc:
                        errors.append('%s: %s is not valid JSON (%s)' % (label, MANIFEST_NAME, exc))
                        manifest = {}
                    continue
                digest = hashlib.sha256()
                keep = info.name.startswith('data/') and info.name.endswith(SQLITE_SUFFIXES)
                spill = None
                if keep and info.size > MAX_IN_MEMORY_DB:
                    if spool['dir'] is None:
                        spool['dir'] = tempfile.mkdtemp(prefix='qflow-verify-')
                    spill = open(os.path.join(spool['dir'], '%d.db' % len(db_members)), 'wb')
                    spool['files'].append(spill)
                chunks = [] if keep else None
                size = 0
                for chunk in iter(lambda: handle.read(_CHUNK), b''):
                    digest.update(chunk)
                    size += len(chunk)
                    if spill is not None:
                        spill.write(chunk)
                    elif keep:
                        chunks.append(chunk)
                if info.name in seen:
                    errors.append('%s: member %s appears more than once' % (label, info.name))
                seen[info.name] = (size, digest.hexdigest())
                if spill is not None:
                    spill.close()
                    db_members[info.name] = spill.name
                elif keep:
                    db_members[info.name] = b''.join(chunks)
    except (tarfile.TarError, EOFError, zlib.error, IOError, OSError) as exc:
        errors.append('%s: cannot read the archive at member %s (%s): the file is truncated or corrupted' % (label, current, exc))

    if manifest is None:
        errors.append('%s: %s is missing: this is not a qflow.ops backup or it is truncated' % (label, MANIFEST_NAME))
        return {'ok': False, 'errors': errors, 'checked_files': checked}
    files = manifest.get('files') if isinstance(manifest, dict) else None
    if not isinstance(files, list):
        if manifest:
            errors.append('%s: %s has no files list' % (label, MANIFEST_NAME))
        return {'ok': False, 'errors': errors, 'checked_files': checked}

    listed = set()
    for item in files:
        name = item.get('path') if isinstance(item, dict) else None
        if not name:
            errors.append('%s: %s lists an entry without a path' % (label, MANIFEST_NAME))
            continue
        listed.add(name)
        if name not in seen:
            errors.append('%s: %s is listed in the manifest but missing from the archive' % (label, name))
            continue
        size, digest = seen[name]
        if digest != item.get('sha256') or size != item.get('size'):
            errors.append('%s: %s does not match the manifest (sha256 %s, size %d; manifest sha256 %s, size %s): the member was altered'
                          % (label, name, digest, size, item.get('sha256'), item.get('size')))
            continue
        if name in db_members:
            if isinstance(db_members[name], bytes):
                problem = _sqlite_integrity(db_members[name], name)
            else:
                problem = _sqlite_integrity_file(db_members[name], name)
            if problem:
                errors.append('%s: %s' % (label, problem))
                continue
        checked += 1
    for name in sorted(set(seen) - listed):
        errors.append('%s: %s is in the archive but not in the manifest' % (label, name))
    return {'ok': not errors, 'errors': errors, 'checked_files': checked}


def verify_entry(backup_dir, entry):
    """Verify a catalog entry (view or raw). Never writes."""
    path = os.path.join(backup_dir, entry.get('file') or '')
    return verify_archive(path, entry.get('sha256'), display_name=entry.get('file'))


# ---------------------------------------------------------------------------------------------
# SQLite helpers shared by restore and test restore

STATE_DB = 'state.db'
STATE_DB_MEMBER = 'data/' + STATE_DB
# restore_parts -> tables of state.db (lab/qflow_lab/node/store.py): a flow's owner and grants live beside it and the
# node deletes them together, so they are restored with it
PART_TABLES = {
    'flows': ('flows', 'ownership', 'permissions'),
    'executions': ('executions',),
}
RESTORE_PARTS = ('config', 'flows', 'executions', 'data')
TEMP_PREFIX = '.qflow-restore-'


def _quote(name):
    return '"%s"' % name.replace('"', '""')


def _user_tables(conn, schema='main'):
    rows = conn.execute("SELECT name FROM %s.sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%%' ORDER BY name" % schema)
    return [r[0] for r in rows]


def _side_files_remove(path):
    for suffix in SQLITE_SIDE_FILES:
        _remove_quietly(path + suffix)


def table_row_counts(path):
    """{table: rows} of a SQLite file (a staged or scratch copy: its side files are removed afterwards)."""
    counts = {}
    try:
        conn = sqlite3.connect(path)
        try:
            for table in _user_tables(conn):
                counts[table] = conn.execute('SELECT COUNT(*) FROM %s' % _quote(table)).fetchone()[0]
        finally:
            conn.close()
    finally:
        _side_files_remove(path)
    return counts


def _table_columns(conn, table, schema='main'):
    return [r[1] for r in conn.execute('PRAGMA %s.table_info(%s)' % (schema, _quote(table)))]


def _table_state(conn, table, schema='main'):
    """{rows, digest, columns} of one table, or None when the table does not exist. The digest covers the row set."""
    columns = _table_columns(conn, table, schema)
    if not columns:
        return None
    cols = sorted(columns)
    order = ', '.join(str(i + 1) for i in range(len(cols)))
    select = 'SELECT %s FROM %s.%s ORDER BY %s' % (', '.join(_quote(c) for c in cols), schema, _quote(table), order)
    digest = hashlib.sha256()
    rows = 0
    for row in conn.execute(select):
        digest.update(repr(tuple(row)).encode('utf-8') + b'\n')
        rows += 1
    return {'rows': rows, 'digest': digest.hexdigest(), 'columns': cols}


def _db_digest(path):
    """Digest of the logical content (schema + every table's row set) of a SQLite copy; side files removed."""
    digest = hashlib.sha256()
    conn = sqlite3.connect(path)
    try:
        for row in conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"):
            digest.update(repr(tuple(row)).encode('utf-8') + b'\n')
        for table in _user_tables(conn):
            digest.update(('%s:%s\n' % (table, _table_state(conn, table)['digest'])).encode('utf-8'))
    finally:
        conn.close()
        _side_files_remove(path)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# choosing a backup

def _is_safety(entry):
    return entry.get('kind') == 'safety'


def resolve_backup(backup_dir, backup_id, node_id=None, now=None):
    """Return the catalog view of backup_id (``latest``: newest completed non-safety backup of node_id). Never writes."""
    listing = list_backups(backup_dir, now)
    backups = listing['backups']
    known = [b.get('id') for b in backups]
    shown = ', '.join(str(i) for i in known[:20]) + (' and %d more' % (len(known) - 20) if len(known) > 20 else '')
    if not listing['exists']:
        raise BackupError('backup dir %s does not exist: there is no backup to restore; set backup_dir (inventory variable '
                          'qflow_backup_dir); nothing was changed' % backup_dir)
    if backup_id == 'latest':
        for entry in backups:
            if entry.get('status') == 'completed' and not _is_safety(entry) and (node_id is None or entry.get('node_id') == node_id):
                return entry
        raise BackupError('backup_id latest: no completed backup of node %s in %s (known ids: %s); pass an explicit backup_id; '
                          'nothing was changed' % (node_id, backup_dir, shown or 'none'))
    for entry in backups:
        if entry.get('id') == backup_id:
            if entry.get('status') != 'completed':
                raise BackupError('backup %s is listed in %s but its archive %s is %s; choose another backup_id (known ids: %s); '
                                  'nothing was changed' % (backup_id, listing['catalog_path'], entry.get('path'),
                                                           entry.get('status'), shown))
            return entry
    raise BackupError('unknown backup_id %s: not in the catalog %s (known ids: %s); nothing was changed'
                      % (backup_id, listing['catalog_path'], shown or 'none'))


def _verify_or_refuse(backup_dir, entry, what):
    verification = verify_entry(backup_dir, entry)
    if not verification['ok']:
        raise BackupError('refusing to %s backup %s: the archive failed verification: %s; nothing was changed; choose another '
                          'backup_id' % (what, entry.get('id'), '; '.join(verification['errors'][:5])))
    return verification


def _extract_all(archive, dest):
    """Extract every member of a verified archive into dest (a private dir). Return the manifest."""
    with tarfile.open(archive, mode='r:gz') as tar:
        for info in tar:
            if not info.isfile() or not _safe_member_name(info.name):
                continue
            target = os.path.join(dest, info.name)
            if not os.path.isdir(os.path.dirname(target)):
                os.makedirs(os.path.dirname(target), 0o700)
            src = tar.extractfile(info)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, 'wb') as out:
                shutil.copyfileobj(src, out, _CHUNK)
    with open(os.path.join(dest, MANIFEST_NAME), 'rb') as handle:
        return json.loads(handle.read().decode('utf-8'))


# ---------------------------------------------------------------------------------------------
# restore

def normalize_parts(parts):
    parts = list(parts or ('config', 'data'))
    unknown = [p for p in parts if p not in RESTORE_PARTS]
    if unknown:
        raise BackupError('restore_parts: unknown part(s) %s; use %s' % (', '.join(unknown), ', '.join(RESTORE_PARTS)))
    ordered = [p for p in RESTORE_PARTS if p in parts]
    if 'data' in ordered:  # the whole data dir already holds every table
        ordered = [p for p in ordered if p not in PART_TABLES]
    return ordered


def _live_data_files(data_dir, exclude_dir):
    """{member: path} of the regular files of the data dir, as a backup would name them (side files left out)."""
    found = {}
    if not os.path.isdir(data_dir):
        return found
    exclude_real = os.path.realpath(exclude_dir) if exclude_dir else None
    for root, dirs, files in os.walk(data_dir):
        if exclude_real:
            for name in list(dirs):
                if os.path.realpath(os.path.join(root, name)) == exclude_real:
                    dirs.remove(name)
        rel_root = os.path.relpath(root, data_dir)
        for name in files:
            if _is_sqlite_side_file(name) or name.startswith(TEMP_PREFIX):
                continue
            path = os.path.join(root, name)
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue  # symlinks and special files are never archived, so never replaced or removed
            found[os.path.normpath(os.path.join('data', rel_root, name)).replace(os.sep, '/')] = path
    return found


def _has_wal_content(path):
    try:
        return os.path.getsize(path + '-wal') > 0
    except OSError:
        return False


def _data_file_equal(live_path, item, extracted, scratch):
    """Same content? A byte-identical file, or for a SQLite file the same schema and row sets."""
    if not os.path.isfile(live_path):
        return False
    is_db = item['path'].endswith(SQLITE_SUFFIXES)
    if not (is_db and _has_wal_content(live_path)) and sha256_file(live_path) == item.get('sha256'):
        return True
    if not is_db:
        return False
    copy = os.path.join(scratch, 'live-%d.db' % len(os.listdir(scratch)))
    try:
        _sqlite_online_copy(live_path, copy)
        archived = os.path.join(scratch, 'archived-%d.db' % len(os.listdir(scratch)))
        shutil.copyfile(extracted, archived)
        return _db_digest(copy) == _db_digest(archived)
    except sqlite3.Error:
        return False
    finally:
        _remove_quietly(copy)


def _sqlite_in_use(path):
    """True when another connection (the node) has the database open: an exclusive lock cannot be taken at once."""
    try:
        conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        conn.execute('PRAGMA locking_mode=EXCLUSIVE')
        conn.execute('BEGIN EXCLUSIVE')
        conn.execute('ROLLBACK')
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def _install_plan(src, dest, owner_ref):
    """Copy src to a temp file beside dest with dest's mode and owner (or 0600 and owner_ref's owner). Return the temp path."""
    directory = os.path.dirname(dest)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o750)
        _chown_like(directory, owner_ref)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, 'wb') as out:
            with open(src, 'rb') as handle:
                shutil.copyfileobj(handle, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        ref = dest if os.path.exists(dest) else None
        os.chmod(tmp, stat.S_IMODE(os.stat(ref).st_mode) if ref else 0o600)
        _chown_like(tmp, ref or owner_ref)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return tmp


def _chown_like(path, ref):
    if ref and hasattr(os, 'geteuid') and os.geteuid() == 0 and os.path.exists(ref):
        st = os.stat(ref)
        try:
            os.chown(path, st.st_uid, st.st_gid)
        except OSError:
            pass


def plan_restore(backup_dir, entry, data_dir, config_path, parts, scratch, ipfs=None):
    """Compare the live node with the archive for the chosen parts. Reads only (scratch: a private temp dir).

    Return {manifest, config: {before, after} or None, files: [{member, before, after}], remove: [member],
    tables: {name: {before, after}}, changed: bool}.
    """
    manifest = _extract_all(os.path.join(backup_dir, entry['file']), scratch)
    items = dict((f['path'], f) for f in manifest.get('files', []) if isinstance(f, dict) and f.get('path'))
    plan = {'manifest': manifest, 'config': None, 'files': [], 'remove': [], 'tables': {}, 'ipfs': [], 'changed': False}
    work = os.path.join(scratch, '.work')
    os.mkdir(work, 0o700)

    if 'config' in parts:
        if CONFIG_MEMBER not in items:
            raise BackupError('backup %s has no %s (it is a partial safety backup); drop config from restore_parts; nothing was '
                              'changed' % (entry['id'], CONFIG_MEMBER))
        live = sha256_file(config_path) if os.path.isfile(config_path) else None
        if live != items[CONFIG_MEMBER]['sha256']:
            plan['config'] = {'before': live, 'after': items[CONFIG_MEMBER]['sha256']}

    if 'data' in parts:
        live_files = _live_data_files(data_dir, backup_dir)
        for member in sorted(m for m in items if m.startswith('data/')):
            live_path = os.path.join(data_dir, member[len('data/'):])
            if not _data_file_equal(live_path, items[member], os.path.join(scratch, member), work):
                before = sha256_file(live_path) if os.path.isfile(live_path) else None
                plan['files'].append({'member': member, 'before': before, 'after': items[member]['sha256']})
        plan['remove'] = sorted(m for m in live_files if m not in items)

    tables = [t for p in parts for t in PART_TABLES.get(p, ())]
    if tables:
        if STATE_DB_MEMBER not in items:
            raise BackupError('backup %s has no %s; restore_parts flows/executions need it; nothing was changed'
                              % (entry['id'], STATE_DB_MEMBER))
        live_db = os.path.join(data_dir, STATE_DB)
        if not os.path.isfile(live_db):
            raise BackupError('live database %s does not exist; restore the whole data dir (restore_parts: [data]); nothing was '
                              'changed' % live_db)
        live_copy = os.path.join(work, 'live-state.db')
        try:
            _sqlite_online_copy(live_db, live_copy)
            conn = sqlite3.connect(live_copy)
            try:
                conn.execute('ATTACH DATABASE ? AS archived', (os.path.join(scratch, STATE_DB_MEMBER),))
                for table in tables:
                    before = _table_state(conn, table, 'main')
                    after = _table_state(conn, table, 'archived')
                    if after is None:
                        raise BackupError('the archived %s of backup %s has no table %s; restore the whole data dir instead; '
                                          'nothing was changed' % (STATE_DB, entry['id'], table))
                    if before is None or before['columns'] != after['columns']:
                        raise BackupError('table %s of %s has other columns than in backup %s (%s vs %s): the schema changed; '
                                          'restore the whole data dir instead; nothing was changed'
                                          % (table, live_db, entry['id'], before and before['columns'], after['columns']))
                    if before['digest'] != after['digest']:
                        plan['tables'][table] = {'before': {'rows': before['rows'], 'digest': before['digest']},
                                                 'after': {'rows': after['rows'], 'digest': after['digest']}}
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise BackupError('cannot compare %s with backup %s: %s; nothing was changed' % (live_db, entry['id'], exc))
        finally:
            _remove_quietly(live_copy)
            _side_files_remove(live_copy)
            _side_files_remove(os.path.join(scratch, STATE_DB_MEMBER))
    roots = (manifest.get('ipfs') or {}).get('roots') or []
    if ipfs is not None and roots and ('data' in parts or 'flows' in parts):
        for cid in roots:
            if ipfs_member(cid) not in items:
                raise BackupError('backup %s lists IPFS root %s but has no %s; nothing was changed' % (entry['id'], cid, ipfs_member(cid)))
            try:
                pinned = ipfs.is_pinned(cid)
            except Exception as exc:  # pylint: disable=broad-except
                raise BackupError('cannot ask the IPFS daemon whether %s is pinned: %s; start it or fix ipfs_api_url; nothing '
                                  'was changed' % (cid, exc))
            if not pinned:
                plan['ipfs'].append(cid)
    plan['changed'] = bool(plan['config'] or plan['files'] or plan['remove'] or plan['tables'] or plan['ipfs'])
    return plan


def _replace_tables(live_db, archived_db, tables):
    """Replace every row of the tables in the live db by the archived rows, in one transaction."""
    st = os.stat(live_db)
    side_before = dict((s, os.path.exists(live_db + s)) for s in ('-wal', '-shm'))
    conn = sqlite3.connect(live_db, timeout=60, isolation_level=None)
    try:
        conn.execute('PRAGMA busy_timeout=60000')
        conn.execute('ATTACH DATABASE ? AS archived', (archived_db,))
        conn.execute('BEGIN IMMEDIATE')
        try:
            for table in tables:
                cols = ', '.join(_quote(c) for c in _table_columns(conn, table, 'main'))
                conn.execute('DELETE FROM main.%s' % _quote(table))
                conn.execute('INSERT INTO main.%s (%s) SELECT %s FROM archived.%s' % (_quote(table), cols, cols, _quote(table)))
            conn.execute('COMMIT')
        except BaseException:
            conn.execute('ROLLBACK')
            raise
        conn.execute('DETACH DATABASE archived')
    finally:
        conn.close()
    if hasattr(os, 'geteuid') and os.geteuid() == 0:
        for suffix, existed in side_before.items():
            if not existed and os.path.exists(live_db + suffix):
                try:
                    os.chown(live_db + suffix, st.st_uid, st.st_gid)
                except OSError:
                    pass


def _damaged_database(data_dir):
    """True when a SQLite file of the data dir fails to open or PRAGMA quick_check (read-only; the node is stopped)."""
    for name in sorted(os.listdir(data_dir)) if os.path.isdir(data_dir) else []:
        path = os.path.join(data_dir, name)
        if name.endswith('.db') and os.path.isfile(path) and not inspect_db(path, integrity='quick', tables=[])['ok']:
            return True
    return False


def _keep_damaged(backup_dir, data_dir, config_path, node_id, now):
    """Archive the data dir and config as they are (no consistency check) as <backup_dir>/damaged-<node>-<time>.tar.gz
    (mode 0600); return its path. Not a catalogued backup: it cannot be restored by this module."""
    stamp = (now or utcnow()).strftime('%Y%m%dT%H%M%SZ')
    path = os.path.join(backup_dir, 'damaged-%s-%s.tar.gz' % (node_id, stamp))
    tmp = path + '.part'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, 'wb') as raw:
            with tarfile.open(fileobj=raw, mode='w:gz') as tar:
                if os.path.isdir(data_dir):
                    tar.add(data_dir, arcname='data')
                if os.path.isfile(config_path):
                    tar.add(config_path, arcname='config/' + os.path.basename(config_path))
        os.rename(tmp, path)
    except (OSError, IOError, tarfile.TarError) as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise BackupError('the current state is damaged and could not be kept as %s: %s; nothing was changed' % (path, exc))
    return path


def restore_backup(backup_dir, backup_id, data_dir, config_path, node_id, parts=None, check_mode=False, now=None, ipfs=None):
    """Verify, compare and (unless check_mode or already equal) restore the chosen parts of a backup.

    Whole restore (config, data): every differing file is written to a temp file beside its target, then all are
    renamed into place; files of the data dir that are not in the archive are removed, and so are the -wal/-shm files of
    a replaced database. The node must be stopped for that. Table restore (flows, executions) replaces the rows in one
    SQLite transaction and is safe while the node runs. A safety backup (kind ``safety``) of the current state is taken
    before anything changes. Return {backup, parts, changed, safety_backup_id, config, files, removed, tables, verification}.
    """
    parts = normalize_parts(parts)
    entry = resolve_backup(backup_dir, backup_id, node_id, now)
    verification = _verify_or_refuse(backup_dir, entry, 'restore')
    try:
        scratch = tempfile.mkdtemp(prefix='qflow-restore-', dir=None if check_mode else backup_dir)
    except OSError as exc:
        raise BackupError('cannot create a scratch dir for the restore: %s; run with become: true; nothing was changed' % exc)
    try:
        try:
            plan = plan_restore(backup_dir, entry, data_dir, config_path, parts, scratch, ipfs=ipfs)
        except (OSError, IOError, tarfile.TarError, ValueError) as exc:
            raise BackupError('cannot read backup %s: %s; nothing was changed' % (entry['id'], exc))
        result = {'backup': entry, 'parts': parts, 'changed': plan['changed'], 'safety_backup_id': None,
                  'config': plan['config'], 'files': plan['files'], 'removed': plan['remove'], 'tables': plan['tables'],
                  'ipfs': plan['ipfs'],
                  'verification': verification}
        if not plan['changed'] or check_mode:
            return result

        for item in plan['files']:
            live = os.path.join(data_dir, item['member'][len('data/'):])
            if item['member'].endswith(SQLITE_SUFFIXES) and os.path.isfile(live) and _sqlite_in_use(live):
                raise BackupError('%s is open by another process (is the node running?): stop the node before restoring the data '
                                  'dir, or restore only flows/executions, which is safe online; nothing was changed' % live)
        if os.path.isdir(data_dir) or os.path.isfile(config_path):  # nothing to keep on an empty node
            try:
                safety = create_backup(backup_dir, data_dir, config_path, node_id, verify=True, kind='safety',
                                       partial_ok=True, ipfs=ipfs)
                result['safety_backup_id'] = safety['id']
            except BackupError as exc:
                if 'data' not in parts or not _damaged_database(data_dir):
                    raise
                # The state being replaced is the damaged one (the data corruption procedure): it cannot be backed
                # up consistently, so its files are kept byte for byte as evidence (the node is stopped: checked above).
                result['damaged_copy'] = _keep_damaged(backup_dir, data_dir, config_path, node_id, now)
                result['safety_error'] = str(exc)
        _apply_restore(plan, scratch, data_dir, config_path)
        for cid in plan['ipfs']:
            try:
                ipfs.dag_import(os.path.join(scratch, ipfs_member(cid)))
            except Exception as exc:  # pylint: disable=broad-except
                raise BackupError('restored the node files but could not re-import IPFS DAG %s (dag/import): %s; start the '
                                  'IPFS daemon and run the restore again (it then imports only what is missing)' % (cid, exc))
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _apply_restore(plan, scratch, data_dir, config_path):
    owner_ref = data_dir if os.path.isdir(data_dir) else os.path.dirname(data_dir)
    if plan['files'] and not os.path.isdir(data_dir):
        os.makedirs(data_dir, 0o750)
        _chown_like(data_dir, os.path.dirname(data_dir))
    staged = []
    try:
        if plan['config']:
            staged.append((_install_plan(os.path.join(scratch, CONFIG_MEMBER), config_path, os.path.dirname(config_path)), config_path))
        for item in plan['files']:
            dest = os.path.join(data_dir, item['member'][len('data/'):])
            staged.append((_install_plan(os.path.join(scratch, item['member']), dest, owner_ref), dest))
    except BaseException as exc:
        for tmp, dummy in staged:
            _remove_quietly(tmp)
        if isinstance(exc, (OSError, IOError)):
            raise BackupError('cannot stage the restored files: %s; nothing was changed (the safety backup was kept)' % exc)
        raise
    done = []
    try:
        for tmp, dest in staged:
            if dest.endswith(SQLITE_SUFFIXES) and dest != config_path:
                _side_files_remove(dest)  # a stale WAL would be replayed onto the restored database
            os.rename(tmp, dest)
            done.append(dest)
            fsync_dir(os.path.dirname(dest))
        for member in plan['remove']:
            path = os.path.join(data_dir, member[len('data/'):])
            _remove_quietly(path)
            if path.endswith(SQLITE_SUFFIXES):
                _side_files_remove(path)
        if plan['tables']:
            _replace_tables(os.path.join(data_dir, STATE_DB), os.path.join(scratch, STATE_DB_MEMBER), sorted(plan['tables']))
    except (OSError, IOError, sqlite3.Error) as exc:
        for tmp, dummy in staged:
            _remove_quietly(tmp)
        raise BackupError('restore failed after %d of %d files were replaced: %s; restore the safety backup to go back' % (
            len(done), len(staged), exc))


# ---------------------------------------------------------------------------------------------
# test restore

def prepare_restore_target(target, data_dir, config_path, backup_dir):
    """Refuse a scratch dir that overlaps the node or holds anything but an earlier test restore. Reads only."""
    real = os.path.realpath(target)
    for label, path in (('data_dir', data_dir), ('config dir', os.path.dirname(config_path)), ('backup_dir', backup_dir)):
        other = os.path.realpath(path)
        if real == other or real.startswith(other + os.sep) or other.startswith(real + os.sep):
            raise BackupError('restore_target %s overlaps the %s %s; choose a scratch directory elsewhere; nothing was changed'
                              % (target, label, path))
    if os.path.lexists(target):
        if not os.path.isdir(target):
            raise BackupError('restore_target %s exists and is not a directory; nothing was changed' % target)
        extra = sorted(set(os.listdir(target)) - set([MANIFEST_NAME, 'data', 'config']))
        if extra:
            raise BackupError('restore_target %s is not empty (%s): use an empty or new scratch directory; nothing was changed'
                              % (target, ', '.join(extra[:5])))


def run_test_restore(backup_dir, backup_id, target, node_id=None, data_dir=None, config_path=None, now=None):
    """Extract a verified backup into target (a scratch dir, or a temp dir removed afterwards when target is None),
    check every database and compare row counts and checksums with the manifest. Never touches the node.

    Return {backup, target, comparison: {tables: {name: {archived_rows, restored_rows}}, files_ok, errors}}.
    """
    entry = resolve_backup(backup_dir, backup_id, node_id, now)
    verification = _verify_or_refuse(backup_dir, entry, 'test-restore')
    if target:
        prepare_restore_target(target, data_dir or '/nonexistent', config_path or '/nonexistent/x', backup_dir)
        for name in (MANIFEST_NAME, 'data', 'config'):
            _remove_quietly(os.path.join(target, name))
        if not os.path.isdir(target):
            os.makedirs(target, 0o700)
        dest, remove = target, False
    else:
        dest, remove = tempfile.mkdtemp(prefix='qflow-test-restore-'), True
    try:
        try:
            manifest = _extract_all(os.path.join(backup_dir, entry['file']), dest)
        except (OSError, IOError, tarfile.TarError, ValueError) as exc:
            raise BackupError('cannot extract backup %s into %s: %s' % (entry['id'], dest, exc))
        comparison = compare_restored(dest, manifest)
    finally:
        if remove:
            shutil.rmtree(dest, ignore_errors=True)
    return {'backup': entry, 'target': dest if not remove else None, 'comparison': comparison, 'verification': verification}


def compare_restored(dest, manifest):
    errors = []
    files_ok = True
    tables = {}
    counts = manifest.get('tables') or {}
    for item in manifest.get('files', []):
        path = os.path.join(dest, item['path'])
        if not os.path.isfile(path):
            errors.append('%s: missing after extraction' % item['path'])
            files_ok = False
            continue
        if sha256_file(path) != item.get('sha256'):
            errors.append('%s: sha256 differs from the manifest after extraction' % item['path'])
            files_ok = False
            continue
        if not (item['path'].startswith('data/') and item['path'].endswith(SQLITE_SUFFIXES)):
            continue
        problem = _sqlite_integrity_file(path, item['path'])
        if problem:
            errors.append(problem)
            continue
        try:
            restored = table_row_counts(path)
        except sqlite3.Error as exc:
            errors.append('%s: cannot count rows (%s)' % (item['path'], exc))
            continue
        archived = counts.get(item['path'])
        prefix = '' if item['path'] == STATE_DB_MEMBER else item['path'][len('data/'):] + ':'
        for table in sorted(set(restored) | set(archived or {})):
            a_rows = archived.get(table) if archived is not None else None
            r_rows = restored.get(table)
            tables[prefix + table] = {'archived_rows': a_rows, 'restored_rows': r_rows}
            if archived is not None and a_rows != r_rows:
                errors.append('%s table %s: %s rows restored, %s in the manifest' % (item['path'], table, r_rows, a_rows))
    return {'tables': tables, 'files_ok': files_ok, 'errors': errors}


# ---------------------------------------------------------------------------------------------
# retention

def plan_retention(backups, node_id, keep_daily=None, keep_weekly=None):
    """Choose what to keep among the completed backups of node_id (backups: views, newest first).

    Keeps the newest backup of each of the last keep_daily days (UTC) that have a backup and of each of the last
    keep_weekly ISO weeks that have one, always the newest backup, and every backup whose creation time cannot be read.
    Return (keep: {id: [reasons]}, delete: [entries], newest first).
    """
    mine = [b for b in backups if b.get('status') == 'completed' and b.get('node_id') == node_id]
    keep = {}
    delete = []
    days = []
    weeks = []
    for index, entry in enumerate(mine):
        reasons = []
        try:
            created = parse_iso(entry.get('created'))
        except (TypeError, ValueError):
            keep[entry['id']] = ['creation time unknown']
            continue
        if index == 0:
            reasons.append('newest')
        day = created.strftime('%Y-%m-%d')
        if day not in days:
            days.append(day)
            if keep_daily and len(days) <= keep_daily:
                reasons.append('daily %s' % day)
        iso_year, iso_week = created.isocalendar()[:2]
        week = '%d-W%02d' % (iso_year, iso_week)
        if week not in weeks:
            weeks.append(week)
            if keep_weekly and len(weeks) <= keep_weekly:
                reasons.append('weekly %s' % week)
        if reasons:
            keep[entry['id']] = reasons
        else:
            delete.append(entry)
    return keep, delete


def prune_backups(backup_dir, node_id, keep_daily=None, keep_weekly=None, check_mode=False, now=None):
    """Apply retention to the backups of node_id. The catalog is rewritten first (atomically), then the archives are
    removed, so an interruption leaves at most orphaned archives, never catalog entries without an archive.

    Return {kept: {id: [reasons]}, delete: [{id, created, file}], changed}.
    """
    if not os.path.isdir(backup_dir):
        return {'kept': {}, 'delete': [], 'changed': False}

    def _plan():
        keep, delete = plan_retention(list_backups(backup_dir, now)['backups'], node_id, keep_daily, keep_weekly)
        return keep, [{'id': e['id'], 'created': e.get('created'), 'file': e.get('file')} for e in delete]

    if check_mode:
        keep, delete = _plan()
        return {'kept': keep, 'delete': delete, 'changed': bool(delete)}
    with CatalogLock(backup_dir):
        keep, delete = _plan()
        if delete:
            gone = set(d['id'] for d in delete)
            catalog = read_catalog(backup_dir)
            catalog['backups'] = [e for e in catalog['backups'] if not (isinstance(e, dict) and e.get('id') in gone)]
            write_catalog(backup_dir, catalog)
            for item in delete:
                _remove_quietly(os.path.join(backup_dir, item['file']))
            fsync_dir(backup_dir)
    return {'kept': keep, 'delete': delete, 'changed': bool(delete)}
