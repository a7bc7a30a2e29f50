import copy
import json
import re
import time

from qflow_lab.tokens import make_token

from _lab_helpers import SECRET, request

FLOW = {
    "id": "unit-flow", "name": "Unit", "version": "1.0.0", "owner": "squid:ops:lab-operator",
    "steps": [{"id": "s1", "type": "task", "action": "noop"}],
    "metadata": {"tags": ["unit"], "category": "test", "visibility": "private", "requiredPermissions": []},
}


def op_token():
    return make_token(SECRET, "squid:ops:lab-operator", ["*"], 600)


def body(raw):
    return json.loads(raw)


def assert_error(status, raw, want_status, code):
    assert status == want_status, raw
    b = body(raw)
    assert b["success"] is False and b["error"]["code"] == code
    assert set(b) == {"success", "error", "timestamp", "requestId"}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", b["timestamp"])
    return b


def test_health_and_ready_without_token(node):
    st, hdr, raw = request(node.api, "GET", "/health", headers={"X-Request-ID": "req-123"})
    b = body(raw)
    assert st == 200 and b["success"] and b["data"]["status"] == "healthy" and b["data"]["nodeId"] == "unit-node"
    assert b["requestId"] == "req-123" and hdr["X-Request-ID"] == "req-123"
    st, _, raw = request(node.api, "GET", "/health/ready")
    b = body(raw)
    assert st == 200 and b["data"]["status"] == "ready"
    assert set(b["data"]["checks"]) == {"flowParser", "executionEngine", "validationPipeline", "eventEmitter",
                                        "storage", "config"}
    st, _, raw = request(node.api, "GET", "/health/live")
    assert st == 200 and body(raw)["data"] == {"status": "alive"}


def test_not_ready_fault(node):
    node.faults_path.write_text('{"faults": ["not_ready"]}')
    node.faults.poll_once()
    st, _, raw = request(node.api, "GET", "/health/ready")
    b = assert_error(st, raw, 503, "NOT_READY")
    assert b["error"]["details"]["checks"]["storage"] is False


def test_auth_errors(node):
    assert_error(*request(node.api, "GET", "/api/v1/flows")[::2], 401, "MISSING_TOKEN")
    bad = make_token("wrong", "squid:ops:x", ["*"], 600)
    assert_error(*request(node.api, "GET", "/api/v1/flows", token=bad)[::2], 401, "INVALID_TOKEN")
    expired = make_token(SECRET, "squid:ops:x", ["*"], -10)
    assert_error(*request(node.api, "GET", "/api/v1/flows", token=expired)[::2], 401, "INVALID_TOKEN")
    assert_error(*request(node.api, "GET", "/api/v1/flows", token="%%%")[::2], 401, "INVALID_TOKEN")
    reader = make_token(SECRET, "squid:ops:reader", ["flow:read"], 600)
    st, _, raw = request(node.api, "POST", "/api/v1/flows", {"flowData": json.dumps(FLOW)}, token=reader)
    b = assert_error(st, raw, 403, "INSUFFICIENT_PERMISSIONS")
    assert b["error"]["details"]["available"] == ["flow:read"]
    # token via X-Identity-Token header and ?token=
    st, _, _ = request(node.api, "GET", "/api/v1/flows", headers={"X-Identity-Token": op_token()})
    assert st == 200
    from urllib.parse import quote
    st, _, _ = request(node.api, "GET", "/api/v1/flows?token=" + quote(op_token()))
    assert st == 200


def test_not_found_after_auth_and_malformed_json(node):
    assert_error(*request(node.api, "GET", "/api/v1/nope")[::2], 401, "MISSING_TOKEN")
    assert_error(*request(node.api, "GET", "/api/v1/nope", token=op_token())[::2], 404, "NOT_FOUND")
    st, _, raw = request(node.api, "POST", "/api/v1/flows", token=op_token(), raw=b"{broken")
    assert_error(st, raw, 500, "INTERNAL_ERROR")


