# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.ipfs_repo (and _ipfs) against a stub IPFS RPC API that behaves like js-ipfs 0.18:
POST only, pin/ls spells CIDv1 in base58btc, refs/local and repo/gc in base32, no repo/verify."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import hashlib
import json

import pytest

from qflow_stub_http import Route, free_port, run_module, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.module_utils import _ipfs
from ansible_collections.qflow.ops.plugins.modules import ipfs_repo

B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'


def b58(raw):
    num = int.from_bytes(raw, 'big')
    out = ''
    while num:
        num, rest = divmod(num, 58)
        out = B58[rest] + out
    return '1' * (len(raw) - len(raw.lstrip(b'\x00'))) + out


def raw_cid(data):
    """CIDv1, raw codec, sha2-256, base32 (what js-ipfs `add --cid-version 1` and refs/local give)."""
    binary = b'\x01\x55\x12\x20' + hashlib.sha256(data).digest()
    return 'b' + base64.b32encode(binary).decode().lower().rstrip('=')


def z_spelling(cid):
    return 'z' + b58(_ipfs.cid_bytes(cid))


class FakeIpfs(object):
    """Blocks, pins and an MFS root; repo/gc removes every unpinned block."""

    def __init__(self, pinned=(b'flow-a', b'flow-b'), unpinned=(b'old-1', b'old-2'), verify=False):
        self.blocks = {}
        self.pins = []
        for data in pinned:
            self.pins.append(self.put(data))
        for data in unpinned:
            self.put(data)
        self.mfs = self.put(b'mfs-root')
        self.verify = verify
        self.gc_runs = 0

    def put(self, data):
        cid = raw_cid(data)
        self.blocks[cid] = data
        return cid

    def repo_stat(self):
        return {'NumObjects': str(len(self.blocks)), 'RepoSize': str(sum(len(d) for d in self.blocks.values()) + 1000),
                'RepoPath': '/repo', 'Version': '12', 'StorageMax': '9007199254740991'}

    def routes(self):
        def ok(body):
            return Route(200, body)

        def lines(rows):
            return Route(200, ''.join(json.dumps(r) + '\n' for r in rows), content_type='application/json')

        def arg(req, name):
            from urllib.parse import parse_qs, urlsplit
            return (parse_qs(urlsplit(req['path']).query).get(name) or [None])[0]

        def repo_gc(req):
            self.gc_runs += 1
            keep = set(self.pins) | {self.mfs}
            gone = [c for c in self.blocks if c not in keep]
            for c in gone:
                del self.blocks[c]
            return lines([{'Key': {'/': c}} for c in gone])

        def block_get(req):
            cid = arg(req, 'arg')
            for c, data in self.blocks.items():
                if _ipfs.multihash_key(c) == _ipfs.multihash_key(cid):
                    return Route(200, data, content_type='application/octet-stream')
            return Route(500, {'Message': 'Failed to get block: request timed out', 'Code': 0, 'Type': 'error'})

        def get_refused(req):
            return Route(405, {'Message': 'Method Not Allowed', 'Code': 0, 'Type': 'error'})

        routes = {
            'POST /api/v0/version': lambda r: ok({'Version': '0.18.1', 'Repo': '12'}),
            'POST /api/v0/repo/stat': lambda r: ok(self.repo_stat()),
            'POST /api/v0/pin/ls': lambda r: ok({'Keys': dict((z_spelling(c), {'Type': 'recursive'}) for c in self.pins)}),
            'POST /api/v0/refs/local': lambda r: lines([{'Ref': c} for c in self.blocks]),
            'POST /api/v0/refs': lambda r: lines([]),
            'POST /api/v0/files/stat': lambda r: ok({'Hash': self.mfs, 'Type': 'directory'}),
            'POST /api/v0/repo/gc': repo_gc,
            'POST /api/v0/block/get': block_get,
            'GET /api/v0/version': get_refused,
        }
        if self.verify:
            routes['POST /api/v0/repo/verify'] = lambda r: lines([{'Msg': '', 'Progress': len(self.blocks)}])
        return routes


def test_cid_spellings_compare_equal():
    cid = raw_cid(b'x')
    assert _ipfs.multihash_key(cid) == _ipfs.multihash_key(z_spelling(cid)) == _ipfs.multihash_key(cid.upper().replace('B', 'B', 1))
    v0 = 'QmZwBU8Ek1BDTU5WcgxN285VVY2HhT6gzV98xtjqQqCnfj'
    assert _ipfs.parse_cid(v0)[0] == 0 and _ipfs.parse_cid(v0)[3] == _ipfs.SHA2_256
    assert _ipfs.multihash_key('not-a-cid') == 'not-a-cid'


