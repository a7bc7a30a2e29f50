# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: read and summarise Qflow JSON-lines logs. May change without notice."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import bz2
import datetime
import gzip
import json
import lzma
import os
import re

from ansible_collections.qflow.ops.plugins.module_utils._time import iso, parse_iso

LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')
LEVEL_RANK = {'trace': -1, 'debug': 0, 'info': 1, 'warn': 2, 'error': 3, 'fatal': 4}
_LEVEL_ALIASES = {'warning': 'warn', 'err': 'error', 'critical': 'fatal', 'crit': 'fatal', 'panic': 'fatal',
                  'information': 'info', 'notice': 'info', 'verbose': 'debug'}
_PINO_LEVELS = {10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal'}
_CORE_KEYS = ('time', 'level', 'component', 'message')

_FILE_RE = re.compile(r'^qflow\.log(?:[.-][0-9A-Za-z_]+)*$')
_OPENERS = {'.gz': gzip.open, '.bz2': bz2.open, '.xz': lzma.open}

# Order matters: the most specific shapes first, plain numbers last.
_NORMALIZERS = [
    (re.compile(r'\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b'), '<uuid>'),
    (re.compile(r'\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?'), '<time>'),
    (re.compile(r'"(?:[^"\\]|\\.)*"'), '"<str>"'),
    (re.compile(r"(?<![A-Za-z0-9])'(?:[^'\\]|\\.)*'"), "'<str>'"),
    (re.compile(r'\bhttps?://[^\s,;)\]]+'), '<url>'),
    (re.compile(r'\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b'), '<ip>'),
    (re.compile(r'\b0x[0-9a-fA-F]+\b'), '<hex>'),
    # ids like step-2, exec-7f3a9c, flow_12, dao.1700000000.abc123: keep the prefix, hide the variable part
    (re.compile(r'\b([A-Za-z][A-Za-z]*)([-_.:])(?=[0-9A-Za-z._-]*\d)[0-9A-Za-z]+(?:[-_.][0-9A-Za-z]+)*\b'), r'\1\2<id>'),
    (re.compile(r'\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b'), '<hex>'),
    (re.compile(r'(?<![\w.])[-+]?\d+(?:\.\d+)?\s?(?:ns|us|\u00b5s|ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)\b'),
     '<duration>'),
    (re.compile(r'(?<![\w<])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?%?(?![\w>])'), '<n>'),
    (re.compile(r'\b\d+[A-Za-z]+\b'), '<n>'),  # sizes like 512MB, counts like 3x
]


class LogDirError(Exception):
    pass


def normalize_message(message):
    """Replace the variable parts of a log message with placeholders so that recurring errors group together."""
    text = message if isinstance(message, str) else json.dumps(message, sort_keys=True)
    for regex, repl in _NORMALIZERS:
        text = regex.sub(repl, text)
    return re.sub(r'\s+', ' ', text).strip()


def normalize_level(level):
    if isinstance(level, bool):
        return 'info'
    if isinstance(level, (int, float)):
        return _PINO_LEVELS.get(int(level), 'info')
    text = str(level or 'info').strip().lower()
    return _LEVEL_ALIASES.get(text, text)


def level_rank(level):
    return LEVEL_RANK.get(level, LEVEL_RANK['info'])


def parse_time(value):
    """ISO 8601 string or epoch seconds / milliseconds. Return an aware datetime or raise ValueError."""
    if isinstance(value, bool):
        raise ValueError('not a time')
    if isinstance(value, (int, float)):
        seconds = value / 1000.0 if value > 1e11 else float(value)
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    if not isinstance(value, str) or not value:
        raise ValueError('not a time')
    return parse_iso(value)


def list_log_files(log_dir):
    """qflow.log and its rotations (qflow.log.1, qflow.log.2.gz, ...), newest first. Raise LogDirError."""
    if not os.path.exists(log_dir):
        raise LogDirError('Log directory %s does not exist. Set log_dir (inventory qflow_log_dir) to the directory '
                          'where the node writes qflow.log (QFLOW_LOG_DIR in the node env file).' % log_dir)
    if not os.path.isdir(log_dir):
        raise LogDirError('log_dir %s is not a directory. Point log_dir at the directory that holds qflow.log.' % log_dir)
    try:
        names = os.listdir(log_dir)
    except OSError as e:
        raise LogDirError('Cannot list log directory %s: %s. Run the task with become: true or as a user that can '
                          'read it.' % (log_dir, e))
    files = []
    for name in names:
        if not _FILE_RE.match(name) or name.endswith(('.zst', '.lz4', '.Z', '.zip', '.lock', '.tmp')):
            continue
        path = os.path.join(log_dir, name)
        if not os.path.isfile(path):
            continue
        try:
            mtime = os.path.getmtime(path)
        except OSError:
            continue
        files.append((mtime, _rotation_index(name), path))
    # newest first: qflow.log, .1, .2, ... (rotation order), then other suffixes (e.g. dates) by mtime
    files.sort(key=lambda f: (f[1], -f[0]))
    return [(path, mtime) for mtime, dummy, path in files]


def _rotation_index(name):
    match = re.match(r'^qflow\.log\.(\d+)', name)
    if match:
        return int(match.group(1))
    return 0 if name == 'qflow.log' else 10 ** 6


def _open(path):
    for suffix, opener in _OPENERS.items():
        if path.endswith(suffix):
            return opener(path, 'rt', encoding='utf-8', errors='replace')
    return open(path, 'r', encoding='utf-8', errors='replace')


def read_records(path):
    """Yield (record dict or None, raw line) for each non-blank line of a log file; None = unparsable."""
    with _open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                yield None, line
                continue
            if not isinstance(obj, dict):
                yield None, line
                continue
            yield obj, line


def summarize(log_dir, since_seconds=86400.0, min_level='warn', components=None, limit=50, max_patterns=20, now=None):
    """Read the logs and build the logs_info result (without changed). Raise LogDirError for an unusable dir."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    cutoff = now - datetime.timedelta(seconds=since_seconds) if since_seconds else None
    min_rank = level_rank(normalize_level(min_level))
    wanted = set(components) if components else None

    counts = dict((level, 0) for level in LEVELS)
    by_component = {}
    entries = []
    patterns = {}
    unparsed = 0
    files_read = []
    files_skipped = []

    for path, mtime in list_log_files(log_dir):
        if cutoff is not None and datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc) < cutoff:
            files_skipped.append(path)  # last written before the window: holds only older entries
            continue
        try:
            for record, raw in read_records(path):
                if record is None:
                    unparsed += 1
                    continue
                try:
                    when = parse_time(record.get('time', record.get('timestamp')))
                except (ValueError, TypeError, OverflowError):
                    unparsed += 1
                    continue
                if cutoff is not None and when < cutoff:
                    continue
                component = record.get('component')
                component = str(component) if component is not None else 'unknown'
                if wanted is not None and component not in wanted:
                    continue
                level = normalize_level(record.get('level'))
                counts[level] = counts.get(level, 0) + 1
                if level_rank(level) < min_rank:
                    continue
                by_component[component] = by_component.get(component, 0) + 1
                message = record.get('message', record.get('msg', ''))
                if not isinstance(message, str):
                    message = json.dumps(message, sort_keys=True)
                entries.append((when, level, component, message, record, path))
                key = (level, component, normalize_message(message))
                pat = patterns.get(key)
                if pat is None:
                    patterns[key] = {'pattern': key[2], 'count': 1, 'level': level, 'component': component,
                                     'first': when, 'last': when, 'example': message}
                else:
                    pat['count'] += 1
                    if when < pat['first']:
                        pat['first'] = when
                    if when >= pat['last']:
                        pat['last'] = when
                        pat['example'] = message
        except (IOError, OSError, EOFError) as e:
            raise LogDirError('Cannot read log file %s: %s. Run the task with become: true or check the file.'
                              % (path, e))
        files_read.append(path)

    entries.sort(key=lambda e: e[0], reverse=True)
    shown = []
    for when, level, component, message, record, path in entries[:max(0, limit)]:
        item = {'time': iso(when), 'level': level, 'component': component, 'message': message,
                'file': os.path.basename(path)}
        extra = dict((k, v) for k, v in record.items() if k not in _CORE_KEYS and k != 'timestamp')
        if extra:
            item['extra'] = extra
        shown.append(item)

    ordered = sorted(patterns.values(), key=lambda p: (-p['count'], -level_rank(p['level']), -_epoch(p['last'])))
    pattern_list = [{'pattern': p['pattern'], 'count': p['count'], 'level': p['level'], 'component': p['component'],
                     'first_seen': iso(p['first']), 'last_seen': iso(p['last']), 'example': p['example']}
                    for p in ordered[:max(0, max_patterns)]]
    return {
        'counts': counts,
        'by_component': by_component,
        'entries': shown,
        'matched': len(entries),
        'patterns': pattern_list,
        'patterns_total': len(patterns),
        'unparsed_lines': unparsed,
        'files': files_read,
        'files_skipped': files_skipped,
        'since': iso(cutoff) if cutoff is not None else None,
    }


def _epoch(dt):
    return (dt - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds()
