"""The reference node keeps flow definitions in IPFS (contract §2.3): against a stub RPC API (POST only)."""
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from qflow_lab.node import ipfs as nodeipfs
from qflow_lab.node.server import Node
from qflow_lab.tokens import make_token

from _lab_helpers import SECRET, request

FLOW = {"id": "ipfs-flow", "name": "IPFS flow", "version": "1.0.0", "owner": "squid:ops:lab-operator",
        "steps": [{"id": "s1", "type": "task", "action": "noop"}],
        "metadata": {"tags": [], "category": "test", "visibility": "private", "requiredPermissions": []}}


class StubIpfs:
    def __init__(self):
        self.pins = {}  # cid -> bytes
        self.up = True
        self.calls = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(405)
                self.end_headers()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                stub.calls.append((url.path, q))
                if not stub.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                out, status = {}, 200
                if url.path == "/api/v0/version":
                    out = {"Version": "0.18.1"}
                elif url.path == "/api/v0/add":
                    data = body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
                    cid = "bafk" + hashlib.sha256(data).hexdigest()[:40]
                    stub.pins[cid] = data
                    out = {"Name": "x", "Hash": cid, "Size": len(data)}
                elif url.path == "/api/v0/pin/rm":
                    stub.pins.pop(q["arg"], None)
                    out = {"Pins": [q["arg"]]}
                elif url.path == "/api/v0/pin/ls":
                    if q.get("arg") not in stub.pins:
                        out, status = {"Message": "path '%s' is not pinned" % q.get("arg"), "Type": "error"}, 500
                    else:
                        out = {"Keys": {q["arg"]: {"Type": "recursive"}}}
                raw = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def ipfs_node(tmp_path, monkeypatch):
    monkeypatch.setattr(nodeipfs, "SYNC_INTERVAL", 0.1)
    stub = StubIpfs()
    (tmp_path / "etc").mkdir()
    cfg = tmp_path / "etc" / "qflow-config.yaml"
    cfg.write_text("qflow:\n  storage:\n    ipfsApiUrl: %s\n" % stub.url)
    env = {"NODE_ID": "unit-node", "QFLOW_JWT_SECRET": SECRET, "QFLOW_ENCRYPTION_KEY": "k",
           "QFLOW_DATA_DIR": str(tmp_path / "data"), "QFLOW_LOG_DIR": str(tmp_path / "log")}
    n = Node(env, str(cfg), workload_rate=0, faults_file=str(tmp_path / "faults.json"))
    port, _ = n.start("127.0.0.1", 0, 0)
    n.api = "http://127.0.0.1:%d" % port
    n.stub = stub
    yield n
    n.stop()
    stub.httpd.shutdown()


def wait(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_flows_live_in_ipfs(ipfs_node):
    n, stub = ipfs_node, ipfs_node.stub
    tok = make_token(SECRET, "squid:ops:lab-operator", ["*"], 600)
    assert wait(lambda: len(stub.pins) == 3)  # the built-in flows, added by the sync thread
    st, _, raw = request(n.api, "POST", "/api/v1/flows", {"flowData": json.dumps(FLOW)}, token=tok)
    cid = json.loads(raw)["data"]["ipfsCid"]
    assert st == 201 and cid in stub.pins and json.loads(stub.pins[cid])["id"] == "ipfs-flow"
    assert stub.pins[cid] == nodeipfs.canonical(json.loads(raw)["data"]["flow"])
    assert n.store.flow_cid("ipfs-flow") == cid
    add = [q for p, q in stub.calls if p == "/api/v0/add"][-1]
    assert add["pin"] == "true" and add["cid-version"] == "1" and add["cid-base"] == "base32"

    st, _, raw = request(n.api, "PUT", "/api/v1/flows/ipfs-flow", {"flowData": json.dumps(dict(FLOW, name="v2"))}, token=tok)
    new = json.loads(raw)["data"]["ipfsCid"]
    assert st == 200 and new != cid and new in stub.pins
    assert wait(lambda: cid not in stub.pins)  # the previous version is unpinned

    st, _, raw = request(n.api, "GET", "/api/v1/flows/ipfs-flow", token=tok)
    assert json.loads(raw)["data"]["ipfsCid"] == new
    assert json.loads(request(n.api, "GET", "/health/ready")[2])["data"]["checks"]["ipfs"] is True

    st, _, _ = request(n.api, "DELETE", "/api/v1/flows/ipfs-flow", token=tok)
    assert st == 200 and wait(lambda: new not in stub.pins)


def test_ipfs_down_not_ready_then_catches_up(ipfs_node):
    n, stub = ipfs_node, ipfs_node.stub
    tok = make_token(SECRET, "squid:ops:lab-operator", ["*"], 600)
    stub.up = False
    st, _, raw = request(n.api, "GET", "/health/ready")
    assert st == 503 and json.loads(raw)["error"]["details"]["checks"]["ipfs"] is False
    st, _, raw = request(n.api, "POST", "/api/v1/flows", {"flowData": json.dumps(FLOW)}, token=tok)
    assert st == 201 and json.loads(raw)["data"]["ipfsCid"] is None  # kept locally, added later
    stub.up = True
    assert wait(lambda: n.store.flow_cid("ipfs-flow") in stub.pins)
    assert request(n.api, "GET", "/health/ready")[0] == 200


def test_render_one_ipfs_daemon_per_node():
    from qflow_lab import render
    conf = render.ipfs_programs("/lab", "/py", "/src", 2)
    assert "[program:ipfs-qflow-node-2]" in conf and "ipfs-qflow-node-3" not in conf
    assert "--repo /lab/nodes/qflow-node-1/ipfs --ip 127.0.1.1" in conf and "priority=100" in conf
    assert 'NO_UPDATE_NOTIFIER="1"' in conf
    init = render.ipfs_init_config("127.0.1.2")
    assert init["Addresses"]["Swarm"] == [] and init["Bootstrap"] == [] and init["Discovery"]["MDNS"]["Enabled"] is False
    assert init["Addresses"]["API"] == "/ip4/127.0.1.2/tcp/5001"
    assert render.node_config(2)["qflow"]["storage"]["ipfsApiUrl"] == render.ipfs_api_url(2) == "http://127.0.1.2:5001"
