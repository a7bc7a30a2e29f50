# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.data_integrity_info (and _integrity): a real SQLite state.db shaped like the node's (flows
with ipfs_cid, executions), a stub IPFS RPC API, corrupted pages, and proof that nothing is written."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import hashlib
import json
import os
import sqlite3
from urllib.parse import parse_qs, urlsplit

import pytest

from qflow_stub_http import Route, free_port, run_module, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.module_utils import _integrity
from ansible_collections.qflow.ops.plugins.modules import data_integrity_info

SCHEMA = """
CREATE TABLE flows (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, owner TEXT, category TEXT, visibility TEXT,
    tags TEXT, doc TEXT NOT NULL, created_at TEXT, updated_at TEXT, ipfs_cid TEXT);
CREATE TABLE executions (id TEXT PRIMARY KEY, flow_id TEXT, status TEXT, triggered_by TEXT, start_ms INTEGER,
    doc TEXT NOT NULL);
CREATE INDEX executions_start ON executions (start_ms);
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT);
"""


def flow(fid, steps=2):
    return {'id': fid, 'name': 'Flow %s' % fid, 'version': '1.0.0', 'owner': 'squid:ops:test',
            'description': 'caf\u00e9 \u2013 unicode kept as UTF-8',
            'steps': [{'id': 'step-%d' % i, 'type': 'task', 'action': 'noop', 'params': {}} for i in range(steps)],
            'metadata': {'tags': ['t'], 'category': 'test', 'visibility': 'public'}}


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode('utf-8')


def raw_cid(data):
    binary = b'\x01\x55\x12\x20' + hashlib.sha256(data).digest()
    return 'b' + base64.b32encode(binary).decode().lower().rstrip('=')


def make_db(data_dir, flows=('alpha', 'beta', 'gamma'), executions=300, no_cid=(), close=True):
    """state.db in WAL mode like the node writes it: flows.doc is json.dumps(flow), ipfs_cid the CID of its canonical
    JSON. Return (path, {flow id: canonical bytes}, connection or None)."""
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, 'state.db')
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute('PRAGMA journal_mode=WAL')
    conn.executescript(SCHEMA)
    content = {}
    for seq, fid in enumerate(flows, 1):
        f = flow(fid, steps=seq + 1)
        content[fid] = canonical(f)
        cid = None if fid in no_cid else raw_cid(content[fid])
        conn.execute('INSERT INTO flows (id, seq, owner, doc, ipfs_cid) VALUES (?,?,?,?,?)',
                     (fid, seq, f['owner'], json.dumps(f), cid))
    for i in range(executions):
        conn.execute('INSERT INTO executions VALUES (?,?,?,?,?,?)',
                     ('exec-%05d' % i, flows[i % len(flows)], 'completed', 'squid:ops:test', i,
                      json.dumps({'id': 'exec-%05d' % i, 'log': 'x' * 300})))
    if close:
        conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        conn.close()
        conn = None
    return path, content, conn


def corrupt(path, pages=(3, 4, 5, 6, 7, 8)):
    """Overwrite whole pages (not page 1) with bytes that are no b-tree page."""
    size = 4096
    with open(path, 'r+b') as handle:
        for page in pages:
            handle.seek((page - 1) * size)
            handle.write(bytes((i * 37 + page) % 251 for i in range(size)))


