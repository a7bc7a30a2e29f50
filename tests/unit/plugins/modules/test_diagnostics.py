# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of qflow.ops.diagnostics (and _diagnostics) on a temporary node layout (etc, data with a real WAL
state.db, log, backups, releases) with the REST API and metrics endpoint stubbed."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import hashlib
import io
import json
import os
import sqlite3
import stat
import tarfile
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from qflow_stub_http import Route, envelope, error_envelope, free_port, run_module, stub_server  # noqa: F401 pylint: disable=unused-import

from ansible_collections.qflow.ops.plugins.module_utils import _diagnostics as engine
from ansible_collections.qflow.ops.plugins.modules import diagnostics

JWT = 'jwt-secret-value-0123456789abcdefghijklmnop'
ENC = 'encryption-key-value-ZYXWVUTSRQ9876543210'
PREV = 'previous-jwt-secret-value-aaaaaaaaaaaaaaaaa'
OLD_BAK = 'old-jwt-secret-in-the-bak-file-bbbbbbbbbbbb'
CFG_SECRET = 'config-api-key-value-cccccccccccccccccc'
TOKEN = 'eyJ0b2tlbi12YWx1ZS1kZGRkZGRkZGRkZGRkZGRkZGQ='
SECRETS = (JWT, ENC, PREV, OLD_BAK, CFG_SECRET, TOKEN)
NAME = 'INC-2026-042'

CONFIG = '''qflow:
  engine:
    maxConcurrentFlows: 100
  storage:
    ipfsApiUrl: http://127.0.0.1:5001
  security:
    tokenTtl: 3600
    jwtSecret: %s
    integrations:
      apiKey: %s
  networking:
    enableTLS: false
    tlsKeyPath: /etc/qflow/tls.key
''' % (JWT, CFG_SECRET)


