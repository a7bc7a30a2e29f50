# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: schema, validation, apply and rollback engine of qflow.ops.config.

May change without notice. Runs on the target with the Python standard library and PyYAML.

The schema holds every key that Qflow's docs give for ``qflow-config.yaml`` (research notes §1.4), under the
root key ``qflow:``. Every key is optional; unknown keys are errors. Error messages start with the key path,
for example ``qflow.engine.maxConcurrentFlows: expected an integer from 1 to 100000, got 'lots'``.

Backups of the config file are ``<backup_dir>/qflow-config.<id>.yaml`` (mode 0600) where ``<id>`` is
``<YYYYmmddTHHMMSSZ>`` (UTC), with ``-2``, ``-3``... appended when that second is already taken.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import difflib
import json
import math
import os
import re
import traceback

from ansible_collections.qflow.ops.plugins.module_utils._files import FilesError, ensure_private_dir, fsync_dir, write_atomic
from ansible_collections.qflow.ops.plugins.module_utils._time import utcnow

try:
    import yaml
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the target
    yaml = None
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()

ROOT = 'qflow'
MASK = '********'
BACKUP_PREFIX = 'qflow-config.'
BACKUP_SUFFIX = '.yaml'
STAMP_FORMAT = '%Y%m%dT%H%M%SZ'
BACKUP_ID_RE = re.compile(r'^(\d{8}T\d{6}Z)(?:-(\d+))?$')
NEW_FILE_MODE = 0o640
SECRET_PATHS = (('security', 'jwt', 'secret'), ('security', 'jwtSecret'))
LOG_LEVELS = ('debug', 'info', 'warn', 'error')
WASM_RUNTIMES = ('wasmtime', 'wasmer', 'wasmedge', 'wasm3')


class ConfigError(Exception):
    """A failure with a message meant for the operator (cause + what to do next)."""


class OwnerError(ConfigError):
    """The new file is in place but its owner could not be restored."""


# ---------------------------------------------------------------------------------------------
# value display

def show(value, secret=False):
    """A value as it appears in an error message (YAML-like; secrets never shown)."""
    if secret:
        return 'a hidden value' if value is not None else 'null'
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, dict):
        return 'a mapping'
    if isinstance(value, list):
        return 'a list'
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + '...'
        return "'%s'" % text
    return str(value)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not (isinstance(value, float) and (math.isnan(value) or math.isinf(value)))


def _num(value):
    return ('%g' % value) if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------------------
# schema types

class Int(object):
    def __init__(self, lo=None, hi=None):
        self.lo, self.hi = lo, hi

    def describe(self):
        if self.lo is not None and self.hi is not None:
            return 'an integer from %s to %s' % (_num(self.lo), _num(self.hi))
        if self.lo is not None:
            return 'an integer >= %s' % _num(self.lo)
        return 'an integer'

    def ok(self, value):
        return _is_int(value) and (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)


class Float(Int):
    def describe(self):
        return Int.describe(self).replace('an integer', 'a number')

    def ok(self, value):
        return _is_number(value) and (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)


class Bool(object):
    def describe(self):
        return 'a boolean (true or false)'

    def ok(self, value):
        return isinstance(value, bool)


class Str(object):
    def __init__(self, choices=None, pattern=None, what=None, secret=False, numbers=False):
        self.choices = choices
        self.pattern = re.compile(pattern) if pattern else None
        self.what = what
        self.secret = secret
        self.numbers = numbers  # choices written as unquoted YAML numbers (tlsMinVersion: 1.2) are accepted

    def describe(self):
        if self.choices:
            return 'one of %s' % ', '.join(self.choices)
        return self.what or 'a non-empty string'

    def ok(self, value):
        if self.numbers and _is_number(value):
            value = _num(value)
        if not isinstance(value, str) or not value.strip():
            return False
        if self.choices and value not in self.choices:
            return False
        return not (self.pattern and not self.pattern.match(value))


class Size(Str):
    """'100MB' style sizes (the reference node reads B, K, KB, M, MB, G, GB) or a number of bytes."""

    def __init__(self):
        Str.__init__(self, pattern=r'^\s*\d+(\.\d+)?\s*([KMG]B?|B)?\s*$',
                     what='a size such as 100MB (units B, KB, MB, GB) or a number of bytes >= 1')

    def ok(self, value):
        if _is_int(value):
            return value >= 1
        return Str.ok(self, value.upper() if isinstance(value, str) else value)


