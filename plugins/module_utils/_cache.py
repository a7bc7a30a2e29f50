# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: plan and apply Qflow storage cache changes through the REST API. May change without notice.

Routes (contract §3.3, real Qflow): GET /api/v1/cache/stats, GET /api/v1/cache/patterns,
POST /api/v1/cache/invalidate {keys?, tags?} -> {invalidatedCount}, DELETE /api/v1/cache/clear.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

from ansible_collections.qflow.ops.plugins.module_utils._time import parse_iso

STATS_PATH = '/api/v1/cache/stats'
PATTERNS_PATH = '/api/v1/cache/patterns'
INVALIDATE_PATH = '/api/v1/cache/invalidate'
CLEAR_PATH = '/api/v1/cache/clear'


class CacheError(Exception):
    pass


def read_stats(client):
    data = client.get(STATS_PATH)
    if not isinstance(data, dict):
        raise CacheError('Qflow API GET %s answered %r instead of an object with totalEntries. Check that api_url '
                         'points to a Qflow node.' % (STATS_PATH, data))
    return data


def read_patterns(client):
    """The entries listed by GET /api/v1/cache/patterns (list of dicts with at least a key)."""
    data = client.get(PATTERNS_PATH)
    items = data.get('patterns') if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise CacheError('Qflow API GET %s answered %r instead of {patterns: [...]}. Check that api_url points to a '
                         'Qflow node.' % (PATTERNS_PATH, data))
    return [p for p in items if isinstance(p, dict) and p.get('key') is not None]


def entry_count(stats, patterns=None):
    """totalEntries from the stats; the number of listed patterns when the node does not report it."""
    value = stats.get('totalEntries')
    try:
        return int(value)
    except (TypeError, ValueError):
        return len(patterns) if patterns is not None else 0


def listing_complete(stats, patterns):
    """True when the patterns list every cache entry, so that a key missing from it is really absent."""
    return len(patterns) >= entry_count(stats, patterns)


def tags_exposed(patterns):
    """True when every listed entry carries its tags (the real API and the reference node do not)."""
    return bool(patterns) and all(isinstance(p.get('tags'), list) for p in patterns)


def plan_invalidate(stats, patterns, keys, tags):
    """Predict an invalidation by keys and/or tags.

    Return dict(targets=[keys that would go, sorted], known=bool). ``known`` is False when the listing cannot prove
    the outcome (tags the node does not expose, or a listing shorter than totalEntries); ``targets`` then holds only
    what is certain.
    """
    keys = [str(k) for k in keys or []]
    tags = set(str(t) for t in tags or [])
    total = entry_count(stats, patterns)
    present = set(str(p['key']) for p in patterns)
    targets = set(k for k in keys if k in present)
    known = True
    if tags:
        if tags_exposed(patterns):
            targets.update(str(p['key']) for p in patterns if tags & set(str(t) for t in p['tags']))
        elif total > 0:
            known = False
    if keys and len(targets) < len(set(keys)) and not listing_complete(stats, patterns):
        known = False
    if total == 0:
        known = True
        targets = set()
    return dict(targets=sorted(targets), known=known)


def plan_clean(patterns, older_than_seconds, now):
    """Keys whose lastAccess is older than now - older_than_seconds.

    Return dict(targets=[keys, sorted], unknown_age=[keys without a readable lastAccess, sorted], cutoff=datetime).
    """
    cutoff = now - datetime.timedelta(seconds=older_than_seconds)
    targets, unknown = set(), set()
    for p in patterns:
        key = str(p['key'])
        last = p.get('lastAccess')
        try:
            when = parse_iso(last) if last else None
        except (TypeError, ValueError, OverflowError):
            when = None
        if when is None:
            unknown.add(key)
        elif when < cutoff:
            targets.add(key)
    return dict(targets=sorted(targets), unknown_age=sorted(unknown), cutoff=cutoff)


def invalidate(client, keys=None, tags=None):
    """POST the invalidation; return invalidatedCount (int, 0 when the node does not report it)."""
    body = {}
    if keys:
        body['keys'] = list(keys)
    if tags:
        body['tags'] = list(tags)
    data = client.post(INVALIDATE_PATH, body)
    count = data.get('invalidatedCount') if isinstance(data, dict) else None
    try:
        return int(count)
    except (TypeError, ValueError):
        raise CacheError('Qflow API POST %s answered %r without an invalidatedCount; cannot tell what was removed.'
                         % (INVALIDATE_PATH, data))


def clear(client):
    client.delete(CLEAR_PATH)
