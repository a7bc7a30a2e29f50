# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""qflow.ops.backup with ipfs_api_url: the node's IPFS DAGs exported as CAR files and re-imported by a restore,
against a stub IPFS RPC API."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import sqlite3
import tarfile
from urllib.parse import parse_qs, urlsplit

import qflow_backup_helpers as h
from qflow_stub_http import Route, free_port, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.modules import backup

CIDS = ('bafkreiaaaa1111', 'bafkreibbbb2222')


class FakeIpfs(object):
    def __init__(self, pinned=CIDS, extra_pins=('QmOtherPin000000000000000000000000000000000000',)):
        self.pins = set(pinned) | set(extra_pins)
        self.imports = []

    def routes(self):
        def arg(req):
            return (parse_qs(urlsplit(req['path']).query).get('arg') or [None])[0]

        def export(req):
            return Route(200, b'CAR:' + arg(req).encode(), content_type='application/vnd.ipld.car')

        def pin_ls(req):
            cid = arg(req)
            if cid is None:
                return Route(200, {'Keys': dict((c, {'Type': 'recursive'}) for c in self.pins)})
            if cid in self.pins:
                return Route(200, {'Keys': {cid: {'Type': 'recursive'}}})
            return Route(500, {'Message': 'path \'%s\' is not pinned' % cid, 'Code': 0, 'Type': 'error'})

        def dag_import(req):
            body = req['body']
            cid = body.split(b'CAR:', 1)[1].split(b'\r\n', 1)[0].decode()
            self.imports.append(cid)
            self.pins.add(cid)
            return Route(200, json.dumps({'Root': {'Cid': {'/': cid}, 'PinErrorMsg': ''}}) + '\n')

        return {'POST /api/v0/dag/export': export, 'POST /api/v0/pin/ls': pin_ls, 'POST /api/v0/dag/import': dag_import}


def add_flows_table(node, cids):
    conn = sqlite3.connect(os.path.join(node['data_dir'], 'state.db'))
    conn.execute('CREATE TABLE flows (id TEXT PRIMARY KEY, doc TEXT, ipfs_cid TEXT)')
    conn.execute('CREATE TABLE ownership (flow_id TEXT PRIMARY KEY, owner TEXT)')
    conn.execute('CREATE TABLE permissions (flow_id TEXT, granted_to TEXT, permission TEXT)')
    for i, cid in enumerate(cids):
        conn.execute('INSERT INTO flows VALUES (?, ?, ?)', ('flow-%d' % i, '{}', cid))
    conn.execute("INSERT INTO flows VALUES ('flow-x', '{}', NULL)")
    conn.commit()
    conn.close()


def members(path):
    with tarfile.open(path) as tar:
        manifest = json.loads(tar.extractfile('manifest.json').read())
        return manifest, dict((m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.name.startswith('ipfs/'))


def test_backup_exports_the_flows_dags_and_restore_reimports_them(tmp_path, stub_server):
    node = h.make_node(tmp_path)
    add_flows_table(node, CIDS)
    fake = FakeIpfs()
    server = stub_server(fake.routes())
    args = h.module_args(node, ipfs_api_url=server.url)

    kind, res = h.run_module(backup, args)
    assert kind == 'exit' and res['changed'] is True, res
    assert res['backup']['ipfs'] == {'roots': list(CIDS), 'source': 'state.db flows.ipfs_cid'}
    manifest, cars = members(res['backup']['path'])
    assert sorted(cars) == ['ipfs/%s.car' % c for c in CIDS] and cars['ipfs/%s.car' % CIDS[0]] == b'CAR:' + CIDS[0].encode()
    listed = dict((f['path'], f['sha256']) for f in manifest['files'])
    assert listed['ipfs/%s.car' % CIDS[1]] == hashlib.sha256(b'CAR:' + CIDS[1].encode()).hexdigest()
    assert manifest['ipfs']['roots'] == list(CIDS)
    backup_id = res['backup']['id']

    # every root pinned: the restore of flows has nothing to do for IPFS
    restore = dict(args, state='restored', backup_id=backup_id, restore_parts=['flows'])
    kind, res = h.run_module(backup, restore)
    assert kind == 'exit' and res['restored']['ipfs'] == [] and fake.imports == []

    # the daemon lost one root: check mode predicts it, the restore imports it, a second restore does nothing
    fake.pins.discard(CIDS[1])
    kind, res = h.run_module(backup, restore, check_mode=True, diff=True)
    assert kind == 'exit' and res['changed'] is True and res['restored']['ipfs'] == [CIDS[1]] and fake.imports == []
    assert res['diff']['before']['ipfs_not_pinned'] == [CIDS[1]]
    kind, res = h.run_module(backup, restore)
    assert kind == 'exit' and res['changed'] is True and res['restored']['ipfs'] == [CIDS[1]], res
    assert fake.imports == [CIDS[1]] and CIDS[1] in fake.pins and 'IPFS' in res['msg']
    kind, res = h.run_module(backup, restore)
    assert kind == 'exit' and res['changed'] is False and fake.imports == [CIDS[1]]


def test_without_flows_column_every_recursive_pin_is_exported(tmp_path, stub_server):
    node = h.make_node(tmp_path)
    fake = FakeIpfs()
    server = stub_server(fake.routes())
    kind, res = h.run_module(backup, h.module_args(node, ipfs_api_url=server.url))
    assert kind == 'exit' and res['backup']['ipfs']['source'] == 'pin/ls'
    assert res['backup']['ipfs']['roots'] == sorted(fake.pins)


def test_without_ipfs_api_url_nothing_changes(tmp_path):
    node = h.make_node(tmp_path)
    add_flows_table(node, CIDS)
    kind, res = h.run_module(backup, h.module_args(node))
    assert kind == 'exit' and 'ipfs' not in res['backup']
    manifest, cars = members(res['backup']['path'])
    assert cars == {} and 'ipfs' not in manifest


def test_unreachable_ipfs_keeps_nothing(tmp_path):
    node = h.make_node(tmp_path)
    add_flows_table(node, CIDS)
    kind, res = h.run_module(backup, h.module_args(node, ipfs_api_url='http://127.0.0.1:%d' % free_port(), timeout=2))
    assert kind == 'fail' and 'cannot export the IPFS DAG %s' % CIDS[0] in res['msg']
    assert 'nothing was kept' in res['msg'] and 'ipfs_api_url' in res['msg']
    assert not [n for n in os.listdir(node['backup_dir']) if n.endswith('.tar.gz')]
