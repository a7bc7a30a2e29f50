"""networking.enableTLS: the reference node refuses to start without cert and key, and serves TLS with them."""
import json
import ssl
import subprocess
import urllib.request

import pytest

from qflow_lab.node.server import Node

from _lab_helpers import SECRET


def make_node(tmp_path, networking):
    (tmp_path / "etc").mkdir(exist_ok=True)
    cfg = tmp_path / "etc" / "qflow-config.yaml"
    cfg.write_text(json.dumps({"qflow": {"networking": networking}}))
    env = {"NODE_ID": "tls-node", "QFLOW_JWT_SECRET": SECRET, "QFLOW_ENCRYPTION_KEY": "k",
           "QFLOW_DATA_DIR": str(tmp_path / "data"), "QFLOW_LOG_DIR": str(tmp_path / "log")}
    faults = tmp_path / "faults.json"
    faults.write_text('{"faults": []}')
    return Node(env, str(cfg), workload_rate=0, faults_file=str(faults))


def test_tls_without_files_refuses_to_start(tmp_path):
    node = make_node(tmp_path, {"enableTLS": True, "tlsCertPath": str(tmp_path / "missing.crt")})
    try:
        with pytest.raises(SystemExit) as exc:
            node.start("127.0.0.1", 0, 0)
        assert "networking.tlsCertPath and networking.tlsKeyPath are not set or not a file" in str(exc.value)
    finally:
        node.stop()


def test_tls_with_files_serves_https(tmp_path):
    crt, key = tmp_path / "n.crt", tmp_path / "n.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    node = make_node(tmp_path, {"enableTLS": True, "tlsCertPath": str(crt), "tlsKeyPath": str(key)})
    try:
        port, _ = node.start("127.0.0.1", 0, 0)
        ctx = ssl.create_default_context(cafile=str(crt))
        ctx.check_hostname = False
        with urllib.request.urlopen("https://127.0.0.1:%d/health" % port, context=ctx, timeout=10) as r:
            body = json.loads(r.read())
            assert r.status == 200 and (body.get("data") or body)["status"] == "healthy", body
    finally:
        node.stop()
