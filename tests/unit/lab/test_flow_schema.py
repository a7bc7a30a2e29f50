import copy
import json

import yaml

from qflow_lab.node.flows import parse_flow, validate_doc

VALID = {
    "id": "demo-flow", "name": "Demo", "version": "1.2.3", "owner": "squid:user:1",
    "steps": [
        {"id": "a", "type": "task", "action": "do-a", "onSuccess": "b"},
        {"id": "b", "type": "module-call", "action": "qindex.put"},
    ],
    "metadata": {"tags": ["x"], "category": "demo", "visibility": "public", "requiredPermissions": []},
}


def codes(items):
    return [i["code"] for i in items]


def test_valid_json_and_yaml():
    flow, errors, warnings = parse_flow(json.dumps(VALID))
    assert errors == [] and warnings == []
    assert flow["steps"][0]["timeout"] == 300000 and flow["steps"][0]["params"] == {}
    flow2, errors2, _ = parse_flow(yaml.safe_dump(VALID), "yaml")
    assert errors2 == [] and flow2["id"] == "demo-flow"


def test_missing_field():
    doc = copy.deepcopy(VALID)
    del doc["owner"]
    errors, _ = validate_doc(doc)
    assert {"field": "#/required", "code": "REQUIRED"}.items() <= errors[0].items()
    assert "owner" in errors[0]["message"]


def test_bad_version():
    doc = copy.deepcopy(VALID)
    doc["version"] = "1.0"
    errors, _ = validate_doc(doc)
    assert codes(errors) == ["PATTERN"] and errors[0]["field"] == "/version"


def test_bad_step_type_and_empty_steps():
    doc = copy.deepcopy(VALID)
    doc["steps"][0]["type"] = "shell"
    assert "ENUM" in codes(validate_doc(doc)[0])
    doc["steps"] = []
    assert "MINITEMS" in codes(validate_doc(doc)[0])


def test_circular_dependency():
    doc = copy.deepcopy(VALID)
    doc["steps"][1]["onSuccess"] = "a"
    errors, _ = validate_doc(doc)
    assert "CIRCULAR_DEPENDENCY" in codes(errors)
    assert "a -> b -> a" in [e for e in errors if e["code"] == "CIRCULAR_DEPENDENCY"][0]["message"]


def test_unknown_step_reference():
    doc = copy.deepcopy(VALID)
    doc["steps"][1]["onFailure"] = "nope"
    errors, _ = validate_doc(doc)
    assert codes(errors) == ["INVALID_STEP_REFERENCE"]
    assert errors[0]["field"] == "steps.b.onFailure"


def test_duplicate_ids_and_unreachable_warning():
    doc = copy.deepcopy(VALID)
    doc["steps"].append({"id": "a", "type": "task", "action": "x"})
    assert "DUPLICATE_STEP_IDS" in codes(validate_doc(doc)[0])
    doc = copy.deepcopy(VALID)
    doc["steps"][0]["onSuccess"] = "c"
    doc["steps"].append({"id": "c", "type": "task", "action": "x"})
    errors, warnings = validate_doc(doc)
    assert errors == [] and codes(warnings) == ["UNREACHABLE_STEPS"]


def test_parse_error():
    flow, errors, _ = parse_flow("{not json", "auto")
    assert flow is None and errors[0]["code"] == "PARSE_ERROR" and errors[0]["field"] == "root"