def make_node(root, live=False):
    """A node layout under root. Return (params, writer connection or None)."""
    etc, data, log, backups, releases = (os.path.join(root, d) for d in ('etc', 'data', 'log', 'backups', 'releases'))
    for d in (etc, data, log, backups, releases, os.path.join(etc, 'config-backups'), os.path.join(releases, '0.1.0')):
        os.makedirs(d)
    with open(os.path.join(etc, 'qflow-config.yaml'), 'w') as h:
        h.write(CONFIG)
    with open(os.path.join(etc, 'qflow.env'), 'w') as h:
        h.write('# node env\n#QFLOW_JWT_SECRET=%s\nNODE_ID=qflow-node-t\nQFLOW_JWT_SECRET=%s\nQFLOW_ENCRYPTION_KEY=%s\n'
                'QFLOW_JWT_SECRET_PREVIOUS=%s\nQFLOW_DATA_DIR=%s\nQFLOW_PORT=8080\n' % (OLD_BAK, JWT, ENC, PREV, data))
    os.chmod(os.path.join(etc, 'qflow.env'), 0o600)
    with open(os.path.join(etc, 'qflow.env.20261127T010000Z.bak'), 'w') as h:
        h.write('QFLOW_JWT_SECRET=%s\n' % OLD_BAK)
    with open(os.path.join(etc, 'qflow.env.meta.json'), 'w') as h:
        json.dump({'QFLOW_JWT_SECRET': {'rotated_at': '2000-01-01T00:00:00.000Z', 'fingerprint': 'sha256:000000000000'},
                   'QFLOW_ENCRYPTION_KEY': {'rotated_at': time.strftime('%Y-%m-%dT%H:%M:%S.000Z', time.gmtime()),
                                            'fingerprint': 'sha256:111111111111'}}, h)
    with open(os.path.join(etc, 'config-backups', 'qflow-config.20261127T010000Z.yaml'), 'w') as h:
        h.write('qflow: {}\n')
    # state.db in WAL mode like the node's
    conn = sqlite3.connect(os.path.join(data, 'state.db'), isolation_level=None)
    conn.execute('PRAGMA journal_mode=WAL')
    conn.executescript('CREATE TABLE flows (id TEXT PRIMARY KEY, doc TEXT NOT NULL, ipfs_cid TEXT);'
                       'CREATE TABLE executions (id TEXT PRIMARY KEY, flow_id TEXT, status TEXT, doc TEXT NOT NULL);')
    for i in range(50):
        conn.execute('INSERT INTO executions VALUES (?,?,?,?)', ('exec-%d' % i, 'f1', 'completed', '{}'))
    conn.execute('INSERT INTO flows VALUES (?,?,?)', ('f1', '{"id": "f1"}', None))
    if live:
        conn.execute('PRAGMA wal_autocheckpoint=0')
        conn.execute("INSERT INTO executions VALUES ('exec-live', 'f1', 'running', '{}')")
    else:
        conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        conn.close()
        conn = None
    with open(os.path.join(data, 'notes.bin'), 'wb') as h:
        h.write(os.urandom(3000))
    # logs: current, an old rotation (excluded), a recent gz rotation, a gz rotation that leaks a secret
    line = '{"time": "2026-11-27T03:12:45.123Z", "level": "info", "component": "api", "message": "request %d"}\n'
    with open(os.path.join(log, 'qflow.log'), 'w') as h:
        for i in range(40):
            h.write(line % i)
        h.write('{"level": "error", "component": "config", "message": "bad secret %s"}\n' % JWT)
    with open(os.path.join(log, 'qflow.log.1'), 'w') as h:
        h.write(line % 999)
    old = time.time() - 3 * 86400
    os.utime(os.path.join(log, 'qflow.log.1'), (old, old))
    with gzip.open(os.path.join(log, 'qflow.log.2.gz'), 'wb') as h:
        h.write((line % 2).encode())
    with gzip.open(os.path.join(log, 'qflow.log.3.gz'), 'wb') as h:
        h.write(('{"message": "token %s"}\n' % TOKEN).encode())
    # backups catalog with one recent and one old backup
    now = time.strftime('%Y-%m-%dT%H:%M:%S.000Z', time.gmtime())
    with open(os.path.join(backups, 'catalog.json'), 'w') as h:
        json.dump({'format': 1, 'backups': [
            {'id': 'qflow-node-t-1', 'created': now, 'file': 'qflow-backup-qflow-node-t-1.tar.gz', 'status': 'completed',
             'verified': True, 'size': 10, 'sha256': 'ab' * 32, 'node_id': 'qflow-node-t'},
            {'id': 'qflow-node-t-0', 'created': '2020-01-01T00:00:00.000Z', 'file': 'x.tar.gz', 'status': 'completed'}]}, h)
    with open(os.path.join(backups, 'qflow-backup-qflow-node-t-1.tar.gz'), 'wb') as h:
        h.write(b'archive bytes')
    with open(os.path.join(releases, '0.1.0', 'release.json'), 'w') as h:
        json.dump({'version': '0.1.0', 'defects': []}, h)
    os.symlink('0.1.0', os.path.join(releases, 'current'))
    with open(os.path.join(releases, 'history.jsonl'), 'w') as h:
        h.write(json.dumps({'time': '2020-01-01T00:00:00Z', 'action': 'deployed', 'version': '0.0.9'}) + '\n')
        h.write(json.dumps({'time': now, 'action': 'deployed', 'version': '0.1.0', 'from': '0.0.9', 'by': 'ops'}) + '\n')
        h.write('not json\n')
    params = {'config_path': os.path.join(etc, 'qflow-config.yaml'), 'env_path': os.path.join(etc, 'qflow.env'),
              'data_dir': data, 'log_dir': log, 'backup_dir': backups, 'release_dir': releases}
    return params, conn


def api_routes(modes=True):
    def executions(req):
        status = parse_qs(urlsplit(req['path']).query).get('status', [''])[0]
        offset = int(parse_qs(urlsplit(req['path']).query).get('offset', ['0'])[0])
        items = [{'id': 'exec-%s-%d' % (status, i), 'status': status} for i in range(150 if status == 'running' else 1)]
        page = items[offset:offset + 100]
        return Route(200, envelope({'executions': page, 'pagination': {'total': len(items), 'limit': 100, 'offset': offset,
                                                                       'hasMore': offset + 100 < len(items)}}))
    routes = {
        '/health': Route(200, {'status': 'healthy', 'version': '0.1.0', 'nodeId': 'qflow-node-api'}),
        '/health/ready': Route(503, error_envelope('NOT_READY', 'not ready', {'checks': {'storage': False}})),
        '/api/v1/system/info': Route(200, envelope({'nodeId': 'qflow-node-api', 'echo': 'Bearer %s' % TOKEN})),
        '/api/v1/executions': executions,
        '/metrics': Route(200, '# TYPE qflow_node_health_score gauge\nqflow_node_health_score 1\n'),
    }
    if modes:
        routes['/api/v1/system/modes'] = Route(200, envelope({'modes': {'emergency': {'enabled': False}}}))
    return routes


