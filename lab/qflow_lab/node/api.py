"""REST API (real Qflow route table, research §2) and the /metrics handler."""
import json
import os
import platform
import random
import re
import string
import time
import traceback
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from . import VERSION
from . import flows as flowlib
from .auth import TokenError, decode_token, has_all, is_admin, verify_token
from .engine import EngineError, ModeRefused
from .modes import MODES, ModeError
from .util import iso, new_id

FLOW_PERMS = ["flow:create", "flow:execute", "flow:read"]
MAX_BODY = 10 * 1024 * 1024
MODE_ERRORS = {
    "emergency": (503, "EMERGENCY_MODE", "Emergency mode is enabled: new executions are refused; reads keep working"),
    "isolation": (503, "NODE_ISOLATED", "Node is isolated: the API is closed except /api/v1/system/modes"),
}
MAX_REASON = 1000


class ApiError(Exception):
    def __init__(self, status, code, message, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class Request:
    def __init__(self, method, path, query, headers, body, client_ip=None):
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body
        self.client_ip = client_ip
        self.params = {}
        self.identity = None
        self.nonce = None
        self.permissions = []

    def q(self, name, default=None):
        v = self.query.get(name)
        return v[0] if v else default

    def json(self):
        return self.body if isinstance(self.body, dict) else {}


ROUTES = []


def route(method, pattern, auth="A"):
    rx = re.compile("^" + re.sub(r":(\w+)", r"(?P<\1>[^/]+)", pattern) + "/?$")

    def deco(fn):
        ROUTES.append((method, rx, auth, fn))
        return fn
    return deco


def _page(req):
    try:
        limit = int(req.q("limit", 50))
    except ValueError:
        limit = 50
    try:
        offset = int(req.q("offset", 0))
    except ValueError:
        offset = 0
    return max(1, min(limit, 100)), max(0, offset)


def _can_admin(req):
    return is_admin(req.permissions)


# ------------------------------------------------------------------ health / docs
@route("GET", "/health", "N")
def health(node, req):
    status = "isolated" if node.modes.enabled("isolation") else "healthy"
    return 200, {"status": status, "timestamp": iso(), "version": node.version, "uptime": node.uptime(),
                 "nodeId": node.node_id}


@route("GET", "/health/live", "N")
def health_live(node, req):
    return 200, {"status": "alive"}


@route("GET", "/health/ready", "N")
def health_ready(node, req):
    checks = node.readiness()
    if not all(checks.values()):
        raise ApiError(503, "NOT_READY", "Service not ready", {"checks": checks})
    return 200, {"status": "ready", "checks": checks}


@route("GET", "/api/v1/docs", "N")
def docs(node, req):
    eps = [{"method": m, "path": rx.pattern.strip("^$").replace("/?", "").replace("(?P<", ":").replace(">[^/]+)", ""),
            "auth": "none" if a == "N" else "token"} for m, rx, a, _ in ROUTES]
    return 200, {"title": "Qflow Serverless Automation Engine API", "version": "1.0.0",
                 "description": "Reference Qflow node (qflow.ops lab)", "baseUrl": "/api/v1", "endpoints": eps,
                 "examples": {"createFlow": {"method": "POST", "path": "/api/v1/flows",
                                             "body": {"flowData": "<JSON or YAML text>", "format": "auto"}},
                              "startFlow": {"method": "POST", "path": "/api/v1/flows/:id/start",
                                            "body": {"context": {"triggeredBy": "squid:user:1",
                                                                 "triggerType": "manual"}}}}}


# ------------------------------------------------------------------ system
def _memory():
    from .metrics import resident_bytes
    rss = resident_bytes()
    return {"rss": rss, "heapTotal": rss, "heapUsed": rss, "external": 0, "arrayBuffers": 0}


@route("GET", "/api/v1/system/info")
def system_info(node, req):
    return 200, {"name": "Qflow", "version": node.version, "description": "Serverless, distributed automation engine",
                 "uptime": node.uptime(), "nodeVersion": "python-" + platform.python_version(),
                 "platform": platform.system().lower(), "architecture": platform.machine(), "memory": _memory(),
                 "nodeId": node.node_id, "timestamp": iso()}


@route("GET", "/api/v1/system/metrics")
def system_metrics(node, req):
    total, by_cat, by_vis = node.store.flow_counts()
    by_status = {s: 0 for s in ("pending", "running", "paused", "completed", "failed", "aborted")}
    by_status.update(node.store.execution_counts())
    t = os.times()
    return 200, {
        "flows": {"total": total, "byCategory": by_cat, "byVisibility": by_vis},
        "executions": {"total": sum(by_status.values()), "byStatus": by_status,
                       "active": by_status["pending"] + by_status["running"] + by_status["paused"]},
        "system": {"uptime": node.uptime(), "memory": _memory(),
                   "cpu": {"user": int(t.user * 1e6), "system": int(t.system * 1e6)}},
        "timestamp": iso(),
    }


# ------------------------------------------------------------------ operating modes (extension, contract §3.4)
@route("GET", "/api/v1/system/modes")
def modes_get(node, req):
    return 200, node.modes.view()


@route("PUT", "/api/v1/system/modes/:mode")
def modes_put(node, req):
    if not _can_admin(req):
        raise ApiError(403, "INSUFFICIENT_PERMISSIONS", "Insufficient permissions: operating modes need an admin token",
                       {"required": ["admin:*"], "available": req.permissions})
    mode = req.params["mode"]
    if mode not in MODES:
        raise ApiError(400, "UNKNOWN_MODE", "Unknown operating mode: %s" % mode, {"known": list(MODES)})
    b = req.body
    if not isinstance(b, dict) or not isinstance(b.get("enabled"), bool):
        raise ApiError(400, "INVALID_REQUEST", "Body must be a JSON object with a boolean 'enabled' and an optional "
                       "string 'reason'")
    reason = b.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ApiError(400, "INVALID_REQUEST", "'reason' must be a string")
    if reason is not None and len(reason) > MAX_REASON:
        raise ApiError(400, "INVALID_REQUEST", "'reason' is longer than %d characters" % MAX_REASON)
    try:
        entry, changed = node.modes.set(mode, b["enabled"], reason or None, req.identity)
    except ModeError as exc:
        raise ApiError(500, "MODE_PERSIST_ERROR", "Operating mode not changed: %s" % exc)
    out = {"mode": mode}
    out.update(entry)
    out["changed"] = changed
    return 200, out


# ------------------------------------------------------------------ flows
def _flow_data(req):
    body = req.json()
    data = body.get("flowData")
    if data is None or data == "":
        raise ApiError(400, "MISSING_FLOW_DATA", "Flow data is required")
    if isinstance(data, (dict, list)):
        data = json.dumps(data)
    return data, body.get("format", "auto")


def _check_owner(req, flow):
    if flow["owner"] != req.identity and not _can_admin(req):
        raise ApiError(403, "INVALID_OWNER", "Flow owner must match authenticated identity",
                       {"flowOwner": flow["owner"], "authenticatedIdentity": req.identity})


@route("POST", "/api/v1/flows/validate", "P")
def flow_validate(node, req):
    body = req.json()
    if body.get("flowData") not in (None, ""):
        data, fmt = _flow_data(req)
        flow, errors, warnings = flowlib.parse_flow(data, fmt)
    elif isinstance(body.get("flowDefinition"), dict):
        doc = body["flowDefinition"]
        errors, warnings = flowlib.validate_doc(doc)
        flow = None if errors else flowlib.normalise(doc)
    else:
        raise ApiError(400, "MISSING_FLOW_DATA", "Flow data is required (flowData string or flowDefinition object)")
    node.metrics.validation_requests.inc()
    if errors:
        node.metrics.validation_failures.inc()
    return 200, {"valid": not errors, "errors": errors, "warnings": warnings,
                 "issues": flowlib.issues_from(errors, warnings), "flow": flow}


@route("GET", "/api/v1/flows")
def flows_list(node, req):
    limit, offset = _page(req)
    items = node.store.list_flows(req.q("category"), req.q("visibility"), req.q("owner"),
                                  req.query.get("tags") or None)
    return 200, {"flows": items[offset:offset + limit],
                 "pagination": {"total": len(items), "limit": limit, "offset": offset,
                                "hasMore": offset + limit < len(items)}}


@route("POST", "/api/v1/flows", "P")
def flow_create(node, req):
    data, fmt = _flow_data(req)
    flow, errors, warnings = flowlib.parse_flow(data, fmt)
    if errors:
        raise ApiError(400, "FLOW_VALIDATION_FAILED", "Flow validation failed",
                       {"errors": errors, "warnings": warnings})
    _check_owner(req, flow)
    if node.store.flow_exists(flow["id"]):
        raise ApiError(409, "FLOW_EXISTS", "Flow with ID %s already exists" % flow["id"])
    now = iso()
    flow.setdefault("createdAt", now)
    flow["updatedAt"] = now
    cid = node.ipfs.store_flow(flow) if node.ipfs else None
    try:
        node.store.insert_flow(flow, cid)
    except Exception as exc:  # noqa: BLE001
        if node.ipfs:
            node.ipfs.release(cid)
        raise ApiError(500, "CREATE_FLOW_ERROR", "Failed to create flow", {"error": exc.__class__.__name__})
    node.log.info("api", "Flow %s created" % flow["id"], flowId=flow["id"], identity=req.identity, ipfsCid=cid)
    return 201, _with_cid(node, {"flow": flow, "warnings": warnings}, cid)


def _with_cid(node, data, cid):
    """Extension: the CID of the flow definition in IPFS (null until the daemon took it) when IPFS is configured."""
    if node.ipfs is not None:
        data["ipfsCid"] = cid
    return data


@route("GET", "/api/v1/flows/:id")
def flow_get(node, req):
    flow = node.store.get_flow(req.params["id"])
    if flow is None:
        raise ApiError(404, "FLOW_NOT_FOUND", "Flow not found: %s" % req.params["id"])
    return 200, _with_cid(node, {"flow": flow}, node.store.flow_cid(req.params["id"]) if node.ipfs else None)


@route("PUT", "/api/v1/flows/:id")
def flow_update(node, req):
    fid = req.params["id"]
    data, fmt = _flow_data(req)
    old = node.store.get_flow(fid)
    if old is None:
        raise ApiError(404, "FLOW_NOT_FOUND", "Flow not found: %s" % fid)
    flow, errors, warnings = flowlib.parse_flow(data, fmt)
    if errors:
        raise ApiError(400, "FLOW_VALIDATION_FAILED", "Flow validation failed",
                       {"errors": errors, "warnings": warnings})
    if flow["id"] != fid:
        raise ApiError(400, "ID_MISMATCH", "Flow ID in data (%s) does not match URL parameter (%s)" % (flow["id"], fid))
    _check_owner(req, flow)
    now = iso()
    flow.setdefault("createdAt", now)
    flow["updatedAt"] = now
    old_cid = node.store.flow_cid(fid)
    cid = node.ipfs.store_flow(flow) if node.ipfs else None
    node.store.update_flow(flow, cid)
    if node.ipfs and old_cid != cid:
        node.ipfs.release(old_cid)
    node.log.info("api", "Flow %s updated" % fid, flowId=fid, identity=req.identity, ipfsCid=cid)
    return 200, _with_cid(node, {"flow": flow, "warnings": warnings}, cid)


@route("DELETE", "/api/v1/flows/:id")
def flow_delete(node, req):
    fid = req.params["id"]
    flow = node.store.get_flow(fid)
    if flow is None:
        raise ApiError(404, "FLOW_NOT_FOUND", "Flow not found: %s" % fid)
    active = node.engine.active_count(fid)
    if active:
        raise ApiError(409, "FLOW_IN_USE", "Cannot delete flow with active executions", {"activeExecutions": active})
    old_cid = node.store.flow_cid(fid)
    node.store.delete_flow(fid)
    if node.ipfs:
        node.ipfs.release(old_cid)
    node.log.info("api", "Flow %s deleted" % fid, flowId=fid, identity=req.identity)
    return 200, {"message": "Flow deleted successfully",
                 "deletedFlow": {"id": flow["id"], "name": flow["name"], "version": flow["version"]}}


def _has_flow_access(node, req, flow, ctx):
    if flow["owner"] == req.identity or _can_admin(req):
        return True
    vis = flow.get("metadata", {}).get("visibility")
    if vis == "public":
        return True
    if vis == "dao-only" and ctx.get("daoSubnet") and ctx.get("daoSubnet") == flow["metadata"].get("daoSubnet"):
        return True
    return any(p["grantedTo"] == req.identity and p["permission"] in ("execute", "admin", "owner")
               for p in node.store.permissions(flow["id"]))


@route("POST", "/api/v1/flows/:id/start", "P")
def flow_start(node, req):
    if node.modes.enabled("emergency"):
        raise ApiError(*MODE_ERRORS["emergency"])
    ctx = req.json().get("context")
    if not isinstance(ctx, dict):
        raise ApiError(400, "MISSING_CONTEXT", "Execution context is required")
    flow = node.store.get_flow(req.params["id"])
    if flow is None:
        raise ApiError(404, "FLOW_NOT_FOUND", "Flow not found: %s" % req.params["id"])
    if not _has_flow_access(node, req, flow, ctx):
        raise ApiError(403, "FLOW_ACCESS_DENIED", "Access denied to flow %s" % flow["id"])
    ctx = dict(ctx)
    ctx.setdefault("triggeredBy", req.identity)
    ctx.setdefault("triggerType", "manual")
    ctx.setdefault("inputData", {})
    ctx.setdefault("variables", {})
    ctx.setdefault("daoSubnet", "dao.public.default")
    ctx["permissions"] = list(req.permissions)
    try:
        ex = node.engine.start(flow, ctx)
    except ModeRefused as exc:
        raise ApiError(*MODE_ERRORS[exc.mode])
    except EngineError as exc:
        raise ApiError(500, "START_EXECUTION_ERROR", "Failed to start execution", {"error": str(exc)})
    return 201, {"executionId": ex["executionId"], "flowId": flow["id"], "status": "pending", "context": ctx,
                 "startTime": ex["startTime"]}


def _owner_or_admin(node, req, fid):
    own = node.store.get_ownership(fid)
    if own is None:
        raise ApiError(404, "NOT_FOUND", "Flow not found: %s" % fid)
    if own["owner"] != req.identity and not _can_admin(req):
        raise ApiError(403, "INSUFFICIENT_PERMISSIONS", "Insufficient permissions",
                       {"required": ["flow:admin"], "available": req.permissions})
    return own


@route("POST", "/api/v1/flows/:id/grant-access")
def flow_grant(node, req):
    b = req.json()
    if not b.get("grantedTo") or not b.get("permission"):
        raise ApiError(400, "INVALID_REQUEST", "grantedTo and permission are required")
    fid = req.params["id"]
    if not node.store.flow_exists(fid):
        raise ApiError(400, "GRANT_FAILED", "Failed to grant access: flow %s not found" % fid)
    now = iso()
    entry = {"grantedTo": b["grantedTo"], "permission": b["permission"], "grantedBy": req.identity,
             "grantedAt": now, "expiresAt": b.get("expiresAt"), "conditions": b.get("conditions")}
    node.store.grant(fid, entry)
    return 200, {"flowId": fid, "grantedTo": b["grantedTo"], "permission": b["permission"], "grantedAt": now,
                 "expiresAt": b.get("expiresAt")}


@route("POST", "/api/v1/flows/:id/revoke-access")
def flow_revoke(node, req):
    b = req.json()
    if not b.get("revokedFrom") or not b.get("permission"):
        raise ApiError(400, "INVALID_REQUEST", "revokedFrom and permission are required")
    fid = req.params["id"]
    node.store.revoke(fid, b["revokedFrom"], b["permission"])
    return 200, {"flowId": fid, "revokedFrom": b["revokedFrom"], "permission": b["permission"], "revokedAt": iso()}


@route("GET", "/api/v1/flows/:id/permissions")
def flow_permissions(node, req):
    fid = req.params["id"]
    _owner_or_admin(node, req, fid)
    return 200, {"flowId": fid, "permissions": node.store.permissions(fid)}


@route("GET", "/api/v1/flows/:id/ownership")
def flow_ownership(node, req):
    return 200, {"ownership": _owner_or_admin(node, req, req.params["id"])}


# ------------------------------------------------------------------ executions
@route("GET", "/api/v1/executions")
def executions_list(node, req):
    limit, offset = _page(req)
    items, total = node.store.list_executions(req.q("flowId"), req.q("status"), req.q("triggeredBy"), limit, offset)
    return 200, {"executions": items, "pagination": {"total": total, "limit": limit, "offset": offset,
                                                     "hasMore": offset + limit < total}}


@route("GET", "/api/v1/executions/:id")
def execution_get(node, req):
    ex = node.engine.get(req.params["id"])
    if ex is None:
        raise ApiError(404, "EXECUTION_NOT_FOUND", "Execution not found: %s" % req.params["id"])
    return 200, {"execution": ex}


def _control(action, past):
    def handler(node, req):
        try:
            ex = node.engine.control(req.params["id"], action)
        except EngineError as exc:
            raise ApiError(400, "%s_EXECUTION_ERROR" % action.upper(), str(exc))
        return 200, {"message": "Execution %s successfully" % past, "execution": ex}
    return handler


route("POST", "/api/v1/executions/:id/pause")(_control("pause", "paused"))
route("POST", "/api/v1/executions/:id/resume")(_control("resume", "resumed"))
route("POST", "/api/v1/executions/:id/abort")(_control("abort", "aborted"))


# ------------------------------------------------------------------ cache
@route("GET", "/api/v1/cache/stats")
def cache_stats(node, req):
    return 200, node.engine.cache_stats_view()


@route("POST", "/api/v1/cache/invalidate")
def cache_invalidate(node, req):
    b = req.json()
    keys, tags = b.get("keys") or [], b.get("tags") or []
    n = node.engine.cache_invalidate(keys, tags)
    return 200, {"message": "Cache invalidated successfully", "invalidatedCount": n}


@route("DELETE", "/api/v1/cache/clear")
def cache_clear(node, req):
    node.engine.cache_clear()
    node.log.info("cache", "Cache cleared", identity=req.identity)
    return 200, {"message": "Cache cleared successfully"}


@route("GET", "/api/v1/cache/patterns")
def cache_patterns(node, req):
    p = node.engine.cache_patterns()
    return 200, {"patterns": p, "totalPatterns": len(p)}


# ------------------------------------------------------------------ DAO
def _rand6():
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(6))


