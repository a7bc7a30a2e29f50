"""A FAKE Kubernetes API server for the tests: loopback HTTP, stdlib only, Secrets, Deployments, StatefulSets.

Not a Kubernetes: no real API server can be had on the test machine (see docs, "tested against a fake API server").
It answers what kubernetes.core's dynamic client (the Python ``kubernetes`` library) asks for when it reads and
patches a Secret, and a Deployment or StatefulSet (the service role's rollout restart): discovery (/version, /api,
/api/v1, /apis, /apis/apps/v1), GET/PATCH /api/v1/namespaces/<ns>/secrets/<name> and
/apis/apps/v1/namespaces/<ns>/{deployments,statefulsets}/<name>, with merge-patch semantics (strategic merge is the
same for a Secret's maps; null deletes a key) and ``dryRun=All`` (the answer of a patch that is not stored, which is
how kubernetes.core runs in check mode). Every request is logged in ``requests``; an unknown path answers 404 and is
logged in ``unknown`` so that a test can show what the client wanted.
A StatefulSet's rollout is instant: a change of its spec bumps ``generation`` and its revision (the pod template's
hash), and the status shows it observed and rolled out (what kubernetes.core's StatefulSet readiness waits for).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

OBJECT_PATH = re.compile(r'^/(?:api/v1|apis/apps/v1)/namespaces/([^/]+)/(secrets|deployments|statefulsets)/([^/]+)$')

VERSION = {'major': '1', 'minor': '32', 'gitVersion': 'v1.32.0-qflow-fake', 'platform': 'linux/amd64'}
API_VERSIONS = {'kind': 'APIVersions', 'versions': ['v1'],
                'serverAddressByClientCIDRs': [{'clientCIDR': '0.0.0.0/0', 'serverAddress': '127.0.0.1'}]}
API_GROUPS = {'kind': 'APIGroupList', 'apiVersion': 'v1', 'groups': [
    {'name': 'apps', 'versions': [{'groupVersion': 'apps/v1', 'version': 'v1'}],
     'preferredVersion': {'groupVersion': 'apps/v1', 'version': 'v1'}}]}
API_V1 = {'kind': 'APIResourceList', 'groupVersion': 'v1', 'resources': [
    {'name': 'secrets', 'singularName': 'secret', 'namespaced': True, 'kind': 'Secret',
     'verbs': ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']},
]}
APPS_V1 = {'kind': 'APIResourceList', 'groupVersion': 'apps/v1', 'resources': [
    {'name': 'deployments', 'singularName': 'deployment', 'namespaced': True, 'kind': 'Deployment',
     'verbs': ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']},
    {'name': 'statefulsets', 'singularName': 'statefulset', 'namespaced': True, 'kind': 'StatefulSet',
     'verbs': ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']},
]}


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _rolled_out(sts):
    """A StatefulSet after its controller's instant rollout: the template's revision is current, every replica on it."""
    revision = '%s-%s' % (sts['metadata']['name'], hashlib.sha256(
        json.dumps(sts['spec']['template'], sort_keys=True).encode()).hexdigest()[:10])
    replicas = sts['spec']['replicas']
    sts['status'] = {'observedGeneration': sts['metadata']['generation'], 'replicas': replicas,
                     'readyReplicas': replicas, 'currentReplicas': replicas, 'updatedReplicas': replicas,
                     'availableReplicas': replicas, 'currentRevision': revision, 'updateRevision': revision}
    return sts


def _status(code, reason, message):
    return {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure', 'message': message,
            'reason': reason, 'code': code}


class FakeKubeAPI:
    """Start with ``with FakeKubeAPI() as api:``; ``api.url``, ``api.secret()``, ``api.requests``, ``api.unknown``."""

    def __init__(self):
        self.objects = {}  # (namespace, plural, name) -> object
        self.requests = []
        self.unknown = []
        self._lock = threading.Lock()
        self._rv = 100
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(*api.handle('GET', self.path, None, None))

            def do_PATCH(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else b''
                self._send(*api.handle('PATCH', self.path, self.headers.get('Content-Type'), body))

            def do_POST(self):
                self._send(*api.handle('POST', self.path, self.headers.get('Content-Type'), None))

            do_PUT = do_POST
            do_DELETE = do_GET

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def add_secret(self, namespace, name, data=None, annotations=None):
        """Store a Secret; ``data`` holds base64 strings, as the API does."""
        with self._lock:
            self._rv += 1
            self.objects[(namespace, 'secrets', name)] = {
                'kind': 'Secret', 'apiVersion': 'v1', 'type': 'Opaque',
                'metadata': {'name': name, 'namespace': namespace, 'uid': 'fake-%s-%s' % (namespace, name),
                             'resourceVersion': str(self._rv), 'creationTimestamp': '2026-01-01T00:00:00Z',
                             'annotations': dict(annotations or {})},
                'data': dict(data or {}),
            }

    def add_deployment(self, namespace, name):
        """Store a Deployment that is always Available (the fake has no pods)."""
        with self._lock:
            self._rv += 1
            self.objects[(namespace, 'deployments', name)] = {
                'kind': 'Deployment', 'apiVersion': 'apps/v1',
                'metadata': {'name': name, 'namespace': namespace, 'uid': 'fake-%s-%s' % (namespace, name),
                             'resourceVersion': str(self._rv), 'generation': 1},
                'spec': {'replicas': 1, 'template': {'metadata': {'annotations': {}}}},
                'status': {'observedGeneration': 1, 'replicas': 1, 'readyReplicas': 1, 'updatedReplicas': 1,
                           'availableReplicas': 1,
                           'conditions': [{'type': 'Available', 'status': 'True', 'reason': 'MinimumReplicasAvailable'}]},
            }

    def add_statefulset(self, namespace, name):
        """Store a StatefulSet (update strategy RollingUpdate), rolled out (the fake has no pods)."""
        with self._lock:
            self._rv += 1
            self.objects[(namespace, 'statefulsets', name)] = _rolled_out({
                'kind': 'StatefulSet', 'apiVersion': 'apps/v1',
                'metadata': {'name': name, 'namespace': namespace, 'uid': 'fake-%s-%s' % (namespace, name),
                             'resourceVersion': str(self._rv), 'generation': 1},
                'spec': {'replicas': 1, 'serviceName': name, 'updateStrategy': {'type': 'RollingUpdate'},
                         'selector': {'matchLabels': {'app.kubernetes.io/instance': name}},
                         'template': {'metadata': {'labels': {'app.kubernetes.io/instance': name}, 'annotations': {}},
                                      'spec': {'containers': [{'name': 'qflow', 'image': 'registry.example/q:1'}]}}},
            })

    def secret(self, namespace, name):
        with self._lock:
            return copy.deepcopy(self.objects.get((namespace, 'secrets', name)))

    def deployment(self, namespace, name):
        with self._lock:
            return copy.deepcopy(self.objects.get((namespace, 'deployments', name)))

    def statefulset(self, namespace, name):
        with self._lock:
            return copy.deepcopy(self.objects.get((namespace, 'statefulsets', name)))

    def handle(self, method, raw_path, content_type, body):
        parts = urlsplit(raw_path)
        path, query = parts.path.rstrip('/') or '/', parse_qs(parts.query)
        self.requests.append((method, path, parts.query, content_type))
        if method == 'GET' and path == '/version':
            return 200, VERSION
        if method == 'GET' and path == '/api':
            return 200, API_VERSIONS
        if method == 'GET' and path == '/apis':
            return 200, API_GROUPS
        if method == 'GET' and path == '/api/v1':
            return 200, API_V1
        if method == 'GET' and path == '/apis/apps/v1':
            return 200, APPS_V1
        match = OBJECT_PATH.match(path)
        if match and method in ('GET', 'PATCH'):
            key = match.groups()
            with self._lock:
                current = self.objects.get(key)
                if current is None:
                    return 404, _status(404, 'NotFound', '%s "%s" not found' % (key[1], key[2]))
                if method == 'GET':
                    return 200, copy.deepcopy(current)
                if content_type not in ('application/merge-patch+json', 'application/strategic-merge-patch+json'):
                    return 415, _status(415, 'UnsupportedMediaType', 'fake API: unsupported patch type %s' % content_type)
                try:
                    patch = json.loads(body or b'{}')
                except ValueError:
                    return 400, _status(400, 'BadRequest', 'fake API: the patch is not JSON')
                updated = merge_patch(current, patch)
                for field in ('name', 'namespace', 'uid'):
                    updated['metadata'][field] = current['metadata'][field]
                if 'dryRun' in query:
                    return 200, updated
                if updated != current:
                    self._rv += 1
                    updated['metadata']['resourceVersion'] = str(self._rv)
                    if key[1] == 'statefulsets' and updated['spec'] != current['spec']:
                        updated['metadata']['generation'] += 1
                        _rolled_out(updated)
                    self.objects[key] = updated
                return 200, copy.deepcopy(self.objects[key])
        self.unknown.append((method, raw_path))
        return 404, _status(404, 'NotFound', 'fake API: %s %s is not implemented' % (method, path))


def kubeconfig(url, namespace='qflow', contexts=None, current='fake'):
    """A kubeconfig (YAML is a superset of JSON) for a client of the fake server; ``contexts`` {name: url} instead
    makes one cluster and context per entry (``current`` names the current-context), like a kubeconfig of clusters."""
    contexts = contexts or {'fake': url}
    return json.dumps({
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': current,
        'clusters': [{'name': name, 'cluster': {'server': server}} for name, server in contexts.items()],
        'users': [{'name': 'fake', 'user': {'token': 'fake-token'}}],
        'contexts': [{'name': name, 'context': {'cluster': name, 'user': 'fake', 'namespace': namespace}}
                     for name in contexts],
    }, indent=2)