def snapshot(root, skip=None):
    """Every entry under root: content hash, size, mode, inode, mtime_ns, ctime_ns (atime is not compared)."""
    out = {}
    for top, dirs, files in os.walk(root):
        if skip and os.path.realpath(top).startswith(os.path.realpath(skip)):
            continue
        for name in dirs + files:
            path = os.path.join(top, name)
            if skip and os.path.realpath(path).startswith(os.path.realpath(skip)):
                continue
            st = os.lstat(path)
            digest = None
            if stat.S_ISREG(st.st_mode):
                with open(path, 'rb') as h:
                    digest = hashlib.sha256(h.read()).hexdigest()
            out[path] = (digest, st.st_size, st.st_mode, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    return out


def members(archive):
    """{member name: bytes} of an archive (gz members decompressed too, under '<name>!')."""
    out = {}
    with tarfile.open(archive, 'r:gz') as tar:
        for info in tar.getmembers():
            if info.isfile():
                data = tar.extractfile(info).read()
                out[info.name] = data
                if info.name.endswith('.gz'):
                    out[info.name + '!'] = gzip.decompress(data)
    return out


def assert_no_secret(blobs):
    for name, data in blobs.items():
        for value in SECRETS:
            assert value.encode() not in data, 'secret %s... leaked into %s' % (value[:8], name)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for var in ('QFLOW_API_URL', 'QFLOW_API_TOKEN', 'QFLOW_METRICS_URL', 'QFLOW_IPFS_API_URL'):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def node(tmp_path, stub_server):
    params, dummy = make_node(str(tmp_path / 'node'))
    server = stub_server(api_routes())
    params.update(api_url=server.url, api_token=TOKEN, metrics_url=server.url + '/metrics', dest=str(tmp_path / 'out'),
                  name=NAME, timeout=3)
    params['_server'] = server
    params['_root'] = str(tmp_path / 'node')
    return params


def args_of(node, **extra):
    out = dict((k, v) for k, v in node.items() if not k.startswith('_'))
    out.update(extra)
    return out


def run(args, check_mode=False, diff=False):
    return run_module(diagnostics, args, check_mode=check_mode, diff=diff)


def test_standard_four_steps(node):
    args = args_of(node)
    before = snapshot(node['_root'])
    archive = os.path.join(node['dest'], NAME + '.tar.gz')

    result, failed = run(args, check_mode=True, diff=True)
    assert not failed, result
    assert result['changed'] is True and result['sha256'] is None
    planned = dict((m['path'], m) for m in result['planned'])
    assert 'logs/qflow.log' in planned and 'logs/qflow.log.1' not in planned and 'logs/qflow.log.2.gz' in planned
    assert 'forensics/hashes.sha256' not in planned
    assert not os.path.exists(node['dest']), 'check mode must not even create dest'
    assert 'absent' in result['diff']['before']

    result, failed = run(args)
    assert not failed, result
    assert result['changed'] is True
    assert result['path'] == archive and os.path.isfile(archive)
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(node['dest']).st_mode) == 0o700
    assert sorted(os.listdir(node['dest'])) == [NAME + '.tar.gz'], 'no temp or work file may stay in dest'
    with open(archive, 'rb') as h:
        assert result['sha256'] == hashlib.sha256(h.read()).hexdigest()
    blobs = members(archive)
    manifest = json.loads(blobs['%s/manifest.json' % NAME])
    listed = dict((m['path'], m) for m in manifest['members'])
    assert set('%s/%s' % (NAME, p) for p in listed) | {'%s/manifest.json' % NAME} == \
        set(n for n in blobs if not n.endswith('!'))
    for path, entry in listed.items():
        data = blobs['%s/%s' % (NAME, path)]
        assert entry['size'] == len(data) and entry['sha256'] == hashlib.sha256(data).hexdigest(), path
    for expected in ('logs/qflow.log', 'logs/qflow.log.2.gz', 'logs/qflow.log.3.redacted', 'config/qflow-config.yaml',
                     'config/qflow.env.redacted', 'metrics.txt', 'state/health.json', 'state/ready.json',
                     'state/system-info.json', 'state/modes.json', 'state/executions-active.json', 'state/db.json',
                     'changes/recent.json'):
        assert expected in listed, expected
    assert 'logs/qflow.log.1' not in listed
    assert manifest['node_id'] == 'qflow-node-t' and manifest['mode'] == 'standard' and manifest['since'] == '2h'
    assert manifest['missing'] == [] and manifest['collector_version'] == engine.COLLECTOR_VERSION
    assert result['manifest']['member_count'] == len(listed) + 1
    assert result['manifest']['bytes'] == sum(m['size'] for m in listed.values())
    assert_no_secret(blobs)
    assert_no_secret({'result': json.dumps(result).encode()})

    env = blobs['%s/config/qflow.env.redacted' % NAME].decode()
    assert 'NODE_ID=qflow-node-t\n' in env and 'QFLOW_PORT=8080\n' in env
    assert 'QFLOW_JWT_SECRET=<redacted sha256:%s>' % hashlib.sha256(JWT.encode()).hexdigest()[:12] in env
    assert 'QFLOW_JWT_SECRET_PREVIOUS=<redacted sha256:' in env
    cfg = blobs['%s/config/qflow-config.yaml' % NAME].decode()
    assert 'tokenTtl: 3600' in cfg and 'tlsKeyPath: /etc/qflow/tls.key' in cfg and 'apiKey: <redacted sha256:' in cfg
    assert 'jwtSecret: <redacted sha256:' in cfg
    assert manifest['redaction']['config_values'] == 2 and manifest['redaction']['env_values'] == 3
    assert manifest['redaction']['scrubbed_occurrences'] >= 2  # the log line and the token echoed by system info
    db = json.loads(blobs['%s/state/db.json' % NAME])
    assert db['ok'] is True and db['tables'] == {'executions': 50, 'flows': 1} and 'immutable=1' in db['opened_as']
    ready = json.loads(blobs['%s/state/ready.json' % NAME])
    assert ready['http_status'] == 503 and ready['response']['error']['code'] == 'NOT_READY'
    active = json.loads(blobs['%s/state/executions-active.json' % NAME])['statuses']
    assert active['running']['total'] == 150 and active['running']['listed'] == 150 and active['paused']['listed'] == 1
    changes = json.loads(blobs['%s/changes/recent.json' % NAME])
    assert [b['id'] for b in changes['backups']] == ['qflow-node-t-1']
    assert [r['version'] for r in changes['releases']] == ['0.1.0']
    assert [r['name'] for r in changes['secret_rotations']] == ['QFLOW_ENCRYPTION_KEY']
    assert [b['id'] for b in changes['config_backups']] == ['20261127T010000Z']
    assert any(f['path'].endswith('state.db') for f in changes['files_modified'])
    assert gzip.decompress(blobs['%s/logs/qflow.log.2.gz' % NAME]).startswith(b'{"time"')
    assert all(r['method'] == 'GET' for r in node['_server'].requests)
    assert all(r['headers'].get('authorization') == 'Bearer %s' % TOKEN for r in node['_server'].requests
               if r['plain_path'].startswith('/api/'))
    assert snapshot(node['_root']) == before, 'standard mode changed a file of the node'

    mtime = os.stat(archive).st_mtime_ns
    result, failed = run(args, check_mode=True)
    assert not failed and result['changed'] is False
    assert result['manifest']['created_at'] == manifest['created_at']

    result2, failed = run(args)
    assert not failed and result2['changed'] is False
    assert result2['sha256'] == result['sha256'] and os.stat(archive).st_mtime_ns == mtime

    result3, failed = run(dict(args, force=True))
    assert not failed and result3['changed'] is True
    assert sorted(os.listdir(node['dest'])) == [NAME + '.tar.gz']


