# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: durations and timestamps. May change without notice."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import re

_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}
_DURATION_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$')


def parse_duration(value):
    """Return seconds for '90', '90s', '15m', '24h', '7d', '2w'. Raise ValueError with a clear message."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError('duration must not be negative, got %r' % (value,))
        return float(value)
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError("invalid duration %r: use a number with an optional unit s, m, h, d or w (e.g. '24h')" % (value,))
    return float(match.group(1)) * _UNITS[match.group(2) or 's']


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(dt):
    """ISO 8601 UTC with millisecond precision and a Z suffix."""
    return dt.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (dt.microsecond // 1000)


def parse_iso(text):
    """Parse an ISO 8601 timestamp (Z or offset, optional fraction of any length). Return an aware datetime."""
    text = str(text).strip()
    if text.endswith('Z') or text.endswith('z'):
        text = text[:-1] + '+00:00'
    match = re.match(r'^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(.*)$', text)
    if match:
        frac = (match.group(2) or '')[:7].ljust(7, '0') if match.group(2) else ''
        text = match.group(1) + frac + match.group(3)
    dt = datetime.datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt
