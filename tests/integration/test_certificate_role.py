"""The role qflow.ops.certificate (community.crypto) on files in tmp_path: a generated playbook against localhost,
connection local, so it needs no lab node and runs the same on both lab profiles."""

from __future__ import annotations

import json
import stat

import pytest
import yaml

from labtest import BIN, run_cmd

cryptography = pytest.importorskip("cryptography", reason="community.crypto needs the Python library cryptography")
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

# no lab: localhost and community.crypto only (make test runs it beside make check)
pytestmark = pytest.mark.nolab

PLAY = {"hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}}


def playbook(tmp_path, role_vars, name="certificate.yml", tasks_from=None):
    """Write a playbook that applies the role with role_vars and prints the facts it sets."""
    include = {"name": "qflow.ops.certificate"}
    if tasks_from:
        include["tasks_from"] = tasks_from
    play = dict(PLAY, vars=dict(PLAY["vars"], **role_vars), tasks=[
        {"name": "Apply the role", "ansible.builtin.include_role": include},
        {"name": "Facts", "ansible.builtin.debug": {"msg": {
            "status": "{{ qflow_certificate_status | default(None) }}",
            "renewed": "{{ qflow_certificate_renewed | default(None) }}"}}},
    ])
    path = tmp_path / name
    path.write_text(yaml.safe_dump([play], sort_keys=False))
    return path


def run(path, check=False):
    """ansible-playbook with the json callback: (returncode, changed count, facts or None, failure messages)."""
    proc = run_cmd([str(BIN / "ansible-playbook"), "-i", "localhost,", str(path)] + (["--check"] if check else []),
                   env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}, timeout=300)
    try:
        out = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        raise AssertionError("no JSON from ansible-playbook (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    facts, failures = None, []
    for play in out["plays"]:
        for task in play["tasks"]:
            res = task["hosts"].get("localhost", {})
            if task["task"]["name"] == "Facts":
                facts = res.get("msg")
            if res.get("failed"):
                failures.append(res.get("msg", ""))
    changed = out["stats"].get("localhost", {}).get("changed", 0)
    return proc.returncode, changed, facts, failures


def files(base):
    """Every file under base with its bytes, to prove a run wrote nothing."""
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def cert_vars(tls, **extra):
    return dict({"qflow_cert_path": str(tls / "node.crt"), "qflow_cert_key_path": str(tls / "node.key"),
                 "qflow_cert_common_name": "qflow-node-test"}, **extra)


def public_key(pem_cert):
    return x509.load_pem_x509_certificate(pem_cert).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_public(pem_key):
    return serialization.load_pem_private_key(pem_key, password=None).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_missing_certificate_four_steps(tmp_path):
    tls = tmp_path / "tls"
    pb = playbook(tmp_path, cert_vars(tls))

    # 1. check mode: a change is reported, nothing is written
    rc, changed, facts, failures = run(pb, check=True)
    assert rc == 0 and not failures, failures
    assert changed >= 1
    assert not tls.exists()
    assert facts["renewed"] is True and facts["status"] == {}

    # 2. real: key (0600) and certificate created
    rc, changed, facts, failures = run(pb)
    assert rc == 0 and not failures, failures
    assert changed >= 1
    key, cert = tls / "node.key", tls / "node.crt"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.stat().st_mode) == 0o644
    assert public_key(cert.read_bytes()) == key_public(key.read_bytes())
    assert x509.load_pem_x509_certificate(cert.read_bytes()).subject.rfc4514_string() == "CN=qflow-node-test"
    status = facts["status"]
    assert facts["renewed"] is True
    assert status["path"] == str(cert) and status["expired"] is False and status["expiring"] is False
    assert 364 <= float(status["days_left"]) <= 366
    assert status["not_after"].endswith("Z") and "T" in status["not_after"]
    snapshot = files(tmp_path)

    # 3. check mode again: nothing to do; 4. real again: no change
    for check in (True, False):
        rc, changed, facts, failures = run(pb, check=check)
        assert rc == 0 and not failures, failures
        assert changed == 0, "check" if check else "real"
        assert facts["renewed"] is False and facts["status"]["expiring"] is False
        assert files(tmp_path) == snapshot


def test_certificate_expiring_in_5_days_is_renewed_key_kept(tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir(mode=0o750)
    key, cert = tls / "node.key", tls / "node.crt"
    setup = tmp_path / "setup.yml"
    setup.write_text(yaml.safe_dump([dict(PLAY, tasks=[
        {"name": "Key", "community.crypto.openssl_privatekey": {"path": str(key), "mode": "0600"}},
        {"name": "Certificate valid for 5 more days", "community.crypto.x509_certificate": {
            "path": str(cert), "privatekey_path": str(key), "provider": "selfsigned",
            "selfsigned_not_after": "+5d", "selfsigned_not_before": "-1d", "mode": "0644"}},
    ])], sort_keys=False))
    rc, _, _, failures = run(setup)
    assert rc == 0 and not failures, failures
    old_cert, old_key = cert.read_bytes(), key.read_bytes()
    pb = playbook(tmp_path, cert_vars(tls, qflow_cert_renew_within="30d"))

    # check mode reports the renewal and writes nothing
    before = files(tmp_path)
    rc, changed, facts, failures = run(pb, check=True)
    assert rc == 0 and not failures, failures
    assert changed >= 1 and facts["renewed"] is True
    status = facts["status"]
    assert status["expiring"] is True and status["expired"] is False
    assert 4 < float(status["days_left"]) <= 5
    assert files(tmp_path) == before

    # real: the certificate is replaced, the key is kept
    rc, changed, facts, failures = run(pb)
    assert rc == 0 and not failures, failures
    assert changed >= 1 and facts["renewed"] is True
    assert cert.read_bytes() != old_cert
    assert key.read_bytes() == old_key
    assert public_key(cert.read_bytes()) == key_public(old_key)
    assert facts["status"]["expiring"] is False and float(facts["status"]["days_left"]) > 360

    # a threshold under 5 days leaves the old certificate alone (valid_at "+<seconds>s" of x509_certificate_info)
    cert.write_bytes(old_cert)
    rc, changed, facts, failures = run(playbook(tmp_path, cert_vars(tls, qflow_cert_renew_within="4d"), "short.yml"))
    assert rc == 0 and not failures, failures
    assert changed == 0 and facts["renewed"] is False and facts["status"]["expiring"] is False
    assert cert.read_bytes() == old_cert

    # the entry point status only reads
    rc, changed, facts, failures = run(playbook(tmp_path, cert_vars(tls), "status.yml", tasks_from="status"))
    assert rc == 0 and not failures, failures
    assert changed == 0 and facts["status"]["expiring"] is True and facts["renewed"] is None
    assert cert.read_bytes() == old_cert


def test_ownca_without_ca_paths_is_refused(tmp_path):
    tls = tmp_path / "tls"
    rc, _, _, failures = run(playbook(tmp_path, cert_vars(tls, qflow_cert_provider="ownca")))
    assert rc != 0
    assert any("qflow_cert_provider ownca needs qflow_cert_ca_path and qflow_cert_ca_key_path" in m for m in failures), failures
    assert not tls.exists()


def test_misspelt_variable_is_refused(tmp_path):
    tls = tmp_path / "tls"
    rc, _, _, failures = run(playbook(tmp_path, cert_vars(tls, qflow_cert_renew_withn="10d")))
    assert rc != 0
    assert any("qflow_cert_renew_withn (did you mean qflow_cert_renew_within?)" in m for m in failures), failures
    assert not tls.exists()
