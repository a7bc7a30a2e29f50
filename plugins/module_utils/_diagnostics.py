# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: the collector behind qflow.ops.diagnostics. May change without notice.

Archive ``<dest>/<name>.tar.gz`` (mode 0600), one top dir ``<name>/``::

    manifest.json                  format, created_at, node_id, mode, since, collector, members [{path, size, sha256}],
                                   missing [{item, reason}], redaction, state_db access, forensics summary
    logs/<file>                    qflow.log (the last log_lines lines in standard mode) and rotations changed within since
    config/qflow-config.yaml       secret-looking values replaced by <redacted sha256:...>
    config/qflow.env.redacted      KEY=value lines, secrets as <redacted sha256:...>
    metrics.txt                    one scrape of metrics_url
    state/*.json                   health, ready, system-info, modes, executions-active, db, ipfs (GET / read-only RPC)
    changes/recent.json            config backups, secret rotations, env backups, node backups, releases, files changed
    forensics/hashes.sha256        (forensics) sha256sum lines of every file of the node's dirs
    forensics/stat.json            (forensics) lstat of every entry, taken before anything else is read

Every text member is scrubbed of the secret values known on the node (env file and its backups, config, api_token):
no secret value ends up in the archive, in either mode. Nothing of the node is written: files are read with O_RDONLY
(O_NOATIME when allowed), the API only gets GETs, state.db is opened through _integrity (read-only URI, or a snapshot
copy in forensics mode), and every temporary file lives in a private work dir under dest.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import bz2
import datetime
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import socket
import stat
import tarfile
import tempfile
import time
import zlib

from ansible_collections.qflow.ops.plugins.module_utils import _backup as backup
from ansible_collections.qflow.ops.plugins.module_utils import _config as config
from ansible_collections.qflow.ops.plugins.module_utils import _integrity as integrity
from ansible_collections.qflow.ops.plugins.module_utils import _secret as secret
from ansible_collections.qflow.ops.plugins.module_utils._api import QflowClient, QflowError, QflowHttpError, fetch, scrub
from ansible_collections.qflow.ops.plugins.module_utils._files import FilesError, ensure_private_dir, fsync_dir
from ansible_collections.qflow.ops.plugins.module_utils._ipfs import IpfsClient, repo_summary
from ansible_collections.qflow.ops.plugins.module_utils._logs import LogDirError, list_log_files
from ansible_collections.qflow.ops.plugins.module_utils._time import iso, parse_iso

FORMAT = 1
COLLECTOR = 'qflow.ops.diagnostics'
COLLECTOR_VERSION = '1.0'
MODES = ('standard', 'forensics')
ARCHIVE_SUFFIX = '.tar.gz'
MANIFEST = 'manifest.json'
NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$')
SECRET_KEY_RE = re.compile(r'(secret|passw|pwd|token|credential|private|api_?key|access_?key|encryption_?key|'
                           r'signing_?key|(^|[_.-])key$|cookie|salt)', re.I)
NOT_SECRET_KEY_RE = re.compile(r'(path|file|dir|url|uri|enabled?|ttl|hours|seconds|length|algorithm|timeout|size|'
                               r'count|version|type)$', re.I)
MIN_SCRUB = 8  # shorter secret values are redacted where their key says so, not searched for everywhere
EXEC_STATUSES = ('running', 'paused', 'pending')
EXEC_PAGE = 100
EXEC_MAX_PAGES = 20
MAX_CHANGED_FILES = 1000
_COMPRESSED = {'.gz': gzip.open, '.bz2': bz2.open, '.xz': lzma.open}
_CHUNK = 1024 * 1024
_YAML_LINE_RE = re.compile(r'^(\s*-?\s*)([A-Za-z0-9_.-]+)(\s*:\s*)(\S.*?)\s*$')


class DiagnosticsError(Exception):
    """Bad options or an unusable directory: the message says what to do; nothing was written."""


def is_secret_key(name):
    name = str(name)
    return bool(SECRET_KEY_RE.search(name)) and not NOT_SECRET_KEY_RE.search(name)


def _inside(path, parent):
    path, parent = os.path.realpath(path), os.path.realpath(parent)
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def archive_path(dest, name):
    return os.path.join(dest, name + ARCHIVE_SUFFIX)


def evidence_dirs(p):
    """[(label, path)] of the node's directories that exist (etc, data, log, backups, releases), without duplicates."""
    out = []
    seen = set()
    for label, path in (('etc', os.path.dirname(p['config_path'] or '')), ('etc', os.path.dirname(p['env_path'] or '')),
                        ('data', p['data_dir']), ('log', p['log_dir']), ('backups', p['backup_dir']),
                        ('releases', p.get('release_dir'))):
        if not path or not os.path.isdir(path):
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        out.append((label, path))
    return out


def validate(p):
    """Raise DiagnosticsError for a bad option. Reads only."""
    if not NAME_RE.match(p['name'] or ''):
        raise DiagnosticsError('name %r cannot be used as a file name: use letters, digits, ".", "_" and "-" only (at most '
                               '128, starting with a letter or digit), for example the incident id; nothing was written'
                               % (p['name'],))
    if p['mode'] not in MODES:
        raise DiagnosticsError('mode must be one of %s, got %r' % (', '.join(MODES), p['mode']))
    if p['log_lines'] < 0:
        raise DiagnosticsError('log_lines must be 0 (whole files) or more, got %d; nothing was written' % p['log_lines'])
    for option in ('data_dir', 'log_dir'):
        path = p[option]
        if not os.path.isdir(path):
            raise DiagnosticsError('%s %s %s; set %s (inventory variable qflow_%s) to the node\'s directory; nothing was '
                                   'written' % (option, path, 'is not a directory' if os.path.exists(path) else 'does not exist',
                                                option, option))
    etc = os.path.dirname(p['config_path'])
    if not os.path.isdir(etc):
        raise DiagnosticsError('the directory of config_path (%s) does not exist; set config_path (inventory variable '
                               'qflow_config_path); nothing was written' % etc)
    if p.get('release_dir') and not os.path.isdir(p['release_dir']):
        raise DiagnosticsError('release_dir %s is not a directory; set it to the node\'s release dir (qflow_release_dir) or '
                               'leave it unset; nothing was written' % p['release_dir'])
    dest = p['dest']
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise DiagnosticsError('dest %s exists but is not a directory; choose another dest; nothing was written' % dest)
    if p['mode'] == 'forensics':
        for label, path in evidence_dirs(p):
            if _inside(dest, path):
                raise DiagnosticsError('dest %s is inside the node\'s %s dir %s: forensics mode must not write among the '
                                       'evidence; choose a dest outside etc, data, log, backup and release dirs (for example '
                                       '/var/tmp/qflow-incidents); nothing was written' % (dest, label, path))


# ---------------------------------------------------------------------------------------------
# secrets

def _env_values(path):
    try:
        with integrity.open_read_only(path) as handle:
            return secret.parse_env(handle.read().decode('utf-8'))[1]
    except (IOError, OSError, UnicodeDecodeError):
        return None


def _walk_secret_values(doc, out):
    if isinstance(doc, dict):
        for key, value in doc.items():
            if is_secret_key(key) and value not in (None, '') and not isinstance(value, (bool, dict, list)):
                out.append(str(value))
            else:
                _walk_secret_values(value, out)
    elif isinstance(doc, list):
        for value in doc:
            _walk_secret_values(value, out)


def known_secrets(p, config_doc):
    """Every secret value known on the node: the env file and its backups (.bak), the config file, api_token."""
    values = []
    env_dir = os.path.dirname(p['env_path'])
    env_files = [p['env_path']]
    base = os.path.basename(p['env_path']) + '.'
    try:
        env_files += [os.path.join(env_dir, n) for n in sorted(os.listdir(env_dir)) if n.startswith(base) and n.endswith('.bak')]
    except OSError:
        pass
    for path in env_files:
        for key, value in (_env_values(path) or {}).items():
            if value and (is_secret_key(key) or key in secret.SECRET_NAMES):
                values.append(value)
    if config_doc is not None:
        values.extend(config.secret_values(config_doc))
        _walk_secret_values(config_doc, values)
    if p.get('api_token'):
        values.append(p['api_token'])
    return sorted(set(v for v in values if len(v) >= MIN_SCRUB), key=lambda v: (-len(v), v))


class Scrubber(object):
    """Replaces known secret values (bytes) with <redacted sha256:...>; counts the replacements."""

    def __init__(self, secrets):
        self.pairs = [(s.encode('utf-8'), secret.redacted(s).encode('utf-8')) for s in secrets]
        self.count = 0

    def __call__(self, data):
        for value, mark in self.pairs:
            if value in data:
                self.count += data.count(value)
                data = data.replace(value, mark)
        return data

    def found(self, data):
        return any(value in data for value, dummy in self.pairs)


# ---------------------------------------------------------------------------------------------
# members

class Member(object):
    """One archive member: bytes or a spooled file; sha256 and size are computed when it is made."""

    def __init__(self, path, data=None, spool=None, note=None):
        self.path = path
        self.data = data
        self.spool = spool
        self.note = note
        if data is not None:
            self.size = len(data)
            self.sha256 = hashlib.sha256(data).hexdigest()
        else:
            digest = hashlib.sha256()
            spool.seek(0)
            for chunk in iter(lambda: spool.read(_CHUNK), b''):
                digest.update(chunk)
            self.size = spool.tell()
            self.sha256 = digest.hexdigest()
            spool.seek(0)

    def entry(self):
        out = {'path': self.path, 'size': self.size, 'sha256': self.sha256}
        if self.note:
            out['note'] = self.note
        return out

    def close(self):
        if self.spool is not None:
            self.spool.close()


def _json_bytes(obj):
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + '\n').encode('utf-8')


def _tail(handle, size, lines):
    """The last ``lines`` lines of the first ``size`` bytes of handle (a file opened for reading)."""
    block = 64 * 1024
    pos = size
    data = b''
    while pos > 0 and data.count(b'\n') <= lines:
        step = min(block, pos)
        pos -= step
        handle.seek(pos)
        data = handle.read(step) + data
    parts = data.split(b'\n')
    if parts and parts[-1] == b'':
        parts = parts[:-1]
        return b'\n'.join(parts[-lines:]) + b'\n', pos > 0 or len(parts) > lines
    return b'\n'.join(parts[-lines:]), pos > 0 or len(parts) > lines


class Collector(object):

    def __init__(self, p, now, workdir=None):
        self.p = p
        self.now = now
        self.since = p['since_seconds']
        self.cutoff = now - datetime.timedelta(seconds=self.since)
        self.workdir = workdir
        self.members = []
        self.missing = []
        self.notes = []
        self.redaction = {'config_values': 0, 'env_values': 0, 'scrubbed_occurrences': 0}
        self.node_id = None
        self.state_db_access = None
        self.forensics = None
        self.config_doc = None
        self.config_raw = None
        self.config_error = None
        self.scrub = Scrubber([])

    # -- helpers -----------------------------------------------------------------------------------

    def add(self, path, data, note=None):
        self.members.append(Member(path, data=self.scrub(data), note=note))

    def miss(self, item, reason):
        self.missing.append({'item': item, 'reason': scrub(reason, [v.decode('utf-8') for v, dummy in self.scrub.pairs])})

    def spool(self):
        return tempfile.TemporaryFile(dir=self.workdir)

    # -- secrets first (needed to scrub everything) --------------------------------------------------

    def load_secrets(self):
        path = self.p['config_path']
        try:
            with integrity.open_read_only(path) as handle:
                self.config_raw = handle.read()
        except (IOError, OSError) as exc:
            self.config_error = 'cannot read %s: %s' % (path, exc.strerror or exc)
        if self.config_raw is not None:
            if not config.HAS_YAML:
                self.config_error = 'PyYAML is not installed on the node: the config was redacted line by line'
            else:
                try:
                    self.config_doc = config.parse(self.config_raw.decode('utf-8'), path)
                except (config.ConfigError, UnicodeDecodeError) as exc:
                    self.config_error = '%s (the config was redacted line by line)' % exc
        self.scrub = Scrubber(known_secrets(self.p, self.config_doc))
        env = _env_values(self.p['env_path'])
        if env and env.get('NODE_ID'):
            self.node_id = env['NODE_ID']

    # -- forensics (first: the lstat of every file before this run reads anything) -----------------------

    def collect_forensics(self):
        entries = {}
        hashes = []
        skipped = []
        files = total = 0
        roots = []
        for label, root in evidence_dirs(self.p):
            roots.append({'label': label, 'path': root})
            try:
                entries[root] = _stat_entry(root, os.lstat(root))
            except OSError as exc:
                skipped.append({'path': root, 'reason': str(exc)})
                continue
            for top, dirs, names in os.walk(root, followlinks=False):
                dirs.sort()
                for name in sorted(dirs) + sorted(names):
                    path = os.path.join(top, name)
                    try:
                        st = os.lstat(path)
                    except OSError as exc:
                        skipped.append({'path': path, 'reason': str(exc)})
                        continue
                    entries[path] = _stat_entry(path, st)
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    try:
                        digest = hashlib.sha256()
                        with integrity.open_read_only(path) as handle:
                            for chunk in iter(lambda: handle.read(_CHUNK), b''):
                                digest.update(chunk)
                    except (IOError, OSError) as exc:
                        skipped.append({'path': path, 'reason': 'not hashed: %s' % (exc.strerror or exc)})
                        continue
                    hashes.append(_sha256sum_line(digest.hexdigest(), path))
                    files += 1
                    total += st.st_size
        self.add('forensics/hashes.sha256', ''.join(hashes).encode('utf-8', 'surrogateescape'))
        self.add('forensics/stat.json', _json_bytes({'taken_at': iso(self.now), 'roots': roots, 'entries': entries,
                                                     'skipped': skipped}))
        for item in skipped:
            self.miss('forensics:%s' % item['path'], item['reason'])
        self.forensics = {'files_hashed': files, 'bytes_hashed': total, 'entries': len(entries), 'skipped': len(skipped),
                          'roots': [r['path'] for r in roots]}

    # -- logs -------------------------------------------------------------------------------------------------

    def collect_logs(self):
        try:
            files = list_log_files(self.p['log_dir'])
        except LogDirError as exc:
            self.miss('logs/', str(exc))
            return
        if not files:
            self.miss('logs/', 'no qflow.log* file in %s' % self.p['log_dir'])
        cutoff = _epoch(self.cutoff)
        for path, mtime in files:
            name = os.path.basename(path)
            if name != 'qflow.log' and mtime < cutoff:
                continue
            try:
                self._log_member(path, name)
            except (IOError, OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
                self.miss('logs/%s' % name, 'cannot read %s: %s' % (path, getattr(exc, 'strerror', None) or exc))

    def _log_member(self, path, name):
        suffix = os.path.splitext(name)[1]
        out = self.spool()
        with integrity.open_read_only(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if suffix in _COMPRESSED:
                # kept as it is, unless it holds a secret value: then decompressed and scrubbed
                raw = handle.read(size)
                with _COMPRESSED[suffix](io.BytesIO(raw), 'rb') as text:
                    leak = any(self.scrub.found(line) for line in text)
                if not leak:
                    out.write(raw)
                    self.members.append(Member('logs/%s' % name, spool=out))
                    return
                with _COMPRESSED[suffix](io.BytesIO(raw), 'rb') as text:
                    for line in text:
                        out.write(self.scrub(line))
                self.members.append(Member('logs/%s.redacted' % name[:-len(suffix)], spool=out,
                                           note='decompressed from %s and scrubbed of secret values' % name))
                return
            note = None
            lines = self.p['log_lines'] if self.p['mode'] == 'standard' else 0
            if lines:
                data, cut = _tail(handle, size, lines)
                out.write(self.scrub(data))
                if cut:
                    note = 'last %d lines of %d bytes' % (lines, size)
            else:
                handle.seek(0)
                remaining = size
                for line in handle:
                    if remaining <= 0:
                        break
                    line = line[:remaining]
                    remaining -= len(line)
                    out.write(self.scrub(line))
        self.members.append(Member('logs/%s' % name, spool=out, note=note))

    # -- config and env -----------------------------------------------------------------------------------------

    def collect_config(self):
        if self.config_raw is None:
            self.miss('config/qflow-config.yaml', self.config_error or 'cannot read %s' % self.p['config_path'])
            return
        count = [0]
        if self.config_doc is not None:
            doc = _redact_doc(self.config_doc, count)
            text = '# %s: redacted by %s (%d secret values)\n' % (self.p['config_path'], COLLECTOR, count[0])
            text += config.dump(doc) if doc is not None else ''
        else:
            self.notes.append('config: %s' % self.config_error)
            lines = []
            for line in self.config_raw.decode('utf-8', 'replace').splitlines(True):
                match = _YAML_LINE_RE.match(line.rstrip('\r\n'))
                if match and is_secret_key(match.group(2)):
                    count[0] += 1
                    line = '%s%s%s%s\n' % (match.group(1), match.group(2), match.group(3), secret.redacted(match.group(4)))
                lines.append(line)
            text = '# %s: redacted line by line by %s (%d secret values)\n' % (self.p['config_path'], COLLECTOR, count[0])
            text += ''.join(lines)
        self.redaction['config_values'] = count[0]
        self.add('config/qflow-config.yaml', text.encode('utf-8'))

    def collect_env(self):
        path = self.p['env_path']
        values = _env_values(path)
        if values is None:
            self.miss('config/qflow.env.redacted', 'cannot read %s as UTF-8 KEY=value lines' % path
                      if os.path.exists(path) else '%s does not exist' % path)
            return
        lines = ['# %s: KEY=value lines; secret values replaced by their sha256 fingerprint (%s)\n' % (path, COLLECTOR)]
        count = 0
        for key, value in values.items():
            if is_secret_key(key) or key in secret.SECRET_NAMES:
                count += 1
                value = secret.redacted(value) if value else ''
            lines.append('%s=%s\n' % (key, value))
        self.redaction['env_values'] = count
        self.add('config/qflow.env.redacted', ''.join(lines).encode('utf-8'))

    # -- HTTP ------------------------------------------------------------------------------------------------------

    def collect_metrics(self):
        url = self.p['metrics_url']
        if not url:
            self.miss('metrics.txt', 'metrics_url is not set')
            return
        try:
            resp = fetch(url, timeout=self.p['timeout'], validate_certs=self.p['validate_certs'], ca_path=self.p['ca_path'],
                         retries=0, what='The metrics endpoint')
        except QflowHttpError as exc:
            self.miss('metrics.txt', exc.msg)
            return
        if resp.status != 200:
            self.miss('metrics.txt', 'the metrics endpoint %s answered HTTP %s' % (resp.url, resp.status))
            return
        self.add('metrics.txt', resp.body)

    def collect_api(self):
        client = QflowClient(self.p)
        down = [None]

        def get(item, path, query=None, auth=True, any_status=False):
            if down[0]:
                self.miss(item, 'skipped: the API did not answer (%s)' % down[0])
                return None
            try:
                resp = client.request_raw(path, query=query, auth=auth)
            except QflowHttpError as exc:
                if exc.kind in ('connection', 'timeout', 'tls'):
                    down[0] = exc.msg
                self.miss(item, exc.msg)
                return None
            if not any_status and not (200 <= resp.status < 300):
                error = client.error_from(resp)
                reason = str(error)
                if resp.status == 404 and path == '/api/v1/system/modes':
                    reason = 'GET %s answered 404: this node has no operating modes (older node)' % path
                self.miss(item, reason)
                return None
            return resp

        for item, path, auth in (('state/health.json', '/health', False), ('state/ready.json', '/health/ready', False)):
            resp = get(item, path, auth=auth, any_status=True)
            if resp is not None:
                self.add(item, _json_bytes({'path': path, 'http_status': resp.status, 'request_id': resp.request_id,
                                            'response': resp.envelope}))
                if path == '/health' and not self.node_id and isinstance(resp.data, dict) and resp.data.get('nodeId'):
                    self.node_id = str(resp.data['nodeId'])
        for item, path in (('state/system-info.json', '/api/v1/system/info'), ('state/modes.json', '/api/v1/system/modes')):
            resp = get(item, path)
            if resp is not None:
                self.add(item, _json_bytes({'path': path, 'http_status': resp.status, 'request_id': resp.request_id,
                                            'data': resp.data}))
        item = 'state/executions-active.json'
        active = {}
        for status in EXEC_STATUSES:
            items = []
            total = None
            for page in range(EXEC_MAX_PAGES):
                resp = get(item, '/api/v1/executions', query={'status': status, 'limit': EXEC_PAGE, 'offset': page * EXEC_PAGE})
                if resp is None:
                    return
                data = resp.data if isinstance(resp.data, dict) else {}
                items.extend(data.get('executions') or [])
                total = (data.get('pagination') or {}).get('total', total)
                if not (data.get('pagination') or {}).get('hasMore'):
                    break
            active[status] = {'total': total if total is not None else len(items), 'listed': len(items), 'executions': items}
        self.add(item, _json_bytes({'path': '/api/v1/executions', 'statuses': active}))

    def collect_ipfs(self):
        if not self.p.get('ipfs_api_url'):
            return
        try:
            summary = repo_summary(IpfsClient(self.p, url_option='ipfs_api_url'))
        except QflowError as exc:
            self.miss('state/ipfs.json', exc.msg)
            return
        self.add('state/ipfs.json', _json_bytes(summary))

    # -- state.db ---------------------------------------------------------------------------------------------------

    def collect_db(self):
        path = integrity.db_file(self.p['data_dir'])
        snapdir = None
        if self.p['mode'] == 'forensics':
            snapdir = tempfile.mkdtemp(prefix='state-db-', dir=self.workdir)
        try:
            info = integrity.inspect_db(path, integrity='quick', workdir=snapdir)
        except integrity.IntegrityError as exc:
            self.miss('state/db.json', str(exc))
            return
        finally:
            if snapdir:
                shutil.rmtree(snapdir, ignore_errors=True)
        self.state_db_access = info['opened_as']
        if info['error']:
            self.notes.append('state.db: %s' % info['error'])
        self.add('state/db.json', _json_bytes(info))

    # -- recent changes ---------------------------------------------------------------------------------------------------

    def collect_changes(self):
        cutoff = _epoch(self.cutoff)
        out = {'since': self.p['since'], 'since_time': iso(self.cutoff), 'notes': []}
        # config backups written by qflow.ops.config
        cdir = self.p.get('config_backup_dir') or os.path.join(os.path.dirname(self.p['config_path']), 'config-backups')
        out['config_backups'] = []
        for backup_id in config.list_backups(cdir):
            path = os.path.join(cdir, config.backup_name(backup_id))
            entry = _file_entry(path)
            if entry and entry['mtime_epoch'] >= cutoff:
                out['config_backups'].append(dict(entry, id=backup_id))
        # secret rotations (qflow.ops.secret's record: fingerprints only) and env file backups
        out['secret_rotations'] = []
        for name, entry in sorted(secret.load_meta(secret.meta_path(self.p['env_path'])).items()):
            try:
                when = parse_iso(entry.get('rotated_at'))
            except (AttributeError, TypeError, ValueError):
                continue
            if when >= self.cutoff:
                out['secret_rotations'].append({'name': name, 'rotated_at': entry.get('rotated_at'),
                                                'fingerprint': entry.get('fingerprint')})
        env_dir = os.path.dirname(self.p['env_path'])
        base = os.path.basename(self.p['env_path']) + '.'
        out['env_backups'] = []
        if os.path.isdir(env_dir):
            for name in sorted(os.listdir(env_dir)):
                if name.startswith(base) and name.endswith('.bak'):
                    entry = _file_entry(os.path.join(env_dir, name))
                    if entry and entry['mtime_epoch'] >= cutoff:
                        out['env_backups'].append(entry)
        # node backups (qflow.ops.backup catalog)
        out['backups'] = []
        try:
            listing = backup.list_backups(self.p['backup_dir'], now=self.now)
            for entry in listing['backups']:
                created = backup.age_seconds(entry.get('created'), self.now)
                if created is not None and created <= self.since:
                    out['backups'].append(dict((k, entry.get(k)) for k in (
                        'id', 'created', 'status', 'kind', 'verified', 'verified_at', 'size', 'sha256', 'file', 'node_id')))
            if not listing['exists']:
                out['notes'].append('backup dir %s does not exist' % self.p['backup_dir'])
        except backup.BackupError as exc:
            out['notes'].append(str(exc))
        # release history
        out['releases'] = None
        if self.p.get('release_dir'):
            out['releases'] = []
            history = os.path.join(self.p['release_dir'], 'history.jsonl')
            try:
                with integrity.open_read_only(history) as handle:
                    for line in handle:
                        try:
                            record = json.loads(line.decode('utf-8'))
                            when = parse_iso(record.get('time'))
                        except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
                            continue
                        if when >= self.cutoff:
                            out['releases'].append(record)
            except (IOError, OSError) as exc:
                out['notes'].append('cannot read %s: %s' % (history, exc.strerror or exc))
        # files changed in etc and data
        changed = []
        truncated = False
        for label, root in evidence_dirs(self.p):
            if label not in ('etc', 'data', 'releases'):
                continue
            for top, dirs, names in os.walk(root):
                dirs.sort()
                for name in sorted(names):
                    path = os.path.join(top, name)
                    if _inside(path, self.p['dest']):
                        continue
                    entry = _file_entry(path)
                    if entry and entry['mtime_epoch'] >= cutoff:
                        if len(changed) >= MAX_CHANGED_FILES:
                            truncated = True
                            break
                        changed.append(entry)
        for entries in (out['config_backups'], out['env_backups'], changed):
            for entry in entries:
                entry.pop('mtime_epoch', None)
        out['files_modified'] = changed
        if truncated:
            out['notes'].append('files_modified lists the first %d files' % MAX_CHANGED_FILES)
        self.add('changes/recent.json', _json_bytes(out))

    # -- everything ---------------------------------------------------------------------------------------------------------

    def collect(self):
        started = time.time()
        self.load_secrets()
        if self.p['mode'] == 'forensics':
            self.collect_forensics()
        self.collect_logs()
        self.collect_config()
        self.collect_env()
        self.collect_metrics()
        self.collect_api()
        self.collect_ipfs()
        self.collect_db()
        self.collect_changes()
        self.duration = round(time.time() - started, 3)
        self.redaction['scrubbed_occurrences'] = self.scrub.count
        if not self.node_id:
            self.node_id = socket.gethostname().split('.')[0] or None

    def manifest(self):
        return {
            'format': FORMAT,
            'collector': COLLECTOR,
            'collector_version': COLLECTOR_VERSION,
            'name': self.p['name'],
            'created_at': iso(self.now),
            'node_id': self.node_id,
            'mode': self.p['mode'],
            'since': self.p['since'],
            'since_seconds': self.since,
            'duration_seconds': getattr(self, 'duration', None),
            'members': [m.entry() for m in self.members],
            'missing': self.missing,
            'notes': self.notes,
            'redaction': self.redaction,
            'state_db_access': self.state_db_access,
            'api': 'GET requests only',
            'forensics': self.forensics,
            'sources': {k: self.p.get(k) for k in ('config_path', 'env_path', 'data_dir', 'log_dir', 'backup_dir',
                                                   'release_dir')},
        }

    def close(self):
        for member in self.members:
            member.close()


# ---------------------------------------------------------------------------------------------
# small helpers

def _epoch(dt):
    return (dt - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds()


def _ts(seconds):
    return iso(datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc))


def _file_entry(path):
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return {'path': path, 'size': st.st_size, 'mtime': _ts(st.st_mtime), 'mtime_epoch': st.st_mtime}


def _stat_entry(path, st):
    kind = 'file' if stat.S_ISREG(st.st_mode) else 'dir' if stat.S_ISDIR(st.st_mode) else \
        'symlink' if stat.S_ISLNK(st.st_mode) else 'other'
    out = {'type': kind, 'mode': '%04o' % stat.S_IMODE(st.st_mode), 'uid': st.st_uid, 'gid': st.st_gid,
           'size': st.st_size, 'inode': st.st_ino, 'nlink': st.st_nlink,
           'mtime': _ts(st.st_mtime), 'mtime_ns': st.st_mtime_ns, 'ctime': _ts(st.st_ctime), 'ctime_ns': st.st_ctime_ns,
           'atime': _ts(st.st_atime), 'atime_ns': st.st_atime_ns}
    if kind == 'symlink':
        try:
            out['link_target'] = os.readlink(path)
        except OSError:
            out['link_target'] = None
    return out


def _sha256sum_line(digest, path):
    """A sha256sum(1) line; names with a backslash or newline are escaped the way sha256sum does."""
    if '\\' in path or '\n' in path:
        return '\\%s  %s\n' % (digest, path.replace('\\', '\\\\').replace('\n', '\\n'))
    return '%s  %s\n' % (digest, path)


def _redact_doc(doc, count):
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            if is_secret_key(key) and value not in (None, '') and not isinstance(value, (bool, dict, list)):
                count[0] += 1
                out[key] = secret.redacted(str(value))
            else:
                out[key] = _redact_doc(value, count)
        return out
    if isinstance(doc, list):
        return [_redact_doc(v, count) for v in doc]
    return doc


# ---------------------------------------------------------------------------------------------
# plan (check mode), archive, existing archive

def plan(p):
    """What would be collected: [{path, size (null: known at run time), source}]. Reads only (stat, no file content)."""
    out = []
    try:
        logs = list_log_files(p['log_dir'])
    except LogDirError:
        logs = []
    cutoff = time.time() - p['since_seconds']
    for path, mtime in logs:
        name = os.path.basename(path)
        if name == 'qflow.log' or mtime >= cutoff:
            size = os.path.getsize(path) if os.path.exists(path) else None
            out.append({'path': 'logs/%s' % name, 'size': None if (p['log_lines'] and p['mode'] == 'standard') else size,
                        'source': path})
    for member, source in (('config/qflow-config.yaml', p['config_path']), ('config/qflow.env.redacted', p['env_path'])):
        out.append({'path': member, 'size': None, 'source': source if os.path.isfile(source) else '%s (missing)' % source})
    out.append({'path': 'metrics.txt', 'size': None, 'source': p['metrics_url']})
    for member in ('health', 'ready', 'system-info', 'modes', 'executions-active'):
        out.append({'path': 'state/%s.json' % member, 'size': None, 'source': p['api_url']})
    if p.get('ipfs_api_url'):
        out.append({'path': 'state/ipfs.json', 'size': None, 'source': p['ipfs_api_url']})
    out.append({'path': 'state/db.json', 'size': None, 'source': integrity.db_file(p['data_dir'])})
    out.append({'path': 'changes/recent.json', 'size': None, 'source': 'config/env/node backups, release history, files'})
    forensics = None
    if p['mode'] == 'forensics':
        files = total = 0
        for dummy, root in evidence_dirs(p):
            for top, dirs, names in os.walk(root):
                for name in names:
                    try:
                        st = os.lstat(os.path.join(top, name))
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        files += 1
                        total += st.st_size
        forensics = {'files_hashed': files, 'bytes_hashed': total}
        out.append({'path': 'forensics/hashes.sha256', 'size': None, 'source': '%d files, %d bytes' % (files, total)})
        out.append({'path': 'forensics/stat.json', 'size': None, 'source': 'lstat of every entry'})
    out.append({'path': MANIFEST, 'size': None, 'source': COLLECTOR})
    return out, forensics


def _tarinfo(name, size, mtime, directory=False):
    info = tarfile.TarInfo(name)
    info.mtime = int(mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ''
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o700
    else:
        info.type = tarfile.REGTYPE
        info.mode = 0o600
        info.size = size
    return info


def write_archive(dest, name, collector):
    """Write the archive under a temporary name in dest, fsync, rename into place. Return (path, sha256, manifest)."""
    final = archive_path(dest, name)
    manifest = collector.manifest()
    manifest_bytes = collector.scrub(_json_bytes(manifest))
    mtime = _epoch(collector.now)
    fd, tmp = tempfile.mkstemp(prefix='.%s.tmp-' % (name + ARCHIVE_SUFFIX), dir=dest)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, 'wb') as raw:
            with tarfile.open(fileobj=raw, mode='w:gz') as tar:
                tar.addfile(_tarinfo(name, 0, mtime, directory=True))
                for member in collector.members:
                    info = _tarinfo('%s/%s' % (name, member.path), member.size, mtime)
                    if member.data is not None:
                        tar.addfile(info, io.BytesIO(member.data))
                    else:
                        member.spool.seek(0)
                        tar.addfile(info, member.spool)
                tar.addfile(_tarinfo('%s/%s' % (name, MANIFEST), len(manifest_bytes), mtime), io.BytesIO(manifest_bytes))
            raw.flush()
            os.fsync(raw.fileno())
        os.rename(tmp, final)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(dest)
    return final, backup.sha256_file(final), manifest


def read_manifest(path, name):
    """The manifest of an existing archive; raise DiagnosticsError when it cannot be read."""
    try:
        with tarfile.open(path, 'r:gz') as tar:
            handle = tar.extractfile('%s/%s' % (name, MANIFEST))
            if handle is None:
                raise KeyError(MANIFEST)
            return json.loads(handle.read().decode('utf-8'))
    except (IOError, OSError, KeyError, ValueError, tarfile.TarError, EOFError) as exc:
        raise DiagnosticsError('%s exists but its %s/%s cannot be read (%s); set force: true to collect again, or choose '
                               'another name' % (path, name, MANIFEST, exc))


def summary(manifest):
    """The manifest summary returned by the module (counts, bytes, missing)."""
    members = manifest.get('members') or []
    return {
        'name': manifest.get('name'),
        'created_at': manifest.get('created_at'),
        'node_id': manifest.get('node_id'),
        'mode': manifest.get('mode'),
        'since': manifest.get('since'),
        'collector_version': manifest.get('collector_version'),
        'duration_seconds': manifest.get('duration_seconds'),
        'member_count': len(members) + 1,
        'bytes': sum(m.get('size') or 0 for m in members),
        'missing': manifest.get('missing') or [],
        'state_db_access': manifest.get('state_db_access'),
        'forensics': manifest.get('forensics'),
    }


def collect(p, now):
    """Create the archive. Return (path, sha256, manifest). The dest dir is created 0700 when missing."""
    try:
        ensure_private_dir(p['dest'], what='dest dir', option='dest')
    except FilesError as exc:
        raise DiagnosticsError(str(exc))
    workdir = tempfile.mkdtemp(prefix='.%s.work-' % p['name'], dir=p['dest'])
    collector = Collector(p, now, workdir)
    try:
        collector.collect()
        return write_archive(p['dest'], p['name'], collector)
    finally:
        collector.close()
        shutil.rmtree(workdir, ignore_errors=True)