def test_forensics_never_modifies_the_node(tmp_path, stub_server):
    root = str(tmp_path / 'node')
    params, writer = make_node(root, live=True)
    try:
        server = stub_server(api_routes())
        assert sorted(os.listdir(params['data_dir'])) == ['notes.bin', 'state.db', 'state.db-shm', 'state.db-wal']
        before = snapshot(root)
        args = dict(params, api_url=server.url, api_token=TOKEN, metrics_url=server.url + '/metrics',
                    dest=str(tmp_path / 'evidence'), name=NAME, mode='forensics', since='1d', log_lines=1)
        result, failed = run(args)
        assert not failed, result
        after = snapshot(root)
        assert after == before, 'forensics mode changed the node: %s' % sorted(
            k for k in set(before) | set(after) if before.get(k) != after.get(k))
        assert all(r['method'] == 'GET' for r in server.requests)
        blobs = members(result['path'])
        assert_no_secret(blobs)
        manifest = json.loads(blobs['%s/manifest.json' % NAME])
        assert manifest['mode'] == 'forensics' and 'snapshot copy' in manifest['state_db_access']
        db = json.loads(blobs['%s/state/db.json' % NAME])
        assert db['tables']['executions'] == 51, 'the snapshot must include the rows still in the WAL'
        # whole log files in forensics mode, log_lines ignored
        assert blobs['%s/logs/qflow.log' % NAME].count(b'\n') == 41
        hashes = blobs['%s/forensics/hashes.sha256' % NAME].decode().splitlines()
        hashed = dict((line.split('  ', 1)[1], line.split('  ', 1)[0]) for line in hashes)
        regular = [p for p, v in before.items() if v[0] is not None]
        assert sorted(hashed) == sorted(regular), 'every regular file of the node must be hashed'
        for path in regular:
            assert hashed[path] == before[path][0], path
        stats = json.loads(blobs['%s/forensics/stat.json' % NAME])['entries']
        assert set(stats) == set(before)
        env = stats[params['env_path']]
        assert env['mode'] == '0600' and env['type'] == 'file' and env['inode'] == before[params['env_path']][3]
        assert env['mtime_ns'] == before[params['env_path']][4] and env['ctime_ns'] == before[params['env_path']][5]
        assert stats[os.path.join(params['release_dir'], 'current')]['link_target'] == '0.1.0'
        assert result['manifest']['forensics']['files_hashed'] == len(regular)
        assert sorted(os.listdir(str(tmp_path / 'evidence'))) == [NAME + '.tar.gz']
    finally:
        writer.close()


