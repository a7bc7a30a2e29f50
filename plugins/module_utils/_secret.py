# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: rotate the secrets of a Qflow env file. May change without notice.

Secret values never leave this module except in the plan's ``hide`` list (for ``module.no_log_values``) and in the
bytes written to disk; everything else carries fingerprints only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import re
import secrets
import stat

from ansible_collections.qflow.ops.plugins.module_utils._files import write_atomic
from ansible_collections.qflow.ops.plugins.module_utils._time import iso, parse_iso

SECRET_NAMES = ('QFLOW_JWT_SECRET', 'QFLOW_ENCRYPTION_KEY')
_LINE_RE = re.compile(r'^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(.*?)(\r?\n)?$', re.DOTALL)


class SecretError(Exception):
    pass


def fingerprint(value):
    """'sha256:' + the first 12 hex digits of sha256(value); None for no value."""
    if value is None:
        return None
    return 'sha256:' + hashlib.sha256(value.encode('utf-8')).hexdigest()[:12]


def redacted(value):
    if value is None:
        return '<unset>'
    return '<redacted %s>' % fingerprint(value)


def meta_path(env_path):
    return env_path + '.meta.json'


def _unquote(raw):
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in ('"', "'"):
        return value[1:-1]
    return value


def parse_env(text):
    """Return (lines, values): lines keep their line ends; values maps a key to its last value (unquoted)."""
    lines = text.splitlines(True)
    values = {}
    for line in lines:
        match = _LINE_RE.match(line)
        if match and not line.lstrip().startswith('#'):
            values[match.group(2)] = _unquote(match.group(4))
    return lines, values


def render_env(lines, new_values):
    """Replace the value of every line of a key in new_values (a value of None removes the line); append keys that
    have no line. Return the text."""
    out = []
    seen = set()
    for line in lines:
        match = _LINE_RE.match(line)
        if match and not line.lstrip().startswith('#') and match.group(2) in new_values:
            name = match.group(2)
            seen.add(name)
            if new_values[name] is None:
                continue
            line = match.group(1) + name + match.group(3) + new_values[name] + (match.group(5) or '')
        out.append(line)
    missing = [name for name in new_values if name not in seen and new_values[name] is not None]
    if missing and out and not out[-1].endswith('\n'):
        out[-1] += '\n'
    for name in missing:
        out.append('%s=%s\n' % (name, new_values[name]))
    return ''.join(out)


