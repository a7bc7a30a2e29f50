"""The FAKE Kubernetes API of k8s_fake_api, plus what a Deployment rollback needs: ReplicaSets and a tiny controller.

Not a Kubernetes. On top of FakeKubeAPI (unchanged): discovery of ``replicasets``; LIST/GET of
/apis/apps/v1/namespaces/<ns>/replicasets with ``labelSelector`` (``key`` and ``key=value`` terms); JSON patch
(``application/json-patch+json``, ops add/replace/remove, what kubernetes.core.k8s_rollback sends) on a Deployment;
and after every change of a Deployment's pod template the Deployment controller's revision bookkeeping: the
ReplicaSet whose template matches (pod-template-hash) gets revision max + 1, or a new one is made with it, and the
Deployment's annotation ``deployment.kubernetes.io/revision`` follows. The rollout is instant (no pods).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from urllib.parse import parse_qs, urlsplit

import k8s_fake_api
from k8s_fake_api import FakeKubeAPI, _status

REVISION = "deployment.kubernetes.io/revision"
RS_LIST = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/replicasets(?:/([^/]+))?$")
DEPLOYMENT = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)$")
APPS_V1 = copy.deepcopy(k8s_fake_api.APPS_V1)
APPS_V1["resources"].append({"name": "replicasets", "singularName": "replicaset", "namespaced": True, "kind": "ReplicaSet",
                             "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]})


def template_hash(template):
    bare = copy.deepcopy(template)
    bare.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    return hashlib.sha256(json.dumps(bare, sort_keys=True).encode()).hexdigest()[:10]


def json_patch(doc, ops):
    """RFC 6902 add / replace / remove (enough for k8s_rollback)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        parent = doc
        for part in parts[:-1]:
            parent = parent.setdefault(part, {})
        if op["op"] in ("add", "replace"):
            parent[parts[-1]] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            parent.pop(parts[-1], None)
        else:
            raise ValueError("fake API: JSON patch op %s is not implemented" % op["op"])
    return doc


def matches(labels, selector):
    for term in filter(None, (selector or "").split(",")):
        key, _, value = term.partition("=")
        if key not in labels or (value and labels[key] != value):
            return False
    return True