def test_outage_api_and_metrics_unreachable(node):
    dead = 'http://127.0.0.1:%d' % free_port()
    result, failed = run(args_of(node, api_url=dead, metrics_url=dead + '/metrics', ipfs_api_url=dead))
    assert not failed, result
    missing = dict((m['item'], m['reason']) for m in result['manifest']['missing'])
    assert set(missing) == {'metrics.txt', 'state/health.json', 'state/ready.json', 'state/system-info.json',
                            'state/modes.json', 'state/executions-active.json', 'state/ipfs.json'}
    assert 'Cannot reach' in missing['state/health.json']
    assert missing['state/system-info.json'].startswith('skipped: the API did not answer')
    blobs = members(result['path'])
    listed = [m['path'] for m in json.loads(blobs['%s/manifest.json' % NAME])['members']]
    assert 'state/db.json' in listed and 'logs/qflow.log' in listed and 'config/qflow.env.redacted' in listed
    assert_no_secret(blobs)


def test_older_node_without_modes(tmp_path, stub_server):
    params, dummy = make_node(str(tmp_path / 'node'))
    server = stub_server(api_routes(modes=False))
    result, failed = run(dict(params, api_url=server.url, api_token=TOKEN, metrics_url=server.url + '/metrics',
                              dest=str(tmp_path / 'out'), name=NAME))
    assert not failed
    assert result['manifest']['missing'] == [
        {'item': 'state/modes.json', 'reason': 'GET /api/v1/system/modes answered 404: this node has no operating modes '
                                               '(older node)'}]


def test_log_lines_and_unparsable_config(node):
    with open(node['config_path'], 'a') as h:
        h.write('  broken: [unclosed\npassword: hunter2-is-long-enough\n')
    result, failed = run(args_of(node, log_lines=3))
    assert not failed, result
    blobs = members(result['path'])
    log = blobs['%s/logs/qflow.log' % NAME]
    assert log.count(b'\n') == 3 and b'request 39' in log and b'<redacted sha256:' in log
    cfg = blobs['%s/config/qflow-config.yaml' % NAME].decode()
    assert 'redacted line by line' in cfg and 'hunter2-is-long-enough' not in cfg and 'password: <redacted' in cfg
    assert 'maxConcurrentFlows: 100' in cfg
    manifest = json.loads(blobs['%s/manifest.json' % NAME])
    assert any(n.startswith('config:') and 'does not parse' in n for n in manifest['notes'])
    note = [m for m in manifest['members'] if m['path'] == 'logs/qflow.log'][0]['note']
    assert note.startswith('last 3 lines')
    assert_no_secret(blobs)