def load_meta(path):
    """The sidecar {name: {rotated_at, fingerprint}}; {} when missing. A file that does not parse counts as empty."""
    try:
        with open(path, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except (IOError, OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _age_seconds(entry, current_value, now):
    """Age of the current value from the sidecar entry, or None when unknown (no entry, or the value changed since)."""
    if not isinstance(entry, dict) or entry.get('fingerprint') != fingerprint(current_value):
        return None
    try:
        return (now - parse_iso(entry.get('rotated_at'))).total_seconds()
    except (TypeError, ValueError):
        return None


def human_age(seconds):
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return '%dd%02dh' % (days, hours)
    return '%dh%02dm' % (hours, rest // 60)


def generate(length):
    return secrets.token_urlsafe(length)


def previous_name(name):
    """The env key that keeps the value a rotation replaced (the node's grace key)."""
    return name + '_PREVIOUS'


def decide(current, entry, state, min_length, max_age, now, unknown_hint='no record of the last rotation'):
    """Why a secret whose value is ``current`` (None when missing) must change, or None when it stays.

    ``entry`` is the record of its last change, {rotated_at, fingerprint} (the env file's sidecar entry, or the
    annotations of a Kubernetes Secret); a record whose fingerprint is not the current value's means the age is unknown.
    """
    if state == 'present':
        if current is None:
            return 'missing'
        if len(current) < min_length:
            return 'shorter than min_length %d' % min_length
        return None
    age = _age_seconds(entry, current, now) if current is not None else None
    if max_age is not None and age is not None and age < max_age:
        return None
    if current is None:
        return 'missing'
    if max_age is None:
        return 'rotated (no max_age)'
    if age is None:
        return 'age unknown (%s)' % unknown_hint
    return 'older than max_age (%s)' % human_age(age)


def plan(env_path, names, state, length, min_length, max_age, now, check_mode, keep_previous=False):
    """Decide what to change. Never writes.

    Returns a dict: ``changed`` (names to change, in order), ``reasons`` {name: why}, ``fingerprints``
    {name: {before, after}}, ``hide`` (every old and new value), ``text`` (new file text or None),
    ``old_bytes``, ``meta`` (new sidecar content), ``diff``. In check mode no value is generated and the ``after``
    fingerprint of a changing name is None.
    """
    try:
        with open(env_path, 'rb') as handle:
            old_bytes = handle.read()
    except (IOError, OSError) as exc:
        if not os.path.exists(env_path):
            raise SecretError('env file %s does not exist; check env_path (the node reads its secrets from it)' % env_path)
        raise SecretError('cannot read env file %s: %s' % (env_path, exc))
    try:
        text = old_bytes.decode('utf-8')
    except UnicodeDecodeError:
        raise SecretError('env file %s is not UTF-8 text' % env_path)
    lines, values = parse_env(text)
    meta = load_meta(meta_path(env_path))

    hide = [values[name] for name in names if values.get(name)]
    new_values = {}
    reasons = {}
    for name in names:
        reason = decide(values.get(name) or None, meta.get(name), state, min_length, max_age, now,
                        'no matching entry in %s' % meta_path(env_path))
        if reason is None:
            continue
        reasons[name] = reason
        new_values[name] = None if check_mode else generate(length)
    changed = [name for name in names if name in new_values]
    written = dict(new_values)
    if keep_previous and state == 'rotated':
        for name in changed:
            if values.get(name):
                written[previous_name(name)] = values[name]
    elif state == 'rotated':  # no grace: a previous value left by an earlier rotation must stop working too
        for name in changed:
            if values.get(previous_name(name)):
                written[previous_name(name)] = None

    fingerprints = {}
    before_lines, after_lines = [], []
    for name in names:
        before = values.get(name) or None
        after = new_values[name] if name in new_values else before
        if after:
            hide.append(after)
        fingerprints[name] = {'before': fingerprint(before),
                              'after': fingerprint(after) if (after or name not in new_values) else None}
        before_lines.append('%s=%s\n' % (name, redacted(before)))
        after_lines.append('%s=%s\n' % (name, '<new value>' if name in new_values and after is None else redacted(after)))
        prev = previous_name(name)
        if prev in written or values.get(prev):
            hide.extend(v for v in (values.get(prev),) if v)
            before_lines.append('%s=%s\n' % (prev, redacted(values.get(prev) or None)))
            after_lines.append('%s=%s\n' % (prev, redacted(written.get(prev, values.get(prev)) or None)))

    new_meta = dict(meta)
    stamp = iso(now)
    for name in changed:
        new_meta[name] = {'rotated_at': stamp, 'fingerprint': fingerprints[name]['after']}
    return {
        'changed': changed,
        'reasons': reasons,
        'fingerprints': fingerprints,
        'hide': hide,
        'old_bytes': old_bytes,
        'text': render_env(lines, written) if changed and not check_mode else None,
        'meta': new_meta,
        'diff': {'before': ''.join(before_lines), 'after': ''.join(after_lines),
                 'before_header': env_path, 'after_header': env_path},
    }


def backup_name(env_path, now):
    base = '%s.%s.bak' % (env_path, now.strftime('%Y%m%dT%H%M%SZ'))
    candidate, n = base, 1
    while os.path.lexists(candidate):
        candidate = '%s.%s-%d.bak' % (env_path, now.strftime('%Y%m%dT%H%M%SZ'), n)
        n += 1
    return candidate


def _keep_owner(path, st, mode):
    try:
        now = os.stat(path)
        if (now.st_uid, now.st_gid) != (st.st_uid, st.st_gid):
            os.chown(path, st.st_uid, st.st_gid)
            os.chmod(path, mode)
    except (IOError, OSError) as exc:
        raise SecretError('%s was written but its owner could not be set back to uid %d, gid %d: %s; run with become: true'
                          % (path, st.st_uid, st.st_gid, exc))


def file_mode(env_path):
    """The mode to write the env file with: its current mode without any bits for others (at least 0600)."""
    st = os.stat(env_path)
    return (stat.S_IMODE(st.st_mode) & 0o770) | 0o600, st


def apply(env_path, result_plan, backup, now):
    """Write the backup (if asked), the new env file and the sidecar. Return the backup path or None."""
    mode, st = file_mode(env_path)
    backup_file = None
    if backup:
        backup_file = backup_name(env_path, now)
        write_atomic(backup_file, result_plan['old_bytes'], mode=0o600)
        _keep_owner(backup_file, st, 0o600)
    write_atomic(env_path, result_plan['text'].encode('utf-8'), mode=mode)
    _keep_owner(env_path, st, mode)
    meta_file = meta_path(env_path)
    write_atomic(meta_file, (json.dumps(result_plan['meta'], indent=2, sort_keys=True) + '\n').encode('utf-8'), mode=0o600)
    _keep_owner(meta_file, st, 0o600)
    return backup_file