class Quantity(Str):
    """Kubernetes quantities: 4000m, 4, 8Gi, 512M."""

    def __init__(self):
        Str.__init__(self, pattern=r'^\d+(\.\d+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$',
                     what='a Kubernetes quantity such as 4000m, 4 or 8Gi')

    def ok(self, value):
        if _is_number(value):
            return value > 0
        return Str.ok(self, value)


class ListOf(object):
    def __init__(self, item, what):
        self.item = item
        self.what = what

    def describe(self):
        return self.what


class Section(object):
    def __init__(self, **children):
        self.children = children

    def describe(self):
        return 'a mapping'


def _port():
    return Int(1, 65535)


def _ms(lo=1):
    return Int(lo, 86400000)


URL = dict(pattern=r'^https?://[^\s/]+\S*$', what='an http:// or https:// URL')

SCHEMA = Section(**{ROOT: Section(
    engine=Section(
        maxConcurrentFlows=Int(1, 100000),
        defaultTimeout=_ms(),
        checkpointInterval=_ms(),
        enableDistributedExecution=Bool(),
        maxMemoryMB=Int(64, 1048576),
        gcThresholdMB=Int(1, 1048576),
        maxCpuCores=Int(1, 1024),
        cpuThrottleThreshold=Int(1, 100),
        gcInterval=_ms(),
        gcThreshold=Int(1, 100),
        workerThreads=Int(1, 1024),
        cache=Section(enabled=Bool(), maxFlows=Int(0, 10000000), ttlSeconds=Int(0, 31536000), preloadPopular=Bool()),
    ),
    validation=Section(
        enablePipeline=Bool(),
        timeoutPerLayer=Int(100, 3600000),
        retryAttempts=Int(0, 100),
        enableCache=Bool(),
        cacheExpirationMs=Int(0, 31536000000),
        cache=Section(enabled=Bool(), maxSize=Int(0, 100000000), ttlSeconds=Int(0, 31536000), compressionEnabled=Bool()),
    ),
    sandbox=Section(
        wasmRuntime=Str(choices=WASM_RUNTIMES),
        maxMemoryMB=Int(1, 1048576),
        maxExecutionTimeMs=_ms(),
        allowedModules=ListOf(Str(), 'a list of module names'),
        enableNetworkAccess=Bool(),
        memoryLimitPerFlow=Int(1, 1048576),
        maxCpuTime=_ms(),
        cpuLimitPerFlow=Int(1, 1000000),
    ),
    networking=Section(
        libp2pPort=_port(),
        apiPort=_port(),
        metricsPort=_port(),
        enableTLS=Bool(),
        tlsCertPath=Str(),
        tlsKeyPath=Str(),
        tlsMinVersion=Str(choices=('1.2', '1.3'), numbers=True),
        enableRelay=Bool(),
        enableAutoRelay=Bool(),
        bootstrapPeers=ListOf(Str(pattern=r'^/\S+$', what='a multiaddr (a string starting with /)'), 'a list of multiaddrs'),
        connectionPoolSize=Int(1, 100000),
        keepAliveTimeout=_ms(0),
    ),
    nodeSelection=Section(preferLowLatency=Bool(), maxLatencyMs=Int(1, 3600000)),
    storage=Section(ipfsApiUrl=Str(**URL), enableEncryption=Bool(), compressionLevel=Int(0, 9)),
    security=Section(
        enableAuthentication=Bool(),
        jwtExpirationHours=Int(1, 8760),
        enableRateLimiting=Bool(),
        maxRequestsPerMinute=Int(1, 1000000),
        jwtSecret=Str(secret=True),
        jwt=Section(secret=Str(secret=True), expirationHours=Int(1, 8760), issuer=Str(), audience=Str()),
        squid=Section(serviceUrl=Str(**URL), enableSubIdentities=Bool(), requireSignatures=Bool()),
        auditLogging=Section(enabled=Bool(), logLevel=Str(choices=LOG_LEVELS), includePayloads=Bool(), retentionDays=Int(1, 36500)),
    ),
    monitoring=Section(
        enableMetrics=Bool(),
        enableTracing=Bool(),
        enableLogging=Bool(),
        logLevel=Str(choices=LOG_LEVELS),
        metricsInterval=Int(100, 86400000),
        enableDetailedMetrics=Bool(),
        samplingRate=Float(0, 1),
    ),
    logging=Section(level=Str(choices=LOG_LEVELS), maxFileSize=Size(), maxFiles=Int(1, 1000), enableRotation=Bool(), enableCompression=Bool()),
    dao=Section(enableSubnets=Bool(), defaultSubnet=Str(), enableGovernance=Bool()),
    resources=Section(cpu=Quantity(), memory=Quantity()),
)})