@route("POST", "/api/v1/dao/subnets")
def subnet_create(node, req):
    b = req.json()
    sid = b.get("id") or "dao.%d.%s" % (int(time.time() * 1000), _rand6())
    subnet = {"id": sid, "name": b.get("name") or sid, "description": b.get("description") or "",
              "governanceContract": b.get("governanceContract"),
              "resourceLimits": b.get("resourceLimits") or {"maxConcurrentExecutions": 10, "maxMemoryMB": 512,
                                                            "maxCpuPercent": 50},
              "isolation": b.get("isolation") or {"level": "standard"},
              "policies": b.get("policies") or [],
              "metadata": {"createdBy": req.identity, "created": iso()}}
    node.store.save_subnet(subnet)
    out = {k: subnet[k] for k in ("id", "name", "description", "resourceLimits", "isolation", "metadata")}
    return 201, {"subnet": out}


@route("GET", "/api/v1/dao/subnets")
def subnet_list(node, req):
    out = []
    for s in node.store.list_subnets():
        out.append({"id": s["id"], "name": s["name"], "description": s["description"],
                    "memberCount": len(node.store.validators(s["id"])), "activeFlows": 0, "totalExecutions": 0,
                    "created": s["metadata"].get("created")})
    return 200, {"subnets": out}