def test_flow_crud(node):
    t = op_token()
    st, _, raw = request(node.api, "POST", "/api/v1/flows", {"flowData": json.dumps(FLOW), "format": "json"}, token=t)
    assert st == 201, raw
    assert body(raw)["data"]["flow"]["id"] == "unit-flow" and body(raw)["data"]["warnings"] == []
    assert_error(*request(node.api, "POST", "/api/v1/flows", {"flowData": json.dumps(FLOW)}, token=t)[::2],
                 409, "FLOW_EXISTS")
    bad = copy.deepcopy(FLOW)
    bad["id"] = "other"
    bad["version"] = "x"
    st, _, raw = request(node.api, "POST", "/api/v1/flows", {"flowData": json.dumps(bad)}, token=t)
    assert assert_error(st, raw, 400, "FLOW_VALIDATION_FAILED")["error"]["details"]["errors"][0]["code"] == "PATTERN"
    assert_error(*request(node.api, "POST", "/api/v1/flows", {}, token=t)[::2], 400, "MISSING_FLOW_DATA")
    st, _, raw = request(node.api, "GET", "/api/v1/flows?limit=500", token=t)
    p = body(raw)["data"]["pagination"]
    assert st == 200 and p["limit"] == 100 and p["total"] >= 1
    mism = copy.deepcopy(FLOW)
    mism["id"] = "else"
    assert_error(*request(node.api, "PUT", "/api/v1/flows/unit-flow", {"flowData": json.dumps(mism)}, token=t)[::2],
                 400, "ID_MISMATCH")
    st, _, raw = request(node.api, "POST", "/api/v1/flows/validate", {"flowDefinition": bad}, token=t)
    d = body(raw)["data"]
    assert st == 200 and d["valid"] is False and d["issues"] and d["flow"] is None
    assert_error(*request(node.api, "POST", "/api/v1/flows/unit-flow/start", {}, token=t)[::2], 400,
                 "MISSING_CONTEXT")
    st, _, raw = request(node.api, "POST", "/api/v1/flows/unit-flow/start",
                         {"context": {"triggeredBy": "squid:ops:lab-operator", "triggerType": "manual"}}, token=t)
    assert st == 201 and body(raw)["data"]["status"] == "pending"
    eid = body(raw)["data"]["executionId"]
    for _ in range(100):
        st, _, raw = request(node.api, "GET", "/api/v1/executions/" + eid, token=t)
        if body(raw)["data"]["execution"]["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    assert body(raw)["data"]["execution"]["status"] in ("completed", "failed")
    assert_error(*request(node.api, "POST", "/api/v1/executions/%s/pause" % eid, token=t)[::2], 400,
                 "PAUSE_EXECUTION_ERROR")
    st, _, raw = request(node.api, "DELETE", "/api/v1/flows/unit-flow", token=t)
    assert st == 200 and body(raw)["data"]["deletedFlow"]["id"] == "unit-flow"
    assert_error(*request(node.api, "DELETE", "/api/v1/flows/unit-flow", token=t)[::2], 404, "FLOW_NOT_FOUND")


def test_alert_rules_and_subnets_persist(node):
    t = op_token()
    st, _, raw = request(node.api, "POST", "/api/v1/dashboard/alerts",
                         {"name": "x", "condition": "errors > 1", "severity": "high"}, token=t)
    assert st == 201
    aid = body(raw)["data"]["alert"]["id"]
    assert [a["id"] for a in body(request(node.api, "GET", "/api/v1/dashboard/alerts", token=t)[2])["data"]
            ["alerts"]] == [aid]
    st, _, raw = request(node.api, "POST", "/api/v1/dao/subnets", {"name": "s"}, token=t)
    assert st == 201 and body(raw)["data"]["subnet"]["id"].startswith("dao.")


def parse_prometheus(text):
    """Minimal 0.0.4 parser: {name{labels}: value}, types."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if line.startswith("#"):
            assert line.startswith("# HELP "), line
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$', line)
        assert m, "bad sample line: %r" % line
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples, types


def test_metrics_text(node):
    st, hdr, raw = request(node.metrics_url.rsplit("/", 1)[0], "GET", "/metrics")
    assert st == 200 and hdr["Content-Type"].startswith("text/plain; version=0.0.4")
    samples, types = parse_prometheus(raw.decode())
    for name, typ in [("qflow_flow_execution_duration_seconds", "histogram"), ("qflow_flows_completed_total", "counter"),
                      ("qflow_flows_failed_total", "counter"), ("qflow_flow_executions_total", "counter"),
                      ("qflow_flow_execution_failures_total", "counter"), ("qflow_flows_active_count", "gauge"),
                      ("qflow_validation_duration_seconds", "histogram"), ("qflow_validation_requests_total", "counter"),
                      ("qflow_validation_cache_hits_total", "counter"), ("qflow_validation_failures_total", "counter"),
                      ("qflow_node_selection_duration_seconds", "histogram"),
                      ("qflow_storage_cache_requests_total", "counter"), ("qflow_storage_cache_hits_total", "counter"),
                      ("qflow_storage_cache_hit_ratio", "gauge"), ("qflow_request_duration_seconds", "histogram"),
                      ("qflow_errors_total", "counter"), ("qflow_process_cpu_usage_percent", "gauge"),
                      ("qflow_process_memory_usage_bytes", "gauge"), ("process_resident_memory_bytes", "gauge"),
                      ("qflow_process_memory_limit_bytes", "gauge"), ("process_cpu_seconds_total", "counter"),
                      ("process_start_time_seconds", "gauge"), ("qflow_process_uptime_seconds", "gauge"),
                      ("qflow_node_health_score", "gauge"), ("qflow_build_info", "gauge")]:
        assert types.get(name) == typ, name
    assert samples['qflow_build_info{version="0.1.0",node_id="unit-node"}'] == 1
    assert samples['qflow_flow_execution_duration_seconds_bucket{le="+Inf"}'] == \
        samples["qflow_flow_execution_duration_seconds_count"]
    assert samples["qflow_process_memory_limit_bytes"] == 128 * 1024 * 1024
    assert samples["qflow_node_health_score"] == 1


def test_previous_jwt_secret_is_accepted_during_rotation_grace(node):
    old = make_token("the-previous-secret", "squid:ops:lab-operator", ["*"], 600)
    status, _, raw = request(node.api, "GET", "/api/v1/system/info", token=old)
    assert_error(status, raw, 401, "INVALID_TOKEN")
    node.jwt_previous = "the-previous-secret"
    status, _, raw = request(node.api, "GET", "/api/v1/system/info", token=old)
    assert status == 200, raw
    wrong = make_token("neither-secret", "squid:ops:lab-operator", ["*"], 600)
    status, _, raw = request(node.api, "GET", "/api/v1/system/info", token=wrong)
    assert_error(status, raw, 401, "INVALID_TOKEN")
    expired = make_token("the-previous-secret", "squid:ops:lab-operator", ["*"], -60)
    status, _, raw = request(node.api, "GET", "/api/v1/system/info", token=expired)
    assert_error(status, raw, 401, "INVALID_TOKEN")