def known_keys():
    """Every leaf key path relative to ``qflow.`` (for docs and tests)."""
    out = []

    def walk(section, prefix):
        for name, spec in section.children.items():
            if isinstance(spec, Section):
                walk(spec, prefix + name + '.')
            else:
                out.append(prefix + name)
    walk(SCHEMA.children[ROOT], '')
    return out


# ---------------------------------------------------------------------------------------------
# validation

def _join(path, key):
    return '%s.%s' % (path, key) if path else str(key)


def _unknown(path, key, known):
    name = str(key)
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
    if not match:
        match = [k for k in known if k.lower() == name.lower()]
    if match:
        return '%s: unknown key (did you mean %s?)' % (_join(path, name), match[0])
    return '%s: unknown key (known keys here: %s)' % (_join(path, name), ', '.join(known))


def _check(spec, value, path, errors):
    if isinstance(spec, Section):
        if not isinstance(value, dict):
            errors.append('%s: expected a mapping, got %s' % (path, show(value)))
            return
        known = list(spec.children)
        for key, child in value.items():
            if key not in spec.children:
                errors.append(_unknown(path, key, known))
            else:
                _check(spec.children[key], child, _join(path, key), errors)
    elif isinstance(spec, ListOf):
        if not isinstance(value, list):
            errors.append('%s: expected %s, got %s' % (path, spec.describe(), show(value)))
            return
        for index, item in enumerate(value):
            _check(spec.item, item, '%s[%d]' % (path, index), errors)
    elif not spec.ok(value):
        errors.append('%s: expected %s, got %s' % (path, spec.describe(), show(value, getattr(spec, 'secret', False))))


def validate(doc):
    """Return the list of errors of a parsed config document (empty when valid), in document order."""
    errors = []
    if doc is None:
        return ['(document): the file is empty; expected a mapping with the root key %s' % ROOT]
    if not isinstance(doc, dict):
        return ['(document): expected a mapping with the root key %s, got %s' % (ROOT, show(doc))]
    if ROOT not in doc:
        errors.append('%s: missing; the document must have the root key %s' % (ROOT, ROOT))
    _check(SCHEMA, doc, '', errors)
    return errors


# ---------------------------------------------------------------------------------------------
# documents

def parse(text, label):
    """Parse YAML text; raise ConfigError naming label."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError('%s does not parse as YAML: %s' % (label, yaml_problem(exc)))


def yaml_problem(exc):
    """The parser's problem and position, without the snippet of the file (it may hold a secret)."""
    problem = getattr(exc, 'problem', None) or exc.__class__.__name__
    context = getattr(exc, 'context', None)
    mark = getattr(exc, 'problem_mark', None) or getattr(exc, 'context_mark', None)
    text = '%s %s' % (context, problem) if context else problem
    if mark is not None:
        text += ' at line %d, column %d' % (mark.line + 1, mark.column + 1)
    return text


def dump(doc):
    """The YAML text written for a document (key order kept, block style)."""
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False, allow_unicode=True, width=1000)


def read_file(path):
    """Return the bytes of path, or None when it does not exist."""
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        if not os.path.exists(path):
            return None
        raise ConfigError('cannot read %s: %s; check permissions (become: true)' % (path, exc))


def _typed_keys(doc):
    if isinstance(doc, dict):
        return dict(('%s:%s' % (type(k).__name__, k), _typed_keys(v)) for k, v in doc.items())
    if isinstance(doc, list):
        return [_typed_keys(v) for v in doc]
    return doc


def canonical(doc):
    """Type-aware canonical form: 1, 1.0 and true differ (keys too)."""
    return json.dumps(_typed_keys(doc), sort_keys=True, default=repr)


def same(a, b):
    return canonical(a) == canonical(b)


def _get(doc, path):
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None, False
        doc = doc[key]
    return doc, True


def secret_values(doc):
    """The values of the secret keys present in doc (strings, for no_log)."""
    out = []
    if isinstance(doc, dict):
        for path in SECRET_PATHS:
            value, found = _get(doc.get(ROOT), path)
            if found and value not in (None, ''):
                out.append(value if isinstance(value, str) else str(value))
    return out