def test_stat_reports_the_repo_and_never_changes(stub_server):
    fake = FakeIpfs()
    server = stub_server(fake.routes())
    result, failed = run_module(ipfs_repo, {'api_url': server.url})
    assert not failed and result['changed'] is False
    repo = result['repo']
    assert repo['num_objects'] == 5 and repo['pins'] == 2 and repo['pins_by_type'] == {'recursive': 2}
    assert repo['version'] == '0.18.1' and repo['storage_max'] == 9007199254740991 and repo['repo_version'] == '12'
    assert all(r['method'] == 'POST' for r in server.requests)


def test_gc_four_steps(stub_server):
    fake = FakeIpfs()
    server = stub_server(fake.routes())
    args = {'api_url': server.url, 'state': 'gc'}
    unpinned = sorted(raw_cid(d) for d in (b'old-1', b'old-2'))

    result, failed = run_module(ipfs_repo, args, check_mode=True, diff=True)
    assert not failed and result['changed'] is True and result['removed'] == unpinned and fake.gc_runs == 0
    assert result['diff'] == {'before': {'num_objects': 5}, 'after': {'num_objects': 3}}

    result, failed = run_module(ipfs_repo, args, diff=True)
    assert not failed and result['changed'] is True and sorted(result['removed']) == unpinned
    assert result['removed_count'] == 2 and result['repo']['num_objects'] == 3 and fake.gc_runs == 1

    result, failed = run_module(ipfs_repo, args, check_mode=True)
    assert not failed and result['changed'] is False and result['removed'] == []

    result, failed = run_module(ipfs_repo, args)
    assert not failed and result['changed'] is False and result['removed'] == [] and fake.gc_runs == 2
    assert set(fake.pins) <= set(fake.blocks) and fake.mfs in fake.blocks


def test_verify_per_pin_when_the_daemon_has_no_repo_verify(stub_server):
    fake = FakeIpfs()
    server = stub_server(fake.routes())
    result, failed = run_module(ipfs_repo, {'api_url': server.url, 'state': 'verify'})
    assert not failed and result['changed'] is False
    assert result['verify'] == {'method': 'pins', 'checked': 2, 'problems': []}


def test_verify_uses_repo_verify_when_present(stub_server):
    fake = FakeIpfs(verify=True)
    server = stub_server(fake.routes())
    result, failed = run_module(ipfs_repo, {'api_url': server.url, 'state': 'verify'})
    assert not failed and result['verify']['method'] == 'repo/verify' and result['verify']['checked'] == 5


def test_verify_fails_naming_missing_and_corrupt_blocks(stub_server):
    fake = FakeIpfs()
    missing, corrupt = fake.pins
    del fake.blocks[missing]
    fake.blocks[corrupt] = b'bit rot'
    server = stub_server(fake.routes())
    result, failed = run_module(ipfs_repo, {'api_url': server.url, 'state': 'verify'})
    assert failed
    assert missing in result['msg'] or z_spelling(missing) in result['msg']
    assert z_spelling(corrupt) in result['msg'] and 'corrupt' in result['msg'] and 'Re-import' in result['msg']
    assert len(result['verify']['problems']) == 2


def test_unreachable_api_is_a_clear_error():
    url = 'http://127.0.0.1:%d' % free_port()
    for state in ('stat', 'gc', 'verify'):
        result, failed = run_module(ipfs_repo, {'api_url': url, 'state': state, 'timeout': 2})
        assert failed and result['changed'] is False
        assert 'Cannot reach the IPFS RPC API at %s/api/v0/' % url in result['msg']
        assert 'QFLOW_IPFS_API_URL' in result['msg']


def test_api_url_from_environment(stub_server, monkeypatch):
    fake = FakeIpfs()
    server = stub_server(fake.routes())
    monkeypatch.setenv('QFLOW_IPFS_API_URL', server.url + '/api/v0')
    result, failed = run_module(ipfs_repo, {})
    assert not failed and result['api_url'] == server.url


def test_not_an_ipfs_api(stub_server):
    server = stub_server({'POST /api/v0/repo/stat': Route(200, '<html>proxy</html>', content_type='text/html')})
    result, failed = run_module(ipfs_repo, {'api_url': server.url})
    assert failed and 'not JSON' in result['msg'] and 'QFLOW_IPFS_API_URL' in result['msg']


@pytest.mark.parametrize('name', ['timeout', 'block_timeout'])
def test_bad_timeouts(name):
    result, failed = run_module(ipfs_repo, {'api_url': 'http://127.0.0.1:1', name: 0})
    assert failed and ('%s must be 1 or more' % name) in result['msg']