@route("GET", "/api/v1/dao/subnets/:id")
def subnet_get(node, req):
    s = node.store.get_subnet(req.params["id"])
    if s is None:
        raise ApiError(404, "NOT_FOUND", "DAO subnet not found: %s" % req.params["id"])
    return 200, {"subnet": {"id": s["id"], "name": s["name"], "description": s["description"],
                            "validators": node.store.validators(s["id"]), "policies": s.get("policies", []),
                            "resourceLimits": s["resourceLimits"], "isolation": s["isolation"],
                            "metadata": s["metadata"]}}


@route("POST", "/api/v1/dao/subnets/:id/validators")
def subnet_add_validator(node, req):
    b = req.json()
    if not b.get("identityId") or not b.get("publicKey") or b.get("role") not in ("admin", "validator", "observer"):
        raise ApiError(400, "INVALID_REQUEST", "identityId, publicKey and role (admin|validator|observer) are required")
    sid = req.params["id"]
    if node.store.get_subnet(sid) is None:
        raise ApiError(400, "VALIDATOR_ADD_FAILED", "DAO subnet not found: %s" % sid)
    now = iso()
    doc = {"identityId": b["identityId"], "publicKey": b["publicKey"], "role": b["role"],
           "weight": b.get("weight", 50), "active": b.get("active", True), "addedAt": now}
    node.store.add_validator(sid, b["identityId"], doc)
    return 200, {"subnetId": sid, "validatorId": b["identityId"], "addedAt": now}