def masked(doc):
    """A deep copy of doc with the secret values replaced by ********."""
    doc = copy.deepcopy(doc)
    if isinstance(doc, dict):
        for path in SECRET_PATHS:
            parent, found = _get(doc.get(ROOT), path[:-1])
            if found and isinstance(parent, dict) and path[-1] in parent and parent[path[-1]] not in (None, ''):
                parent[path[-1]] = MASK
    return doc


def display_text(doc):
    """The text shown in a diff for a document: secrets masked."""
    if doc is None:
        return ''
    return dump(masked(doc))


def expand_settings(settings):
    """Turn {'engine.maxConcurrentFlows': 200} into a nested merge patch. Raise ConfigError for bad keys."""
    patch = {}
    bad = []
    for key, value in settings.items():
        parts = str(key).split('.')
        if parts and parts[0] == ROOT and len(parts) > 1:
            parts = parts[1:]
        if not all(part.strip() for part in parts):
            bad.append('settings key %r: empty path segment; use dotted keys such as engine.maxConcurrentFlows' % (key,))
            continue
        node = patch
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if isinstance(node.get(parts[-1]), dict) and isinstance(value, dict):
            merge_into(node[parts[-1]], value)
        else:
            node[parts[-1]] = copy.deepcopy(value)
    if bad:
        raise ConfigError('; '.join(bad))
    return patch


def merge_into(target, patch):
    """JSON merge patch (RFC 7386) applied in place: mappings merge, null removes a key, other values replace."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            if not isinstance(target.get(key), dict):
                target[key] = {}
            merge_into(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def apply_settings(doc, settings):
    """The current document with the settings (dotted keys relative to qflow.) merged in."""
    new = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    if not isinstance(new.get(ROOT), dict):
        new[ROOT] = {}
    merge_into(new[ROOT], expand_settings(settings))
    return new


def _leaves(doc, prefix, out):
    """Leaf paths -> values; lists are leaves, empty mappings are not."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            _leaves(value, _join(prefix, key), out)
    else:
        out[prefix] = doc
    return out


def changed_keys(before, after):
    """Dotted paths (relative to qflow.) whose value differs, was added or removed; after's order, then removals."""
    old = _leaves(before.get(ROOT) if isinstance(before, dict) else None, '', {})
    new = _leaves(after.get(ROOT) if isinstance(after, dict) else None, '', {})
    old.pop('', None)
    new.pop('', None)
    out = [k for k, v in new.items() if k not in old or not same(old[k], v)]
    out += [k for k in old if k not in new]
    return out


# ---------------------------------------------------------------------------------------------
# backups

def backup_name(backup_id):
    return BACKUP_PREFIX + backup_id + BACKUP_SUFFIX


def _id_key(backup_id):
    match = BACKUP_ID_RE.match(backup_id)
    return (match.group(1), int(match.group(2) or 1))


def list_backups(backup_dir):
    """Backup ids in backup_dir, oldest first."""
    if not os.path.isdir(backup_dir):
        return []
    ids = []
    for name in os.listdir(backup_dir):
        if name.startswith(BACKUP_PREFIX) and name.endswith(BACKUP_SUFFIX):
            candidate = name[len(BACKUP_PREFIX):-len(BACKUP_SUFFIX)]
            if BACKUP_ID_RE.match(candidate) and os.path.isfile(os.path.join(backup_dir, name)):
                ids.append(candidate)
    return sorted(ids, key=_id_key)


def new_backup_id(backup_dir, now=None):
    """The next id: the UTC second, with -N above every id of that second already present (ids sort by age)."""
    base = (now or utcnow()).strftime(STAMP_FORMAT)
    taken = [_id_key(i)[1] for i in list_backups(backup_dir) if _id_key(i)[0] == base]
    counter = max(taken) + 1 if taken else 1
    candidate = base if counter == 1 else '%s-%d' % (base, counter)
    while os.path.lexists(os.path.join(backup_dir, backup_name(candidate))):
        counter += 1
        candidate = '%s-%d' % (base, counter)
    return candidate


def prune_plan(ids, keep, protect=()):
    """The ids removed to keep the newest `keep` (0 keeps all); protected ids are never removed."""
    if not keep or len(ids) <= keep:
        return []
    return [i for i in ids[:len(ids) - keep] if i not in protect]


def normalize_backup_id(value):
    value = (value or '').strip()
    if value.startswith(BACKUP_PREFIX) and value.endswith(BACKUP_SUFFIX):
        value = value[len(BACKUP_PREFIX):-len(BACKUP_SUFFIX)]
    return value


def _ensure_dir(backup_dir):
    try:
        ensure_private_dir(backup_dir)
    except FilesError as exc:
        raise ConfigError(str(exc))


