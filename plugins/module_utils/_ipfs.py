# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to qflow.ops: client of the IPFS RPC API (kubo, js-ipfs) behind qflow.ops.ipfs_repo and qflow.ops.backup.

May change without notice. Every call is a POST (kubo and js-ipfs answer 405 to GET) through _api.fetch.
CIDs are compared by their multihash, because daemons spell the same block differently (CIDv0 ``Qm...``, CIDv1 in
base32 ``bafy...``/``bafk...`` or base58btc ``z...``; ``refs/local`` and ``repo/gc`` name raw-codec CIDs).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import binascii
import hashlib
import json
import os
import uuid

from ansible.module_utils.common.parameters import env_fallback
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six.moves.urllib.parse import urlencode

from ansible_collections.qflow.ops.plugins.module_utils._api import QflowError, fetch, http_argument_spec, preview

DEFAULT_IPFS_API_URL = 'http://localhost:5001'
IPFS_HINT = 'Check that the IPFS daemon is running and that api_url (QFLOW_IPFS_API_URL) points to its RPC API (port 5001).'
_B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
SHA2_256 = 0x12
IDENTITY = 0x00


class IpfsError(QflowError):
    """The daemon answered an error, or something that is not the RPC API."""

    def __init__(self, msg, url=None, status=None):
        super(IpfsError, self).__init__(msg, url=url)
        self.status = status


def ipfs_argument_spec(url_option='api_url'):
    """The RPC API URL option (env QFLOW_IPFS_API_URL) + the shared HTTP options."""
    spec = {url_option: dict(type='str', fallback=(env_fallback, ['QFLOW_IPFS_API_URL']))}
    spec.update(http_argument_spec())
    return spec


# ---------------------------------------------------------------------------------------------
# CIDs

def _b58decode(text):
    num = 0
    for char in text:
        index = _B58.find(char)
        if index < 0:
            raise ValueError('invalid base58 character %r' % char)
        num = num * 58 + index
    raw = bytearray()
    while num:
        num, rest = divmod(num, 256)
        raw.insert(0, rest)
    pad = len(text) - len(text.lstrip('1'))
    return b'\x00' * pad + bytes(raw)


def _varint(data, pos):
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError('truncated varint')
        byte = bytearray(data[pos:pos + 1])[0]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def cid_bytes(cid):
    """Binary CID (or, for CIDv0, the binary multihash) of a CID string; raise ValueError when it is not one."""
    cid = (cid or '').strip()
    if cid.startswith('/ipfs/'):
        cid = cid[len('/ipfs/'):]
    if len(cid) == 46 and cid.startswith('Qm'):
        return _b58decode(cid)
    if len(cid) < 2:
        raise ValueError('not a CID: %r' % cid)
    prefix, body = cid[0], cid[1:]
    if prefix in 'bB':
        body = body.upper()
        return base64.b32decode(body + '=' * (-len(body) % 8))
    if prefix == 'z':
        return _b58decode(body)
    if prefix in 'fF':
        return binascii.unhexlify(body)
    raise ValueError('not a CID (unknown multibase prefix %r): %r' % (prefix, cid))


def parse_cid(cid):
    """(version, codec, multihash bytes, hash code, digest) of a CID string; raise ValueError."""
    raw = cid_bytes(cid)
    if len(raw) == 34 and raw[:2] == b'\x12\x20':  # CIDv0: a bare sha2-256 multihash
        return 0, 0x70, raw, SHA2_256, raw[2:]
    version, pos = _varint(raw, 0)
    if version != 1:
        raise ValueError('unsupported CID version %d: %r' % (version, cid))
    codec, pos = _varint(raw, pos)
    multihash = raw[pos:]
    code, hpos = _varint(multihash, 0)
    length, hpos = _varint(multihash, hpos)
    digest = multihash[hpos:]
    if len(digest) != length:
        raise ValueError('CID %r has a truncated multihash' % cid)
    return version, codec, multihash, code, digest


