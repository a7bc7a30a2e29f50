"""qflow.ops.ipfs_repo against the lab's real IPFS daemons (js-ipfs, one per node; profile systemd: ipfs.service in
each container, API on its localhost:5001), and the node's flows in IPFS."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid

import pytest

import labtest
from labtest import BIN, SYSTEMD, hostvars, run_cmd

pytestmark = pytest.mark.skipif(SYSTEMD and os.environ.get("QFLOW_LAB_DEPLOY") == "compose",
                                reason="profile systemd, deploy compose: no IPFS daemon next to the node")

NODE = "qflow-node-1"


def ipfs_post(api, command, data=None, content_type=None):
    return labtest.ipfs_post(NODE, api, command, data, content_type)


def ipfs_add(api, data, pin):
    boundary = uuid.uuid4().hex
    body = (("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\nContent-Type: application/octet-stream\r\n\r\n" % boundary).encode()
            + data + ("\r\n--%s--\r\n" % boundary).encode())
    out = ipfs_post(api, "add?cid-version=1&cid-base=base32&pin=%s" % ("true" if pin else "false"), body,
                    "multipart/form-data; boundary=%s" % boundary)
    return json.loads(out.splitlines()[-1])["Hash"]


def pinned(api, cid):
    try:
        return bool(json.loads(ipfs_post(api, "pin/ls?type=recursive&arg=%s" % cid))["Keys"])
    except urllib.error.HTTPError:
        return False


def ipfs_repo(inventory, args, check=False):
    cmd = [str(BIN / "ansible"), NODE, "-i", str(inventory), "-m", "qflow.ops.ipfs_repo", "-a", json.dumps(args), "-o"]
    proc = run_cmd(cmd + (["--check"] if check else []), timeout=180)
    line = proc.stdout.strip().splitlines()[-1]
    return json.loads(line.split("=>", 1)[1]), proc.returncode


def api(host, method, path, body=None):
    req = urllib.request.Request(host["qflow_api_url"] + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Authorization", "Bearer " + host["qflow_api_token"])
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["data"]


@pytest.mark.systemd  # ipfs.service inside the node
def test_ipfs_repo_stat_gc_verify_and_flow_pins(green_lab):
    host = hostvars(green_lab, NODE)
    url = host["qflow_ipfs_api_url"]
    args = {"api_url": url}

    stat, rc = ipfs_repo(green_lab, args)
    assert rc == 0 and stat["changed"] is False, stat
    assert stat["repo"]["num_objects"] >= 3 and stat["repo"]["pins"] >= 3 and stat["repo"]["version"]

    # a flow created through the API is added and pinned on this node's daemon
    fid = "ipfs-it-%s" % uuid.uuid4().hex[:8]
    flow = {"id": fid, "name": fid, "version": "1.0.0", "owner": "squid:ops:lab-operator",
            "steps": [{"id": "s1", "type": "task", "action": "noop"}],
            "metadata": {"tags": [], "category": "test", "visibility": "private", "requiredPermissions": []}}
    created = api(host, "POST", "/api/v1/flows", {"flowData": json.dumps(flow)})
    cid = created["ipfsCid"]
    assert cid and cid.startswith("b") and pinned(url, cid)

    # gc in four steps: an unpinned block is predicted, removed, then nothing is left to remove
    garbage = ipfs_add(url, b"unpinned %s" % uuid.uuid4().hex.encode(), pin=False)
    gc = dict(args, state="gc")
    r1, rc = ipfs_repo(green_lab, gc, check=True)
    assert rc == 0 and r1["changed"] is True and garbage in r1["removed"], r1
    r2, rc = ipfs_repo(green_lab, gc)
    assert rc == 0 and r2["changed"] is True and garbage in r2["removed"], r2
    r3, rc = ipfs_repo(green_lab, gc, check=True)
    assert rc == 0 and r3["changed"] is False and r3["removed"] == [], r3
    r4, rc = ipfs_repo(green_lab, gc)
    assert rc == 0 and r4["changed"] is False and r4["removed"] == [], r4
    assert pinned(url, cid)  # gc keeps the flow

    v, rc = ipfs_repo(green_lab, dict(args, state="verify"))
    assert rc == 0 and v["verify"]["problems"] == [] and v["verify"]["checked"] >= 4, v

    api(host, "DELETE", "/api/v1/flows/%s" % fid)


def test_ipfs_repo_unreachable(green_lab):
    result, rc = ipfs_repo(green_lab, {"api_url": "http://127.0.1.1:5999", "timeout": 3})
    assert rc != 0 and "Cannot reach the IPFS RPC API" in result["msg"]