def write_backup(backup_dir, data, now=None):
    """Write data as a new backup (mode 0600, never overwriting). Return its id."""
    _ensure_dir(backup_dir)
    for dummy in range(100):
        backup_id = new_backup_id(backup_dir, now)
        path = os.path.join(backup_dir, backup_name(backup_id))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            if os.path.lexists(path):
                continue
            raise ConfigError('cannot write the backup %s: %s; check the permissions of %s' % (path, exc, backup_dir))
        try:
            with os.fdopen(fd, 'wb') as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(path, 0o600)
        except (IOError, OSError) as exc:
            _remove_quietly(path)
            raise ConfigError('cannot write the backup %s: %s; nothing was changed' % (path, exc))
        fsync_dir(backup_dir)
        return backup_id
    raise ConfigError('cannot find a free backup name in %s' % backup_dir)  # pragma: no cover


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def remove_backups(backup_dir, ids):
    for backup_id in ids:
        _remove_quietly(os.path.join(backup_dir, backup_name(backup_id)))


# ---------------------------------------------------------------------------------------------
# planning and applying

def describe_invalid(path, errors, preexisting):
    head = '%s: the resulting config is invalid (%d error%s), nothing was written' % (
        path, len(errors), '' if len(errors) == 1 else 's')
    if preexisting:
        head += ' (%d of them already in the current file)' % len(preexisting)
    return head + ': ' + '; '.join(errors)


def load_current(path):
    """Return (bytes or None, doc or None, parse_error or None)."""
    raw = read_file(path)
    if raw is None:
        return None, None, None
    try:
        return raw, parse(raw, path), None
    except ConfigError as exc:
        return raw, None, str(exc)


def plan_target(path, settings=None, content=None):
    """Compute the target document for settings/content. Return a dict:
    raw, current (doc), target (doc), errors (of target), preexisting (errors also in current)."""
    raw, current, parse_error = load_current(path)
    if settings is not None:
        if raw is None:
            raise ConfigError('%s does not exist: settings are merged into an existing config file; create it first '
                              'with content, or check path' % path)
        if parse_error:
            raise ConfigError('%s; fix the file or replace it with content (a rollback also works)' % parse_error)
        target = apply_settings(current, settings)
    else:
        target = copy.deepcopy(content)
    errors = validate(target)
    old_errors = set(validate(current)) if raw is not None and not parse_error else set()
    return dict(raw=raw, current=current, parse_error=parse_error, target=target, errors=errors,
                preexisting=[e for e in errors if e in old_errors])


def _stat(path):
    try:
        return os.stat(path)
    except OSError:
        return None


def write_config(path, data, old_stat):
    """Write the config atomically, keeping the old file's mode and owner (mode 0640 for a new file)."""
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        raise ConfigError('the directory of %s does not exist; create it first' % path)
    mode = (old_stat.st_mode & 0o7777) if old_stat else NEW_FILE_MODE
    try:
        write_atomic(path, data, mode=mode)
    except (IOError, OSError) as exc:
        raise ConfigError('cannot write %s: %s; check permissions (become: true)' % (path, exc))
    if old_stat is None:
        return
    try:
        st = os.stat(path)
        if (st.st_uid, st.st_gid) != (old_stat.st_uid, old_stat.st_gid):
            os.chown(path, old_stat.st_uid, old_stat.st_gid)
            os.chmod(path, mode)  # chown may clear set-id bits
    except (IOError, OSError) as exc:
        raise OwnerError('%s was written but its owner could not be set back to uid %d, gid %d: %s; fix it with '
                         'ansible.builtin.file or run with become: true' % (path, old_stat.st_uid, old_stat.st_gid, exc))


def _diff(path, before_doc, after_doc, before_note=None):
    return {
        'before': before_note if before_note is not None else display_text(before_doc),
        'after': display_text(after_doc),
        'before_header': path,
        'after_header': path,
    }