def multihash_key(cid):
    """The multihash of a CID (hex): equal for every spelling of the same block. Unparsable CIDs stay as they are."""
    try:
        return binascii.hexlify(parse_cid(cid)[2]).decode('ascii')
    except (ValueError, TypeError, binascii.Error):
        return cid


# ---------------------------------------------------------------------------------------------
# client

class IpfsClient(object):
    """The RPC API at <api_url>/api/v0. ``module_or_params``: an AnsibleModule or a dict with api_url and the
    http_argument_spec() keys (``url_option`` names the URL key)."""

    def __init__(self, module_or_params, url_option='api_url'):
        params = getattr(module_or_params, 'params', module_or_params) or {}
        url = (params.get(url_option) or DEFAULT_IPFS_API_URL).strip().rstrip('/')
        if url.endswith('/api/v0'):
            url = url[:-len('/api/v0')]
        if '://' not in url:
            url = 'http://' + url
        self.base_url = url
        self.timeout = params.get('timeout') or 10
        self.validate_certs = params.get('validate_certs', True) is not False
        self.ca_path = params.get('ca_path')

    def _url(self, command, args):
        pairs = []
        for key, value in args or ():
            if value is None:
                continue
            if isinstance(value, bool):
                value = 'true' if value else 'false'
            pairs.append((key, value))
        return '%s/api/v0/%s%s' % (self.base_url, command, ('?' + urlencode(pairs)) if pairs else '')

    def raw(self, command, args=(), data=None, headers=None, timeout=None):
        """POST one command; return the body bytes of a 200 answer, raise IpfsError / QflowHttpError otherwise."""
        url = self._url(command, args)
        resp = fetch(url, method='POST', headers=headers or {}, data=data if data is not None else b'',
                     timeout=timeout or self.timeout, validate_certs=self.validate_certs, ca_path=self.ca_path,
                     what='The IPFS RPC API', hint=IPFS_HINT)
        if resp.status == 200:
            return resp.body
        shown = '%s/api/v0/%s' % (self.base_url, command)
        message = None
        try:
            answer = json.loads(resp.text())
            if isinstance(answer, dict):
                message = answer.get('Message')
        except ValueError:
            pass
        if resp.status == 405:
            raise IpfsError('IPFS RPC API %s answered HTTP 405 (method not allowed): %s is not an IPFS RPC API, or a proxy '
                            'turns POST into GET. %s' % (command, self.base_url, IPFS_HINT), url=shown, status=405)
        raise IpfsError('IPFS RPC API %s answered HTTP %s: %s' % (command, resp.status, message or preview(resp.body)),
                        url=shown, status=resp.status)

    def call(self, command, args=(), timeout=None):
        """A command answering one JSON object."""
        body = self.raw(command, args, timeout=timeout)
        try:
            return json.loads(to_text(body, errors='surrogate_or_replace'))
        except ValueError:
            raise IpfsError('IPFS RPC API %s at %s answered with a body that is not JSON: %s. %s'
                            % (command, self.base_url, preview(body), IPFS_HINT), url=self.base_url)

    def stream(self, command, args=(), timeout=None):
        """A command answering newline-delimited JSON (refs, repo/gc, dag/import, pin/ls stream)."""
        body = to_text(self.raw(command, args, timeout=timeout), errors='surrogate_or_replace')
        out = []
        for line in body.splitlines():
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                raise IpfsError('IPFS RPC API %s at %s answered a line that is not JSON: %s. %s'
                                % (command, self.base_url, preview(line), IPFS_HINT), url=self.base_url)
        return out

    @staticmethod
    def unsupported(exc):
        """The daemon does not have the command (js-ipfs: 404 Not Found; kubo: 404 page not found)."""
        return isinstance(exc, IpfsError) and exc.status in (404, 501)

    # -- commands ---------------------------------------------------------------------------------

    def version(self):
        return self.call('version')

    def repo_stat(self):
        return self.call('repo/stat')

    def pins(self, pin_type='all'):
        """{cid: type} of the pins (recursive, direct; indirect only with pin_type indirect/all on kubo)."""
        keys = self.call('pin/ls', [('type', pin_type)]).get('Keys') or {}
        return dict((cid, (info or {}).get('Type')) for cid, info in keys.items())

    def is_pinned(self, cid):
        try:
            keys = self.call('pin/ls', [('arg', cid), ('type', 'recursive')]).get('Keys') or {}
        except IpfsError as exc:
            if 'not pinned' in (exc.msg or ''):
                return False
            raise
        return bool(keys)

    def local_refs(self):
        """Every block in the repo, as the daemon names it."""
        return [r.get('Ref') for r in self.stream('refs/local') if r.get('Ref') and not r.get('Err')]

    def refs(self, cid, timeout=None):
        """Every block below cid (recursive, unique); a missing block makes the daemon search and time out."""
        rows = self.stream('refs', [('arg', cid), ('recursive', True), ('unique', True),
                                    ('timeout', '%ds' % (timeout or self.timeout))], timeout=(timeout or self.timeout) + 2)
        errors = [r['Err'] for r in rows if r.get('Err')]
        if errors:
            raise IpfsError('IPFS refs of %s: %s' % (cid, errors[0]))
        return [r.get('Ref') for r in rows if r.get('Ref')]

    def mfs_root(self):
        """The CID of the MFS root (files/stat /), which gc keeps; None when the daemon has no MFS."""
        try:
            return self.call('files/stat', [('arg', '/')]).get('Hash')
        except IpfsError:
            return None

    def gc(self):
        """Run repo/gc; return (removed CIDs, errors)."""
        removed = []
        errors = []
        for row in self.stream('repo/gc', timeout=max(self.timeout, 60)):
            if row.get('Error'):
                errors.append(row['Error'])
                continue
            key = row.get('Key')
            if isinstance(key, dict):
                key = key.get('/')
            if key:
                removed.append(key)
        return removed, errors

    def block_get(self, cid, timeout=None):
        return self.raw('block/get', [('arg', cid), ('timeout', '%ds' % (timeout or self.timeout))],
                        timeout=(timeout or self.timeout) + 2)

    def dag_export(self, cid, path):
        """Write the CAR of the DAG below cid to path; return its size."""
        data = self.raw('dag/export', [('arg', cid), ('timeout', '%ds' % self.timeout)], timeout=max(self.timeout, 60))
        with open(path, 'wb') as handle:
            handle.write(data)
        return len(data)

    def dag_import(self, path):
        """Import a CAR file (multipart) and pin its roots; return the root CIDs the daemon reports."""
        boundary = uuid.uuid4().hex
        with open(path, 'rb') as handle:
            content = handle.read()
        body = (('--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n'
                 'Content-Type: application/octet-stream\r\n\r\n' % (boundary, os.path.basename(path))).encode('utf-8')
                + content + ('\r\n--%s--\r\n' % boundary).encode('utf-8'))
        rows = self.stream_post('dag/import', [('pin-roots', True)], body, 'multipart/form-data; boundary=%s' % boundary)
        roots = []
        for row in rows:
            root = row.get('Root') if isinstance(row, dict) else None
            if not root:
                continue
            if root.get('PinErrorMsg'):
                raise IpfsError('IPFS dag/import of %s could not pin a root: %s' % (path, root['PinErrorMsg']))
            cid = root.get('Cid')
            roots.append(cid.get('/') if isinstance(cid, dict) else cid)
        return roots

    def stream_post(self, command, args, data, content_type):
        body = self.raw(command, args, data=data, headers={'Content-Type': content_type}, timeout=max(self.timeout, 60))
        text = to_text(body, errors='surrogate_or_replace')
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise IpfsError('IPFS RPC API %s at %s answered a line that is not JSON: %s' % (command, self.base_url, preview(body)))


