# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.cache against a stub node whose cache changes on clear and invalidate."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json

from qflow_stub_http import Route, envelope, error_envelope, run_module, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.modules import cache

TOKEN = 'dG9rZW4tdGhhdC1tdXN0LW5ldmVyLWxlYWs='
NOW = datetime.datetime.now(datetime.timezone.utc)
MUTATING = ('POST', 'PUT', 'DELETE')


def ago(days):
    dt = NOW - datetime.timedelta(days=days)
    return dt.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (dt.microsecond // 1000)


class FakeCache(object):
    """The reference node's cache semantics (lab/qflow_lab/node/engine.py) behind the real routes."""

    def __init__(self, entries, expose_tags=False):
        self.entries = dict((e['key'], dict(e)) for e in entries)
        self.expose_tags = expose_tags

    def routes(self):
        return {
            'GET /api/v1/cache/stats': self.stats,
            'GET /api/v1/cache/patterns': self.patterns,
            'POST /api/v1/cache/invalidate': self.invalidate,
            'DELETE /api/v1/cache/clear': self.clear,
        }

    def stats(self, req):
        size = sum(e['size'] for e in self.entries.values())
        return Route(200, envelope({'totalEntries': len(self.entries), 'totalSize': size, 'hitRate': 0.9, 'missRate': 0.1,
                                    'evictionCount': 0, 'memoryUsage': size}))

    def patterns(self, req):
        out = []
        for e in sorted(self.entries.values(), key=lambda e: e['key']):
            item = {'key': e['key'], 'frequency': 3, 'lastAccess': e['lastAccess'], 'accessTimes': [e['lastAccess']],
                    'predictedNextAccess': None}
            if self.expose_tags:
                item['tags'] = list(e['tags'])
            out.append(item)
        return Route(200, envelope({'patterns': out, 'totalPatterns': len(out)}))

    def invalidate(self, req):
        body = json.loads(req['body'] or b'{}')
        keys, tags = body.get('keys') or [], body.get('tags') or []
        victims = [k for k, e in self.entries.items() if (keys and k in keys) or (tags and set(tags) & set(e['tags']))]
        for k in victims:
            del self.entries[k]
        return Route(200, envelope({'message': 'Cache invalidated successfully', 'invalidatedCount': len(victims)}))

    def clear(self, req):
        self.entries.clear()
        return Route(200, envelope({'message': 'Cache cleared successfully'}))


def sample_entries():
    return [
        {'key': 'flow:flow-1', 'tags': ['flow-1', 'flow'], 'size': 1000, 'lastAccess': ago(0.01)},
        {'key': 'context:flow-1', 'tags': ['flow-1', 'context'], 'size': 2000, 'lastAccess': ago(10)},
        {'key': 'ipfs:Qmab01', 'tags': ['flow-2', 'ipfs'], 'size': 3000, 'lastAccess': ago(8)},
        {'key': 'ipfs:Qmab02', 'tags': ['flow-2', 'ipfs'], 'size': 4000, 'lastAccess': ago(1)},
        {'key': 'subnet:dao.public.default', 'tags': ['flow-3', 'subnet'], 'size': 500, 'lastAccess': ago(2)},
    ]


def node(stub_server, expose_tags=False, entries=None):
    fake = FakeCache(sample_entries() if entries is None else entries, expose_tags=expose_tags)
    return fake, stub_server(fake.routes())


def mutations(srv):
    return [(r['method'], r['plain_path']) for r in srv.requests if r['method'] in MUTATING]


def four_steps(srv, args, keys, before, after, warn_in_check=False):
    """check -> real -> check (no change) -> real (no change)."""
    args = dict(args, api_url=srv.url, api_token=TOKEN)

    res, failed = run_module(cache, args, check_mode=True, diff=True)
    assert not failed, res
    assert res['changed'] is True and res['keys'] == keys and res['invalidated_count'] == len(keys)
    assert res['diff'] == {'before': {'entries': before}, 'after': {'entries': after}}
    assert 'stats_after' not in res and res['stats_before']['totalEntries'] == before
    assert mutations(srv) == []
    assert bool(res['_warnings']) is warn_in_check

    res, failed = run_module(cache, args, diff=True)
    assert not failed, res
    assert res['changed'] is True and res['keys'] == keys and res['invalidated_count'] == len(keys)
    assert res['stats_before']['totalEntries'] == before and res['stats_after']['totalEntries'] == after
    assert res['diff'] == {'before': {'entries': before}, 'after': {'entries': after}}
    sent = mutations(srv)
    assert len(sent) == 1

    res, failed = run_module(cache, args, check_mode=True, diff=True)
    assert not failed, res
    assert res['changed'] is False and res['keys'] == [] and res['invalidated_count'] == 0
    assert res['diff'] == {'before': {'entries': after}, 'after': {'entries': after}}
    assert mutations(srv) == sent
    return args, sent


def test_cleared_four_steps(stub_server):
    dummy, srv = node(stub_server)
    keys = sorted(e['key'] for e in sample_entries())
    args, sent = four_steps(srv, {'state': 'cleared'}, keys, 5, 0)
    assert sent == [('DELETE', '/api/v1/cache/clear')]
    res, failed = run_module(cache, args, diff=True)
    assert not failed and res['changed'] is False and res['msg'] == 'the cache is already empty'
    assert res['stats_after'] == res['stats_before']
    assert mutations(srv) == sent


def test_invalidated_by_keys_four_steps(stub_server):
    fake, srv = node(stub_server)
    args = {'state': 'invalidated', 'keys': ['flow:flow-1', 'ipfs:Qmab02', 'ipfs:not-cached']}
    args, sent = four_steps(srv, args, ['flow:flow-1', 'ipfs:Qmab02'], 5, 3)
    assert sent == [('POST', '/api/v1/cache/invalidate')]
    res, failed = run_module(cache, args)
    assert not failed and res['changed'] is False and res['predictable'] is True
    assert mutations(srv) == sent  # nothing cached any more: no POST at all
    assert sorted(fake.entries) == ['context:flow-1', 'ipfs:Qmab01', 'subnet:dao.public.default']


def test_invalidated_by_tags_predicted_when_the_node_exposes_tags(stub_server):
    dummy, srv = node(stub_server, expose_tags=True)
    args, sent = four_steps(srv, {'state': 'invalidated', 'tags': ['ipfs']}, ['ipfs:Qmab01', 'ipfs:Qmab02'], 5, 3)
    res, failed = run_module(cache, args)
    assert not failed and res['changed'] is False and mutations(srv) == sent


def test_invalidated_by_tags_the_node_does_not_expose(stub_server):
    fake, srv = node(stub_server)
    args = {'api_url': srv.url, 'api_token': TOKEN, 'state': 'invalidated', 'tags': ['flow-1']}

    res, failed = run_module(cache, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is True and res['predictable'] is False
    assert res['keys'] == [] and res['_warnings'] and 'cannot predict' in res['_warnings'][0]
    assert mutations(srv) == []

    res, failed = run_module(cache, args, diff=True)
    assert not failed and res['changed'] is True and res['invalidated_count'] == 2
    assert res['keys'] == ['context:flow-1', 'flow:flow-1']  # from the listing before and after
    assert res['diff'] == {'before': {'entries': 5}, 'after': {'entries': 3}}
    assert [json.loads(r['body']) for r in srv.requests if r['method'] == 'POST'] == [{'tags': ['flow-1']}]

    # the node answers invalidatedCount 0: honest changed=false (the POST is the only way to know)
    res, failed = run_module(cache, args)
    assert not failed and res['changed'] is False and res['invalidated_count'] == 0 and res['keys'] == []
    assert len(mutations(srv)) == 2

    # on an empty cache even tags are predictable
    fake.entries.clear()
    res, failed = run_module(cache, args, check_mode=True)
    assert not failed and res['changed'] is False and res['predictable'] is True and not res['_warnings']
    res, failed = run_module(cache, args)
    assert not failed and res['changed'] is False and len(mutations(srv)) == 2


def test_cleaned_four_steps(stub_server):
    fake, srv = node(stub_server)
    args, sent = four_steps(srv, {'state': 'cleaned', 'older_than': '7d'}, ['context:flow-1', 'ipfs:Qmab01'], 5, 3)
    assert sent == [('POST', '/api/v1/cache/invalidate')]
    body = json.loads([r for r in srv.requests if r['method'] == 'POST'][0]['body'])
    assert body == {'keys': ['context:flow-1', 'ipfs:Qmab01']}  # exactly the old keys, never tags
    res, failed = run_module(cache, args)
    assert not failed and res['changed'] is False and res['cutoff'].endswith('Z')
    assert mutations(srv) == sent
    assert sorted(fake.entries) == ['flow:flow-1', 'ipfs:Qmab02', 'subnet:dao.public.default']


def test_cleaned_skips_entries_without_last_access(stub_server):
    entries = sample_entries()
    entries[1]['lastAccess'] = None
    entries[2]['lastAccess'] = 'yesterday-ish'
    dummy, srv = node(stub_server, entries=entries)
    res, failed = run_module(cache, {'api_url': srv.url, 'state': 'cleaned', 'older_than': '36h'}, check_mode=True)
    assert not failed and res['keys'] == ['subnet:dao.public.default']
    assert 'context:flow-1' in res['_warnings'][0] and 'ipfs:Qmab01' in res['_warnings'][0]


def test_bad_options_fail_before_any_request(stub_server):
    fake, srv = node(stub_server)
    cases = [
        ({'state': 'cleaned', 'older_than': 'soon'}, "older_than: invalid duration 'soon'"),
        ({'state': 'cleaned', 'older_than': '-1d'}, 'older_than: invalid duration'),
        ({'state': 'cleaned'}, 'state=cleaned needs older_than'),
        ({'state': 'invalidated'}, 'state=invalidated needs keys or tags'),
        ({'state': 'invalidated', 'keys': []}, 'state=invalidated needs keys or tags'),
        ({'state': 'cleared', 'keys': ['flow:flow-1']}, 'keys and tags are used only with state=invalidated'),
        ({'state': 'invalidated', 'tags': ['x'], 'older_than': '1d'}, 'older_than is used only with state=cleaned'),
    ]
    for args, expected in cases:
        for check_mode in (False, True):
            res, failed = run_module(cache, dict(args, api_url=srv.url, api_token=TOKEN), check_mode=check_mode)
            assert failed and expected in res['msg'], res
            assert 'nothing was sent' in res['msg'] and res['changed'] is False
    assert srv.requests == []
    assert len(fake.entries) == 5


def test_check_mode_never_mutates(stub_server):
    fake, srv = node(stub_server)
    for args in ({'state': 'cleared'}, {'state': 'invalidated', 'keys': ['flow:flow-1'], 'tags': ['ipfs']},
                 {'state': 'cleaned', 'older_than': '0'}):
        res, failed = run_module(cache, dict(args, api_url=srv.url, api_token=TOKEN), check_mode=True)
        assert not failed and res['changed'] is True
    assert srv.requests and set(r['method'] for r in srv.requests) == {'GET'}
    assert len(fake.entries) == 5


def test_refused_token_fails_with_code_and_hint(stub_server):
    fake = FakeCache(sample_entries())
    routes = fake.routes()
    routes['GET /api/v1/cache/stats'] = Route(401, error_envelope('INVALID_TOKEN', 'Invalid token signature'))
    srv = stub_server(routes)
    res, failed = run_module(cache, {'api_url': srv.url, 'api_token': TOKEN, 'state': 'cleared'})
    assert failed and '401 INVALID_TOKEN' in res['msg'] and 'api_token' in res['msg'] and res['code'] == 'INVALID_TOKEN'
    assert TOKEN not in json.dumps(res)
    assert mutations(srv) == []


def test_insufficient_permissions_on_clear(stub_server):
    fake = FakeCache(sample_entries())
    routes = fake.routes()
    routes['DELETE /api/v1/cache/clear'] = Route(403, error_envelope(
        'INSUFFICIENT_PERMISSIONS', 'Insufficient permissions', {'required': 'cache:admin', 'available': ['cache:read']}))
    srv = stub_server(routes)
    res, failed = run_module(cache, {'api_url': srv.url, 'api_token': TOKEN, 'state': 'cleared'})
    assert failed and '403 INSUFFICIENT_PERMISSIONS' in res['msg'] and 'cache:admin' in res['msg']
    assert len(fake.entries) == 5


def test_garbage_listing_is_a_clear_error(stub_server):
    fake = FakeCache(sample_entries())
    routes = fake.routes()
    routes['GET /api/v1/cache/patterns'] = Route(200, envelope('not a listing'))
    srv = stub_server(routes)
    res, failed = run_module(cache, {'api_url': srv.url, 'api_token': TOKEN, 'state': 'cleaned', 'older_than': '1d'})
    assert failed and '/api/v1/cache/patterns' in res['msg'] and mutations(srv) == []