def apply_present(path, backup_dir, keep, plan, check_mode=False, now=None):
    """Write plan['target'] to path with a backup of the old file. plan comes from plan_target and must be valid."""
    now = now or utcnow()
    raw, current, target = plan['raw'], plan['current'], plan['target']
    note = None
    if plan['parse_error']:
        note = '# %s\n' % plan['parse_error']
    elif raw is None:
        note = ''
    result = dict(changed=False, path=path, backup_id=None, backup_path=None, removed_backups=[], changed_keys=[])
    if raw is not None and not plan['parse_error'] and same(current, target):
        result['diff'] = _diff(path, current, target)
        result['msg'] = '%s already has the requested settings' % path
        return result
    result['changed'] = True
    result['changed_keys'] = changed_keys(current, target)
    result['diff'] = _diff(path, current, target, note)
    data = dump(target).encode('utf-8')
    ids = list_backups(backup_dir)
    if raw is not None:
        backup_id = new_backup_id(backup_dir, now) if check_mode else None
        if not check_mode:
            backup_id = write_backup(backup_dir, raw, now)
        ids = sorted(ids + [backup_id], key=_id_key)
        result['backup_id'] = backup_id
        result['backup_path'] = os.path.join(backup_dir, backup_name(backup_id))
    result['removed_backups'] = prune_plan(ids, keep, protect=(result['backup_id'],))
    verb = 'would update' if check_mode else ('updated' if raw is not None else 'created')
    result['msg'] = '%s %s (%d key%s changed%s)' % (
        verb, path, len(result['changed_keys']), '' if len(result['changed_keys']) == 1 else 's',
        ', backup %s' % result['backup_id'] if result['backup_id'] else '')
    if check_mode:
        return result
    try:
        write_config(path, data, _stat(path))
    except OwnerError:
        raise
    except ConfigError as exc:
        raise ConfigError('%s (the old file is unchanged%s)' % (exc, '; backup %s was kept' % result['backup_id'] if result['backup_id'] else ''))
    remove_backups(backup_dir, result['removed_backups'])
    return result


def find_backup(backup_dir, backup_id):
    """Return the path of backup_id or raise ConfigError naming it and the available ids."""
    wanted = normalize_backup_id(backup_id)
    ids = list_backups(backup_dir)
    if BACKUP_ID_RE.match(wanted) and wanted in ids:
        return os.path.join(backup_dir, backup_name(wanted))
    if ids:
        available = 'available: %s' % ', '.join(reversed(ids))
    else:
        available = 'there are no backups in %s' % backup_dir
    if not BACKUP_ID_RE.match(wanted):
        return _raise('backup_id %r is not a config backup id (YYYYmmddTHHMMSSZ, as returned in backup_id); %s' % (backup_id, available))
    return _raise('backup %s not found in %s; %s' % (wanted, backup_dir, available))


def _raise(msg):
    raise ConfigError(msg)


def _parsed_or_none(raw, label):
    if raw is None:
        return None, ''
    try:
        return parse(raw, label), None
    except ConfigError as exc:
        return None, '# %s\n' % exc


def rollback(path, backup_dir, backup_id, keep, check_mode=False, now=None):
    """Restore a backup byte for byte; back up the current file first. Return the result dict."""
    now = now or utcnow()
    source = find_backup(backup_dir, backup_id)
    wanted = normalize_backup_id(backup_id)
    restored = read_file(source)
    raw = read_file(path)
    before, before_note = _parsed_or_none(raw, path)
    after, after_note = _parsed_or_none(restored, source)
    result = dict(changed=False, path=path, restored_id=wanted, restored_from=source, backup_id=None, backup_path=None,
                  removed_backups=[], changed_keys=[], secrets=secret_values(before) + secret_values(after))
    result['diff'] = _diff(path, before, after, before_note)
    if after_note:
        result['diff']['after'] = after_note
    result['errors'] = validate(after) if after_note is None else [after_note.strip('# \n')]
    if raw == restored:
        result['msg'] = '%s is already identical to backup %s' % (path, wanted)
        return result
    result['changed'] = True
    result['changed_keys'] = changed_keys(before, after)
    ids = list_backups(backup_dir)
    if raw is not None:
        new_id = new_backup_id(backup_dir, now) if check_mode else write_backup(backup_dir, raw, now)
        ids = sorted(ids + [new_id], key=_id_key)
        result['backup_id'] = new_id
        result['backup_path'] = os.path.join(backup_dir, backup_name(new_id))
    result['removed_backups'] = prune_plan(ids, keep, protect=(result['backup_id'], wanted))
    result['msg'] = '%s %s to backup %s%s' % ('would roll back' if check_mode else 'rolled back', path, wanted,
                                              ' (current file saved as backup %s)' % result['backup_id'] if result['backup_id'] else '')
    if check_mode:
        return result
    try:
        write_config(path, restored, _stat(path))
    except OwnerError:
        raise
    except ConfigError as exc:
        raise ConfigError('%s (the current file is unchanged)' % exc)
    remove_backups(backup_dir, result['removed_backups'])
    return result