# ------------------------------------------------------------------ dashboard alerts
@route("GET", "/api/v1/dashboard/alerts")
def alerts_list(node, req):
    return 200, {"alerts": node.store.list_alerts()}


@route("POST", "/api/v1/dashboard/alerts")
def alerts_create(node, req):
    b = req.json()
    if not b.get("name") or not b.get("condition") or not b.get("severity"):
        raise ApiError(400, "MISSING_ALERT_DATA", "name, condition and severity are required")
    alert = {"id": "alert_%d_%s" % (int(time.time() * 1000), _rand6()), "name": b["name"],
             "condition": b["condition"], "severity": b["severity"], "channels": b.get("channels") or ["dashboard"],
             "enabled": b.get("enabled", True), "cooldown": b.get("cooldown", 300000)}
    node.store.save_alert(alert)
    return 201, {"alert": alert}


@route("DELETE", "/api/v1/dashboard/alerts/:id")
def alerts_delete(node, req):
    node.store.delete_alert(req.params["id"])
    return 200, {"message": "Alert rule deleted successfully", "deletedAlertId": req.params["id"]}


# ------------------------------------------------------------------ dispatch
def _token_from(req):
    auth = req.headers.get("Authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if req.headers.get("X-Identity-Token"):
        return req.headers.get("X-Identity-Token").strip()
    return req.q("token")


def _auth_fields(req):
    """Fields of the auth log lines: never the token, never its signature."""
    return {"identity": req.identity, "nonce": req.nonce, "method": req.method, "path": req.path,
            "clientIp": req.client_ip}


def _authenticate(node, req):
    token = _token_from(req)
    if not token:
        raise ApiError(401, "MISSING_TOKEN", "Authentication token is required")
    try:
        try:
            payload = verify_token(token, node.jwt_secret)
        except TokenError as exc:
            if not node.jwt_previous or "signature" not in str(exc):
                raise
            payload = verify_token(token, node.jwt_previous)
    except TokenError as exc:
        try:  # the identity and nonce the token claims, for the log (forensics: who tried a revoked token)
            claimed = decode_token(token)
            req.identity, req.nonce = claimed["identity"], claimed["nonce"]
        except TokenError:
            pass
        raise ApiError(401, "INVALID_TOKEN", "Invalid authentication token", {"errors": [str(exc)], "warnings": []})
    req.identity, req.nonce, req.permissions = payload["identity"], payload["nonce"], payload["permissions"]
    node.log.info("auth", "Token accepted for %s" % req.identity, **_auth_fields(req))
    if node.modes.enabled("lockdown") and not is_admin(req.permissions):
        raise ApiError(403, "LOCKDOWN_ACTIVE", "Security lockdown: only admin tokens are accepted")


def _route(node, req):
    public = req.path.startswith("/health") or req.path.startswith("/api/v1/docs")
    if not public:
        _authenticate(node, req)
    if (node.modes.enabled("isolation") and req.path.startswith("/api/v1/")
            and not req.path.startswith("/api/v1/system/modes")):
        raise ApiError(*MODE_ERRORS["isolation"])
    for method, rx, auth, fn in ROUTES:
        m = rx.match(req.path)
        if m and method == req.method:
            if auth == "P" and not has_all(req.permissions, FLOW_PERMS):
                raise ApiError(403, "INSUFFICIENT_PERMISSIONS", "Insufficient permissions",
                               {"required": FLOW_PERMS, "available": req.permissions})
            req.params = m.groupdict()
            return fn(node, req)
    raise ApiError(404, "NOT_FOUND", "Endpoint not found: %s %s" % (req.method, req.path))


def dispatch(node, req):
    """Return (status, data). Raise ApiError for error envelopes. Every 401/403 is logged (component auth)."""
    try:
        return _route(node, req)
    except ApiError as exc:
        if exc.status in (401, 403):
            fields = {k: v for k, v in _auth_fields(req).items() if v is not None}
            if exc.status == 401 and exc.details:
                fields["reason"] = exc.details.get("errors", [None])[0]
            node.log.warn("auth", "Token rejected: %s" % exc.code, code=exc.code, **fields)
        raise


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qflow-node/" + VERSION
    sys_version = ""

    def log_message(self, fmt, *args):  # silence stderr access log
        pass

    @property
    def node(self):
        return self.server.node

    def _hang(self):
        """Accept the request but never answer; close once the fault clears."""
        node = self.server.node
        while "hang" in node.faults and not node.stop_event.is_set():
            node.stop_event.wait(0.2)
        self.close_connection = True

    def _send(self, status, body, ctype="application/json; charset=utf-8", request_id=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        if request_id:
            self.send_header("X-Request-ID", request_id)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        node = self.node
        t0 = time.monotonic()
        if "hang" in node.faults:
            return self._hang()
        if "slow" in node.faults:
            time.sleep(1.5)
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        rid = self.headers.get("X-Request-ID") or new_id()
        if "garbage" in node.faults:
            self._discard_body()
            return self._send(200, b"\x00\xff<html>qflow \xfe garbage {not json", "application/json", rid)
        status, payload = 500, None
        try:
            try:
                body = self._read_body()
            except ValueError as exc:
                raise ApiError(500, "INTERNAL_ERROR", "Internal server error", {"error": str(exc)})
            req = Request(self.command, path, parse_qs(url.query, keep_blank_values=True), self.headers, body,
                          self.client_address[0] if self.client_address else None)
            if self.command == "OPTIONS":
                status, payload = 200, {"success": True, "data": {}, "timestamp": iso(), "requestId": rid}
            else:
                status, data = dispatch(node, req)
                payload = {"success": True, "data": data, "timestamp": iso(), "requestId": rid}
        except ApiError as exc:
            status = exc.status
            err = {"code": exc.code, "message": exc.message}
            if exc.details is not None:
                err["details"] = exc.details
            payload = {"success": False, "error": err, "timestamp": iso(), "requestId": rid}
        except Exception as exc:  # noqa: BLE001
            status = 500
            node.log.error("api", "Unhandled error on %s %s: %s" % (self.command, path, exc.__class__.__name__),
                           trace=traceback.format_exc(limit=3))
            payload = {"success": False, "error": {"code": "INTERNAL_ERROR", "message": "Internal server error",
                                                   "details": {"error": str(exc)}},
                       "timestamp": iso(), "requestId": rid}
        out = json.dumps(payload, default=str).encode()
        try:
            self._send(status, out, request_id=rid)
        finally:
            dur = time.monotonic() - t0
            node.metrics.request_duration.observe(dur)
            if status >= 500:
                node.metrics.errors.inc()
            lvl = "warn" if status >= 500 else "debug"
            node.log.log(lvl, "api", "%s %s %d %d ms" % (self.command, path, status, dur * 1000),
                         requestId=rid, status=status)

    def _discard_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if 0 < n <= MAX_BODY:
            self.rfile.read(n)

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n <= 0:
            return None
        if n > MAX_BODY:
            self.close_connection = True
            raise ValueError("request entity too large")
        raw = self.rfile.read(n)
        ctype = (self.headers.get("Content-Type") or "application/json").lower()
        if "json" in ctype or not ctype:
            try:
                return json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise ValueError("Unexpected token in JSON: %s" % str(exc).split(":")[0])
        if "x-www-form-urlencoded" in ctype:
            return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        return None

    do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_HEAD = _handle


class MetricsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qflow-node/" + VERSION
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        node = self.server.node
        if "hang" in node.faults:
            return ApiHandler._hang(self)
        path = urlsplit(self.path).path
        if "garbage" in node.faults:
            body, status = b"qflow_flows_completed_total abc{\n# TYPE broken\n\x00\xff", 200
        elif path in ("/metrics", "/metrics/"):
            body, status = node.render_metrics().encode(), 200
        else:
            body, status = b"Not found: use /metrics\n", 404
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