# ---------------------------------------------------------------------------------------------
# operations of qflow.ops.ipfs_repo

def repo_summary(client):
    """stat: repo size, objects, storage max, daemon version, pins (by type). Reads only."""
    stat = client.repo_stat()
    version = client.version()
    pins = client.pins('all')
    by_type = {}
    for kind in pins.values():
        by_type[kind or 'unknown'] = by_type.get(kind or 'unknown', 0) + 1

    def _int(value):
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    return {
        'repo_size': _int(stat.get('RepoSize')),
        'num_objects': _int(stat.get('NumObjects')),
        'storage_max': _int(stat.get('StorageMax')),
        'repo_path': stat.get('RepoPath'),
        'repo_version': to_text(stat.get('Version')) if stat.get('Version') is not None else None,
        'version': version.get('Version'),
        'pins': len(pins),
        'pins_by_type': by_type,
    }


def kept_keys(client):
    """Multihash keys gc keeps: pinned roots, everything below recursive pins, the MFS root and below."""
    keep = set()
    roots = []
    for cid, kind in client.pins('all').items():
        keep.add(multihash_key(cid))
        if kind in ('recursive', None):
            roots.append(cid)
    mfs = client.mfs_root()
    if mfs:
        keep.add(multihash_key(mfs))
        roots.append(mfs)
    for cid in roots:
        for ref in client.refs(cid):
            keep.add(multihash_key(ref))
    return keep


