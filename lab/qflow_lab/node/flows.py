"""Flow definition parsing and validation (real Qflow FlowParser, research §5).

Items in errors/warnings are {field, message, code[, value]}. Schema errors mimic Ajv (field = instancePath,
or the schemaPath when that is empty; code = keyword upper-cased); business rules run only when the schema
check passed.
"""
import json
import re

import yaml

ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
STEP_TYPES = ("task", "condition", "parallel", "event-trigger", "module-call")
VISIBILITIES = ("public", "dao-only", "private")
TOP_REQUIRED = ("id", "name", "version", "owner", "steps", "metadata")
STEP_REQUIRED = ("id", "type", "action")
META_REQUIRED = ("tags", "category", "visibility", "requiredPermissions")

_MISSING = object()


def _item(field, message, code, value=_MISSING):
    d = {"field": field, "message": message, "code": code}
    if value is not _MISSING:
        d["value"] = value
    return d


def _type_name(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def parse_text(text, fmt="auto"):
    """Parse JSON/YAML text. Return (doc, errors)."""
    fmt = (fmt or "auto").lower()
    if fmt == "auto":
        fmt = "json" if text.lstrip()[:1] in ("{", "[") else "yaml"
    try:
        doc = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        return None, [_item("root", "Failed to parse %s: %s" % (fmt.upper(), str(exc).splitlines()[0]),
                            "PARSE_ERROR", text[:100])]
    return doc, []


def _check_string(errors, path, v, pattern=None, min_len=None, max_len=None):
    if not isinstance(v, str):
        errors.append(_item(path, "must be string", "TYPE", v))
        return
    if min_len is not None and len(v) < min_len:
        errors.append(_item(path, "must NOT have fewer than %d characters" % min_len, "MINLENGTH", v))
    if max_len is not None and len(v) > max_len:
        errors.append(_item(path, "must NOT have more than %d characters" % max_len, "MAXLENGTH", v))
    if pattern is not None and not pattern.match(v):
        errors.append(_item(path, 'must match pattern "%s"' % pattern.pattern, "PATTERN", v))


def schema_errors(doc):
    errors = []
    if not isinstance(doc, dict):
        return [_item("#/type", "must be object", "TYPE", _type_name(doc))]
    for key in TOP_REQUIRED:
        if key not in doc:
            errors.append(_item("#/required", "must have required property '%s'" % key, "REQUIRED"))
    if "id" in doc:
        _check_string(errors, "/id", doc["id"], ID_RE, 1, 100)
    if "name" in doc:
        _check_string(errors, "/name", doc["name"], None, 1, 200)
    if "version" in doc:
        _check_string(errors, "/version", doc["version"], VERSION_RE)
    if "owner" in doc:
        _check_string(errors, "/owner", doc["owner"], None, 1)
    if "description" in doc:
        _check_string(errors, "/description", doc["description"], None, None, 1000)
    if "daoPolicy" in doc:
        _check_string(errors, "/daoPolicy", doc["daoPolicy"])
    steps = doc.get("steps", _MISSING)
    if steps is not _MISSING:
        if not isinstance(steps, list):
            errors.append(_item("/steps", "must be array", "TYPE"))
        else:
            if len(steps) < 1:
                errors.append(_item("/steps", "must NOT have fewer than 1 items", "MINITEMS"))
            for i, step in enumerate(steps):
                p = "/steps/%d" % i
                if not isinstance(step, dict):
                    errors.append(_item(p, "must be object", "TYPE"))
                    continue
                for key in STEP_REQUIRED:
                    if key not in step:
                        errors.append(_item(p, "must have required property '%s'" % key, "REQUIRED"))
                if "id" in step:
                    _check_string(errors, p + "/id", step["id"], ID_RE)
                if "type" in step and step["type"] not in STEP_TYPES:
                    errors.append(_item(p + "/type", "must be equal to one of the allowed values", "ENUM",
                                        step["type"]))
                if "action" in step:
                    _check_string(errors, p + "/action", step["action"], None, 1)
                if "params" in step and not isinstance(step["params"], dict):
                    errors.append(_item(p + "/params", "must be object", "TYPE"))
                elif step.get("action") == "sleep" and step.get("type") == "task":
                    # lab step (extension): params.seconds, a number >= 0 (the engine clamps it to 600)
                    n = (step.get("params") or {}).get("seconds", 0)
                    if isinstance(n, bool) or not isinstance(n, (int, float)):
                        errors.append(_item(p + "/params/seconds", "must be number", "TYPE", n))
                    elif n < 0:
                        errors.append(_item(p + "/params/seconds", "must be >= 0", "MINIMUM", n))
                for key in ("onSuccess", "onFailure"):
                    if key in step and not isinstance(step[key], str):
                        errors.append(_item(p + "/" + key, "must be string", "TYPE"))
                if "timeout" in step:
                    t = step["timeout"]
                    if isinstance(t, bool) or not isinstance(t, (int, float)):
                        errors.append(_item(p + "/timeout", "must be number", "TYPE", t))
                    elif t < 1000:
                        errors.append(_item(p + "/timeout", "must be >= 1000", "MINIMUM", t))
                    elif t > 3600000:
                        errors.append(_item(p + "/timeout", "must be <= 3600000", "MAXIMUM", t))
    meta = doc.get("metadata", _MISSING)
    if meta is not _MISSING:
        if not isinstance(meta, dict):
            errors.append(_item("/metadata", "must be object", "TYPE"))
        else:
            for key in META_REQUIRED:
                if key not in meta:
                    errors.append(_item("/metadata", "must have required property '%s'" % key, "REQUIRED"))
            for key in ("tags", "requiredPermissions"):
                if key in meta:
                    v = meta[key]
                    if not isinstance(v, list):
                        errors.append(_item("/metadata/" + key, "must be array", "TYPE"))
                    else:
                        for j, t in enumerate(v):
                            if not isinstance(t, str):
                                errors.append(_item("/metadata/%s/%d" % (key, j), "must be string", "TYPE"))
            if "category" in meta:
                _check_string(errors, "/metadata/category", meta["category"], None, 1)
            if "visibility" in meta and meta["visibility"] not in VISIBILITIES:
                errors.append(_item("/metadata/visibility", "must be equal to one of the allowed values", "ENUM",
                                    meta["visibility"]))
    return errors


def _find_cycle(steps):
    graph = {s["id"]: [s[k] for k in ("onSuccess", "onFailure") if s.get(k)] for s in steps}
    color = {}
    stack = []

    def visit(n):
        color[n] = 1
        stack.append(n)
        for m in graph.get(n, ()):
            if m not in graph:
                continue
            if color.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if color.get(m) is None:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        color[n] = 2
        return None

    for s in steps:
        if color.get(s["id"]) is None:
            found = visit(s["id"])
            if found:
                return found
    return None


def business_rules(doc):
    errors, warnings = [], []
    steps = doc["steps"]
    ids = [s["id"] for s in steps]
    seen, dups = set(), []
    for i in ids:
        if i in seen and i not in dups:
            dups.append(i)
        seen.add(i)
    if dups:
        errors.append(_item("steps", "Duplicate step IDs found: %s" % ", ".join(dups), "DUPLICATE_STEP_IDS", dups))
    idset = set(ids)
    for s in steps:
        for key in ("onSuccess", "onFailure"):
            ref = s.get(key)
            if ref and ref not in idset:
                errors.append(_item("steps.%s.%s" % (s["id"], key),
                                    "Step '%s' references non-existent step '%s' in %s" % (s["id"], ref, key),
                                    "INVALID_STEP_REFERENCE", ref))
    cycle = _find_cycle(steps)
    if cycle:
        errors.append(_item("steps", "Circular dependency detected: %s" % " -> ".join(cycle),
                            "CIRCULAR_DEPENDENCY", cycle))
    # Reachability from steps[0]: explicit onSuccess/onFailure edges; a step without onSuccess
    # continues with the next step in the array.
    reach, todo = set(), [0]
    index = {s["id"]: i for i, s in enumerate(steps)}
    while todo:
        i = todo.pop()
        if i in reach or i >= len(steps):
            continue
        reach.add(i)
        s = steps[i]
        nxt = [index[s[k]] for k in ("onSuccess", "onFailure") if s.get(k) in index]
        if not s.get("onSuccess"):
            nxt.append(i + 1)
        todo.extend(nxt)
    unreachable = [s["id"] for i, s in enumerate(steps) if i not in reach]
    if unreachable:
        warnings.append(_item("steps", "Unreachable steps: %s" % ", ".join(unreachable), "UNREACHABLE_STEPS",
                              unreachable))
    return errors, warnings


def validate_doc(doc):
    """Return (errors, warnings) for a parsed document."""
    errors = schema_errors(doc)
    if errors:
        return errors, []
    return business_rules(doc)


def parse_flow(text, fmt="auto"):
    """Parse + validate flow text. Return (flow or None, errors, warnings)."""
    if not isinstance(text, str):
        return None, [_item("root", "flowData must be a string", "PARSE_ERROR")], []
    doc, errors = parse_text(text, fmt)
    if errors:
        return None, errors, []
    errors, warnings = validate_doc(doc)
    if errors:
        return None, errors, warnings
    return normalise(doc), errors, warnings


def normalise(doc):
    """Apply the parser's defaults to a valid document (copy)."""
    flow = json.loads(json.dumps(doc, default=str))
    for s in flow["steps"]:
        s.setdefault("params", {})
        s.setdefault("timeout", 300000)
        s.setdefault("retryPolicy", {"maxAttempts": 3, "backoffStrategy": "exponential",
                                     "initialDelay": 1000, "maxDelay": 30000})
    return flow


def issues_from(errors, warnings):
    """Designer-validator style issues [{severity, message}]."""
    return ([{"severity": "error", "message": e["message"], "field": e["field"], "code": e["code"]} for e in errors]
            + [{"severity": "warning", "message": w["message"], "field": w["field"], "code": w["code"]}
               for w in warnings])
