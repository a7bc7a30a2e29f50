# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helpers: a real HTTP server on 127.0.0.1 with stub answers; re-exports the module runner (qflow_module_runner)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qflow_module_runner import ModuleExit, patch_module_args, run_module  # noqa: F401 pylint: disable=unused-import


def envelope(data, request_id='req-1'):
    return {'success': True, 'data': data, 'timestamp': '2026-11-27T03:12:45.123Z', 'requestId': request_id}


def error_envelope(code, message, details=None, request_id='req-err'):
    err = {'code': code, 'message': message}
    if details is not None:
        err['details'] = details
    return {'success': False, 'error': err, 'timestamp': '2026-11-27T03:12:45.123Z', 'requestId': request_id}


class Route(object):
    """An answer: status, body (dict/list -> JSON, str/bytes as is), headers, optional delay."""

    def __init__(self, status=200, body=None, headers=None, delay=0.0, content_type=None):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.delay = delay
        self.content_type = content_type


class StubServer(object):
    """``routes`` maps 'METHOD /path' (or '/path' for GET) to a Route, a list of Routes (served in turn, the
    last one repeats) or a callable(request) -> Route. ``requests`` records what came in."""

    def __init__(self, routes=None):
        self.routes = dict(routes or {})
        self.requests = []
        self._counters = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):  # silence
                pass

            def _handle(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else b''
                path = self.path
                plain = path.split('?', 1)[0]
                req = dict(method=self.command, path=path, plain_path=plain, headers=dict((k.lower(), v) for k, v in self.headers.items()), body=body)
                stub.requests.append(req)
                route = stub.routes.get('%s %s' % (self.command, plain))
                if route is None and self.command == 'GET':
                    route = stub.routes.get(plain)
                if route is None:
                    route = Route(404, {'success': False, 'error': {'code': 'NOT_FOUND', 'message': 'Endpoint not found'},
                                        'requestId': 'x'})
                if isinstance(route, list):
                    key = '%s %s' % (self.command, plain)
                    idx = stub._counters.get(key, 0)
                    stub._counters[key] = idx + 1
                    route = route[min(idx, len(route) - 1)]
                if callable(route) and not isinstance(route, Route):
                    route = route(req)
                if route.delay:
                    time.sleep(route.delay)
                payload = route.body
                ctype = route.content_type
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode('utf-8')
                    ctype = ctype or 'application/json'
                elif isinstance(payload, str):
                    payload = payload.encode('utf-8')
                elif payload is None:
                    payload = b''
                self.send_response(route.status)
                self.send_header('Content-Type', ctype or 'text/plain; charset=utf-8')
                self.send_header('Content-Length', str(len(payload)))
                for k, v in route.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = 'http://127.0.0.1:%d' % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.05})
        self.thread.daemon = True
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stub_server():
    servers = []

    def make(routes=None):
        server = StubServer(routes)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def free_port():
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class RawServer(object):
    """A TCP server that answers every connection with fixed bytes (not HTTP) and closes."""

    def __init__(self, payload):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.url = 'http://127.0.0.1:%d' % self.port
        self.payload = payload
        self._stop = False
        self.thread = threading.Thread(target=self._serve)
        self.thread.daemon = True
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, dummy = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            try:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                except socket.timeout:
                    pass
                conn.sendall(self.payload)
            finally:
                conn.close()

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()