def test_forensics_check_mode_writes_nothing(node):
    result, failed = run(args_of(node, mode='forensics'), check_mode=True)
    assert not failed
    assert result['changed'] is True and result['manifest']['forensics']['files_hashed'] >= 10
    assert not os.path.exists(node['dest'])


@pytest.mark.parametrize('extra,fragment', [
    ({'name': '../escape'}, 'cannot be used as a file name'),
    ({'name': 'has space'}, 'cannot be used as a file name'),
    ({'name': ''}, 'cannot be used as a file name'),
    ({'since': 'two hours'}, 'since: invalid duration'),
    ({'log_lines': -1}, 'log_lines must be 0'),
    ({'timeout': 0}, 'timeout must be at least 1'),
    ({'data_dir': '/nonexistent/qflow/data'}, 'data_dir /nonexistent/qflow/data does not exist'),
    ({'log_dir': '/nonexistent/qflow/log'}, 'log_dir /nonexistent/qflow/log does not exist'),
    ({'config_path': '/nonexistent/etc/qflow-config.yaml'}, 'the directory of config_path'),
    ({'release_dir': '/nonexistent/releases'}, 'release_dir /nonexistent/releases is not a directory'),
])
def test_bad_inputs_write_nothing(node, extra, fragment):
    before = snapshot(node['_root'])
    result, failed = run(args_of(node, **extra))
    assert failed, result
    assert fragment in result['msg'] and 'nothing was written' in result['msg']
    assert not os.path.exists(node['dest'])
    assert snapshot(node['_root']) == before


@pytest.mark.parametrize('where', ['data_dir', 'log_dir', 'backup_dir', 'release_dir', 'etc'])
def test_forensics_dest_inside_evidence_refused(node, where):
    base = os.path.dirname(node['config_path']) if where == 'etc' else node[where]
    dest = os.path.join(base, 'incident')
    before = snapshot(node['_root'])
    result, failed = run(args_of(node, mode='forensics', dest=dest))
    assert failed
    assert 'forensics mode must not write among the evidence' in result['msg']
    assert not os.path.exists(dest)
    assert snapshot(node['_root']) == before


def test_dest_is_a_file(node, tmp_path):
    target = tmp_path / 'afile'
    target.write_text('x')
    result, failed = run(args_of(node, dest=str(target)))
    assert failed and 'is not a directory' in result['msg']
    assert target.read_text() == 'x'


def test_unreadable_existing_archive(node):
    os.makedirs(node['dest'])
    archive = os.path.join(node['dest'], NAME + '.tar.gz')
    with open(archive, 'wb') as h:
        h.write(b'not a tarball')
    result, failed = run(args_of(node))
    assert failed and 'cannot be read' in result['msg'] and 'force: true' in result['msg']
    with open(archive, 'rb') as h:
        assert h.read() == b'not a tarball'
    result, failed = run(args_of(node, force=True))
    assert not failed and result['changed'] is True
    assert tarfile.is_tarfile(archive)


def test_secret_helpers():
    assert engine.is_secret_key('QFLOW_JWT_SECRET') and engine.is_secret_key('QFLOW_ENCRYPTION_KEY')
    assert engine.is_secret_key('apiKey') and engine.is_secret_key('password')
    assert not engine.is_secret_key('tokenTtl') and not engine.is_secret_key('tlsKeyPath')
    assert not engine.is_secret_key('NODE_ID') and not engine.is_secret_key('QFLOW_DATA_DIR')
    scrubber = engine.Scrubber([JWT])
    assert scrubber(b'a %s b %s' % (JWT.encode(), JWT.encode())).count(b'<redacted sha256:') == 2
    assert scrubber.count == 2
    assert engine._sha256sum_line('ab', '/a\nb') == '\\ab  /a\\nb\n'


def test_tail():
    data = b''.join(b'line %d\n' % i for i in range(100000))
    handle = io.BytesIO(data)
    out, cut = engine._tail(handle, len(data), 5)
    assert out == b''.join(b'line %d\n' % i for i in range(99995, 100000)) and cut
    out, cut = engine._tail(io.BytesIO(b'a\nb\n'), 4, 5)
    assert out == b'a\nb\n' and not cut