def gc_candidates(client):
    """The local blocks repo/gc would remove (check mode: nothing is removed)."""
    keep = kept_keys(client)
    return sorted(ref for ref in client.local_refs() if multihash_key(ref) not in keep)


def _check_block(client, cid, timeout):
    """None when the block is present and its bytes hash to its CID; else a problem message."""
    try:
        data = client.block_get(cid, timeout=timeout)
    except IpfsError as exc:
        return '%s: block missing or unreadable (%s)' % (cid, exc.msg)
    try:
        code, digest = parse_cid(cid)[3:5]
    except ValueError:
        return None
    if code == SHA2_256 and hashlib.sha256(data).digest() != digest:
        return '%s: block is corrupt (its sha2-256 does not match the CID)' % cid
    if code == IDENTITY and data != digest:
        return '%s: identity block differs from its CID' % cid
    return None


def verify_repo(client, block_timeout=5):
    """verify: kubo's repo/verify when the daemon has it, else every pinned root and every block below recursive pins
    is read (block/get, offline through the daemon's per-request timeout) and re-hashed.

    Return {method, checked, problems: [messages naming the CID]}. Reads only.
    """
    try:
        rows = client.stream('repo/verify', timeout=max(client.timeout, 120))
    except IpfsError as exc:
        if not IpfsClient.unsupported(exc):
            raise
        rows = None
    if rows is not None:
        problems = []
        checked = 0
        for row in rows:
            msg = row.get('Msg') or row.get('Message') or ''
            if msg and ('corrupt' in msg or 'error' in msg.lower() or 'fail' in msg.lower()):
                problems.append(msg)
            if row.get('Progress') is not None:
                try:
                    checked = max(checked, int(row['Progress']))
                except (TypeError, ValueError):
                    pass
        return {'method': 'repo/verify', 'checked': checked, 'problems': problems}

    local = set(multihash_key(ref) for ref in client.local_refs())
    problems = []
    checked = 0
    seen = set()
    for cid, kind in sorted(client.pins('all').items()):
        todo = [cid]
        if kind in ('recursive', None) and multihash_key(cid) in local:
            try:
                todo += client.refs(cid, timeout=block_timeout)
            except (IpfsError, QflowError) as exc:
                problems.append('%s: a block below this pin is missing (%s)' % (cid, exc.msg))
        for ref in todo:
            key = multihash_key(ref)
            if key in seen:
                continue
            seen.add(key)
            checked += 1
            if key not in local:
                problems.append('%s: pinned block is not in the repo' % ref if ref == cid else '%s: block below pin %s is not in the repo' % (ref, cid))
                continue
            problem = _check_block(client, ref, block_timeout)
            if problem:
                problems.append(problem)
    return {'method': 'pins', 'checked': checked, 'problems': problems}
