import pytest

from qflow_lab.node.server import Node

from _lab_helpers import SECRET


@pytest.fixture
def node(tmp_path):
    (tmp_path / "etc").mkdir()
    cfg = tmp_path / "etc" / "qflow-config.yaml"
    cfg.write_text("qflow:\n  engine:\n    maxMemoryMB: 128\n    maxConcurrentFlows: 20\n  logging:\n    level: debug\n")
    faults = tmp_path / "faults.json"
    faults.write_text('{"faults": []}')
    env = {"NODE_ID": "unit-node", "QFLOW_JWT_SECRET": SECRET, "QFLOW_ENCRYPTION_KEY": "k",
           "QFLOW_DATA_DIR": str(tmp_path / "data"), "QFLOW_LOG_DIR": str(tmp_path / "log")}
    n = Node(env, str(cfg), workload_rate=0, faults_file=str(faults))
    api_port, metrics_port = n.start("127.0.0.1", 0, 0)
    n.api = "http://127.0.0.1:%d" % api_port
    n.metrics_url = "http://127.0.0.1:%d/metrics" % metrics_port
    n.tmp = tmp_path
    n.faults_path = faults
    yield n
    n.stop()