def snapshot(root):
    """Every file under root: bytes, size, mtime_ns, ctime_ns (atime-independent)."""
    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            data = None
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, 'rb') as handle:
                    data = hashlib.sha256(handle.read()).hexdigest()
            out[os.path.relpath(path, root)] = (data, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
    return out


class FakeIpfs(object):
    """cat by CID, repo/verify like kubo (progress lines), or unsupported (404) like js-ipfs."""

    def __init__(self, blocks, verify_msgs=()):
        self.blocks = dict(blocks)
        self.verify_msgs = list(verify_msgs)

    def routes(self):
        def cat(req):
            cid = parse_qs(urlsplit(req['path']).query).get('arg', [''])[0]
            if cid not in self.blocks:
                return Route(500, {'Message': 'block was not found locally (offline): ipld: could not find %s' % cid,
                                   'Code': 0, 'Type': 'error'})
            return Route(200, self.blocks[cid], content_type='text/plain')

        def verify(req):
            lines = [json.dumps({'Msg': m, 'Progress': 0}) for m in self.verify_msgs]
            lines.append(json.dumps({'Msg': '', 'Progress': 12}))
            return Route(200, '\n'.join(lines) + '\n', content_type='application/json')
        return {'POST /api/v0/cat': cat, 'POST /api/v0/repo/verify': verify}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv('QFLOW_IPFS_API_URL', raising=False)


def run(args, check_mode=False):
    return run_module(data_integrity_info, args, check_mode=check_mode)


def test_healthy_node_stopped_nothing_created(tmp_path, stub_server):
    data = str(tmp_path / 'data')
    path, content, dummy = make_db(data)
    ipfs = FakeIpfs(dict((raw_cid(c), c) for c in content.values()))
    server = stub_server(ipfs.routes())
    before = snapshot(data)
    assert sorted(before) == ['state.db']
    result, failed = run({'data_dir': data, 'ipfs_api_url': server.url})
    assert not failed, result
    assert result['changed'] is False
    assert result['ok'] is True, result['problems']
    assert result['counts'] == {'flows': 3, 'executions': 300}
    assert result['checks']['state_db']['integrity'] == ['ok']
    assert 'immutable=1' in result['checks']['state_db']['opened_as']
    assert result['checks']['flows_ipfs']['matched'] == 3
    assert result['checks']['ipfs_repo']['ok'] is True
    assert result['corrupted_flows'] == [] and result['problems'] == []
    assert snapshot(data) == before, 'a read-only check created or changed a file in the data dir'
    assert all(r['method'] == 'POST' for r in server.requests)


def test_live_node_wal_is_read_and_no_file_created(tmp_path):
    data = str(tmp_path / 'data')
    dummy, dummy2, writer = make_db(data, close=False)
    try:
        writer.execute('PRAGMA wal_autocheckpoint=0')
        writer.execute("INSERT INTO executions VALUES ('exec-wal', 'alpha', 'running', 'x', 1, '{}')")
        names = sorted(os.listdir(data))
        assert names == ['state.db', 'state.db-shm', 'state.db-wal']
        main_before = snapshot(data)['state.db']
        result, failed = run({'data_dir': data, 'checks': ['state_db']})
        assert not failed, result
        assert result['ok'] is True
        assert result['counts']['executions'] == 301, 'the rows still in the WAL must be seen'
        assert sorted(os.listdir(data)) == names
        assert snapshot(data)['state.db'] == main_before
        assert snapshot(data)['state.db-wal'][0] is not None
    finally:
        writer.close()


@pytest.mark.parametrize('pages', [(3, 4, 5, 6, 7, 8), (40, 41, 42)])
def test_corrupted_pages_are_a_finding_not_a_failure(tmp_path, pages):
    data = str(tmp_path / 'data')
    path, content, dummy = make_db(data, executions=600)
    healthy, failed = run({'data_dir': data, 'checks': ['state_db']})
    assert healthy['ok'] is True and healthy['checks']['state_db']['pages'] > 42
    corrupt(path, pages)
    before = snapshot(data)
    result, failed = run({'data_dir': data, 'checks': ['state_db']})
    assert not failed, result
    assert result['ok'] is False
    state = result['checks']['state_db']
    assert state['ok'] is False
    assert state['integrity'] != ['ok'] and 'malformed' in state['error']
    assert any('state.db' in p for p in result['problems'])
    assert snapshot(data) == before


def test_not_a_database(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'state.db').write_bytes(b'this is not an sqlite file\n' * 400)
    before = snapshot(str(data))
    result, failed = run({'data_dir': str(data)})
    assert not failed, result
    assert result['ok'] is False
    assert 'file is not a database' in result['checks']['state_db']['error']
    assert result['counts'] == {'flows': None, 'executions': None}
    assert snapshot(str(data)) == before


def test_missing_state_db_is_a_finding(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    result, failed = run({'data_dir': str(data)})
    assert not failed
    assert result['ok'] is False and 'does not exist' in result['problems'][0]
    assert os.listdir(str(data)) == []


def test_corrupted_flows_listed(tmp_path, stub_server):
    data = str(tmp_path / 'data')
    path, content, dummy = make_db(data, flows=('alpha', 'beta', 'gamma', 'delta'), no_cid=('delta',))
    blocks = {raw_cid(content['alpha']): content['alpha'],
              raw_cid(content['beta']): content['beta'].replace(b'noop', b'evil')}  # gamma missing
    server = stub_server(FakeIpfs(blocks, verify_msgs=['block bafkbad was corrupt (block in storage has different hash)']).routes())
    result, failed = run({'data_dir': data, 'ipfs_api_url': server.url})
    assert not failed, result
    assert result['ok'] is False
    flows = dict((f['id'], f) for f in result['corrupted_flows'])
    assert sorted(flows) == ['beta', 'gamma']
    assert 'differs' in flows['beta']['problem']
    assert 'missing' in flows['gamma']['problem'] and flows['gamma']['ipfs_cid'] == raw_cid(content['gamma'])
    check = result['checks']['flows_ipfs']
    assert (check['checked'], check['matched'], check['without_cid'], check['corrupted']) == (3, 1, 1, 2)
    assert result['checks']['state_db']['ok'] is True
    assert result['checks']['ipfs_repo']['ok'] is False
    assert any('corrupt' in p for p in result['problems'])


def test_non_canonical_ipfs_content(tmp_path, stub_server):
    data = str(tmp_path / 'data')
    path, content, dummy = make_db(data, flows=('alpha',))
    pretty = json.dumps(json.loads(content['alpha'].decode('utf-8')), indent=2).encode('utf-8')
    server = stub_server(FakeIpfs({raw_cid(content['alpha']): pretty}).routes())
    result, failed = run({'data_dir': data, 'ipfs_api_url': server.url, 'checks': ['flows_ipfs']})
    assert not failed
    assert result['corrupted_flows'][0]['problem'].startswith('the IPFS content is the same JSON but not in canonical')
    assert list(result['checks']) == ['flows_ipfs']


def test_ipfs_unreachable_is_reported(tmp_path):
    data = str(tmp_path / 'data')
    make_db(data)
    result, failed = run({'data_dir': data, 'ipfs_api_url': 'http://127.0.0.1:%d' % free_port(), 'timeout': 2})
    assert not failed, result
    assert result['ok'] is False
    assert result['checks']['state_db']['ok'] is True
    assert 'could not be reached' in result['checks']['flows_ipfs']['detail']
    assert result['corrupted_flows'] == []
    assert result['checks']['ipfs_repo']['ok'] is False
    assert len(result['problems']) == 2


def test_default_checks_without_ipfs(tmp_path):
    data = str(tmp_path / 'data')
    make_db(data)
    result, failed = run({'data_dir': data}, check_mode=True)
    assert not failed
    assert list(result['checks']) == ['state_db'] and result['ok'] is True


@pytest.mark.parametrize('args,fragment', [
    ({'data_dir': '/nonexistent/qflow-data'}, 'does not exist; set data_dir'),
    ({'checks': ['flows_ipfs']}, 'need ipfs_api_url'),
    ({'checks': []}, 'checks is empty'),
    ({'timeout': 0}, 'timeout must be at least 1'),
])
def test_bad_inputs(tmp_path, args, fragment):
    data = str(tmp_path / 'data')
    make_db(data)
    before = snapshot(str(tmp_path))
    full = {'data_dir': data}
    full.update(args)
    result, failed = run(full)
    assert failed
    assert fragment in result['msg']
    assert snapshot(str(tmp_path)) == before


def test_data_dir_is_a_file(tmp_path):
    target = tmp_path / 'file'
    target.write_text('x')
    result, failed = run({'data_dir': str(target)})
    assert failed and 'is not a directory' in result['msg']


def test_canonical_flow_matches_node_format():
    f = flow('x')
    assert _integrity.canonical_flow(json.dumps(f)) == canonical(f)
    assert b'caf\xc3\xa9' in _integrity.canonical_flow(json.dumps(f))


def test_read_only_uri_quotes_paths(tmp_path):
    data = tmp_path / 'da ta?#%'
    path, dummy, dummy2 = make_db(str(data), executions=1)
    uri, how = _integrity.read_only_uri(path)
    assert '?mode=ro&immutable=1' in uri and '%3F' in uri and '%23' in uri
    info = _integrity.inspect_db(path)
    assert info['ok'] is True and info['tables']['flows'] == 3
    assert sorted(os.listdir(str(data))) == ['state.db']