class FakeKubeRollout(FakeKubeAPI):
    """``add_rollout(ns, name, images)``: a Deployment rolled out once per image (revisions 1..n, the last current)."""

    def add_rollout(self, namespace, name, images, labels=None):
        labels = dict(labels or {"app.kubernetes.io/name": name})
        with self._lock:
            self._rv += 1
            self.objects[(namespace, "deployments", name)] = {
                "kind": "Deployment", "apiVersion": "apps/v1",
                "metadata": {"name": name, "namespace": namespace, "uid": "fake-%s-%s" % (namespace, name),
                             "resourceVersion": str(self._rv), "generation": 1, "annotations": {}},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": dict(labels)},
                                      "spec": {"containers": [{"name": "qflow", "image": images[0]}]}}},
                "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                           "availableReplicas": 1,
                           "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]},
            }
        for image in images:
            with self._lock:
                dep = self.objects[(namespace, "deployments", name)]
                dep["spec"]["template"]["spec"]["containers"][0]["image"] = image
                self._reconcile(namespace, name)

    def replicasets(self, namespace):
        with self._lock:
            return [copy.deepcopy(o) for (ns, plural, _), o in sorted(self.objects.items())
                    if ns == namespace and plural == "replicasets"]

    def _reconcile(self, namespace, name):
        """The Deployment controller's revision bookkeeping (lock held)."""
        dep = self.objects[(namespace, "deployments", name)]
        template = dep["spec"]["template"]
        thash = template_hash(template)
        mine = [o for (ns, plural, _), o in self.objects.items()
                if ns == namespace and plural == "replicasets"
                and any(ref.get("name") == name for ref in o["metadata"].get("ownerReferences", []))]
        top = max([int(o["metadata"]["annotations"][REVISION]) for o in mine] or [0])
        current = next((o for o in mine if o["metadata"]["labels"].get("pod-template-hash") == thash), None)
        if current is None or int(current["metadata"]["annotations"][REVISION]) != top:
            self._rv += 1
            if current is None:
                rs_name = "%s-%s" % (name, thash)
                rs_template = copy.deepcopy(template)
                rs_template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = thash
                current = {
                    "kind": "ReplicaSet", "apiVersion": "apps/v1",
                    "metadata": {"name": rs_name, "namespace": namespace, "uid": "fake-rs-%s" % thash,
                                 "labels": dict(rs_template["metadata"]["labels"]), "annotations": {},
                                 "creationTimestamp": "2026-01-01T00:%02d:00Z" % (top + 1),
                                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                                      "uid": dep["metadata"]["uid"], "controller": True}]},
                    "spec": {"replicas": 1, "selector": {"matchLabels": dict(rs_template["metadata"]["labels"])},
                             "template": rs_template},
                    "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1},
                }
                self.objects[(namespace, "replicasets", rs_name)] = current
            current["metadata"]["annotations"][REVISION] = str(top + 1)
            current["metadata"]["resourceVersion"] = str(self._rv)
        for other in mine:
            if other is not current:
                other["spec"]["replicas"] = 0
                other["status"] = {"replicas": 0}
        current["spec"]["replicas"] = dep["spec"]["replicas"]
        current["status"] = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}
        dep["metadata"].setdefault("annotations", {})[REVISION] = current["metadata"]["annotations"][REVISION]

    def handle(self, method, raw_path, content_type, body):
        parts = urlsplit(raw_path)
        path, query = parts.path.rstrip("/") or "/", parse_qs(parts.query)
        if method == "GET" and path == "/apis/apps/v1":
            self.requests.append((method, path, parts.query, content_type))
            return 200, APPS_V1
        match = RS_LIST.match(path)
        if match and method == "GET":
            self.requests.append((method, path, parts.query, content_type))
            namespace, name = match.groups()
            with self._lock:
                if name:
                    obj = self.objects.get((namespace, "replicasets", name))
                    if obj is None:
                        return 404, _status(404, "NotFound", 'replicasets "%s" not found' % name)
                    return 200, copy.deepcopy(obj)
                selector = (query.get("labelSelector") or [""])[0]
                items = [copy.deepcopy(o) for (ns, plural, _), o in sorted(self.objects.items())
                         if ns == namespace and plural == "replicasets" and matches(o["metadata"]["labels"], selector)]
                return 200, {"kind": "ReplicaSetList", "apiVersion": "apps/v1",
                             "metadata": {"resourceVersion": str(self._rv)}, "items": items}
        match = DEPLOYMENT.match(path)
        if match and method == "PATCH":
            key = (match.group(1), "deployments", match.group(2))
            if content_type == "application/json-patch+json":
                self.requests.append((method, path, parts.query, content_type))
                with self._lock:
                    current = self.objects.get(key)
                    if current is None:
                        return 404, _status(404, "NotFound", 'deployments "%s" not found' % key[2])
                    try:
                        updated = json_patch(current, json.loads(body or b"[]"))
                    except (ValueError, KeyError, TypeError) as exc:
                        return 422, _status(422, "Invalid", "fake API: %s" % exc)
                    if "dryRun" in query:
                        return 200, updated
                    self._rv += 1
                    updated["metadata"]["resourceVersion"] = str(self._rv)
                    self.objects[key] = updated
                    self._reconcile(key[0], key[2])
                    return 200, copy.deepcopy(self.objects[key])
            code, answer = super().handle(method, raw_path, content_type, body)
            if code == 200 and "dryRun" not in query:
                with self._lock:
                    self._reconcile(key[0], key[2])
                    answer = copy.deepcopy(self.objects[key])
            return code, answer
        return super().handle(method, raw_path, content_type, body)
