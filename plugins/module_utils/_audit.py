# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: security audit of a Qflow node's files. May change without notice.

Findings carry paths, modes, key names and ages, never a secret value.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat

from ansible_collections.qflow.ops.plugins.module_utils import _config as config
from ansible_collections.qflow.ops.plugins.module_utils import _secret as secret

SEVERITIES = ('high', 'medium', 'low')


def finding(fid, severity, path, message):
    return {'id': fid, 'severity': severity, 'path': path, 'message': message}


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def audit_modes(env_path, config_path, data_dir, backup_dir):
    out = []
    checks = (
        (env_path, 0o077, 'high', 'env_file_mode', 'the env file holds the JWT secret and encryption key'),
        (config_path, 0o022, 'high', 'config_file_mode', 'the config file must not be writable by group or others'),
        (data_dir, 0o007, 'medium', 'data_dir_mode', 'the state database must not be open to others'),
        (backup_dir, 0o077, 'high', 'backup_dir_mode', 'backups hold the state and may hold the env file'),
    )
    for path, forbidden, severity, fid, why in checks:
        if not path:
            continue
        if not os.path.exists(path):
            out.append(finding(fid, 'low' if fid == 'backup_dir_mode' else 'high', path, 'does not exist'))
            continue
        mode = _mode(path)
        if mode & forbidden:
            out.append(finding(fid, severity, path, 'mode %04o gives %s; %s (expected no bits in %04o)'
                               % (mode, 'others access' if mode & 0o007 else 'the group access', why, forbidden)))
    return out


def audit_config(config_path, require_tls):
    out = []
    raw = config.read_file(config_path)
    if raw is None:
        return [finding('config_missing', 'high', config_path, 'does not exist')]
    try:
        doc = config.parse(raw.decode('utf-8'), config_path)
    except (config.ConfigError, UnicodeDecodeError) as exc:
        return [finding('config_unparsable', 'high', config_path, str(exc))]
    errors = config.validate(doc)
    if errors:
        out.append(finding('config_invalid', 'medium', config_path, '%d schema problem(s): %s'
                           % (len(errors), '; '.join(errors[:3]))))
    q = doc.get(config.ROOT) if isinstance(doc, dict) else None
    q = q if isinstance(q, dict) else {}
    sec = q.get('security') if isinstance(q.get('security'), dict) else {}
    net = q.get('networking') if isinstance(q.get('networking'), dict) else {}
    if sec.get('enableAuthentication') is False:
        out.append(finding('authentication_disabled', 'high', config_path, 'qflow.security.enableAuthentication is false'))
    for dotted in ('security.jwtSecret', 'security.jwt.secret'):
        value, found = config._get(q, dotted.split('.'))
        if found and value not in (None, ''):
            out.append(finding('secret_in_config', 'high', config_path,
                               'qflow.%s holds a secret in the config file; keep secrets in the env file' % dotted))
    hours = sec.get('jwtExpirationHours')
    if isinstance(hours, int) and hours > 24:
        out.append(finding('long_token_lifetime', 'medium', config_path,
                           'qflow.security.jwtExpirationHours is %d (more than 24)' % hours))
    if net.get('enableTLS') is not True:
        out.append(finding('tls_disabled', 'high' if require_tls else 'medium', config_path,
                           'qflow.networking.enableTLS is not true: the API answers in clear text'))
    return out


def audit_secrets(env_path, max_age_seconds, min_length, now):
    out = []
    try:
        with open(env_path, 'rb') as handle:
            text = handle.read().decode('utf-8')
    except (IOError, OSError, UnicodeDecodeError) as exc:
        return [finding('env_unreadable', 'high', env_path, 'cannot read the env file: %s' % exc)]
    dummy, values = secret.parse_env(text)
    meta = secret.load_meta(secret.meta_path(env_path))
    ages = {}
    for name in secret.SECRET_NAMES:
        value = values.get(name)
        if not value:
            out.append(finding('secret_missing', 'high', env_path, '%s is not set' % name))
            continue
        if len(value) < min_length:
            out.append(finding('secret_short', 'high', env_path, '%s is %d characters (at least %d)'
                               % (name, len(value), min_length)))
        age = secret._age_seconds(meta.get(name), value, now)
        ages[name] = None if age is None else round(age / 86400.0, 1)
        if age is None:
            out.append(finding('secret_age_unknown', 'low', env_path,
                               '%s has no rotation record (%s); rotate it with qflow.ops.secret to start one'
                               % (name, secret.meta_path(env_path))))
        elif age > max_age_seconds:
            out.append(finding('secret_too_old', 'high', env_path, '%s was rotated %s ago (more than %d days)'
                               % (name, secret.human_age(age), max_age_seconds // 86400)))
    return out, ages


def summary(findings):
    counts = dict((s, 0) for s in SEVERITIES)
    for f in findings:
        counts[f['severity']] += 1
    return counts
