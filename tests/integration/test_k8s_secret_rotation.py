"""The weekly window's JWT step on the kubernetes backend, against a FAKE Kubernetes API server (k8s_fake_api).

No real cluster: no Kubernetes API server can be had on the test machine. The fake server implements only what
kubernetes.core's client calls for a Secret (discovery, GET and PATCH, dryRun); kubernetes.core and the Python
``kubernetes`` library are the real ones. Needs no lab.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from k8s_fake_api import FakeKubeAPI, kubeconfig  # noqa: E402

# no lab: the fake Kubernetes API on loopback (make test runs it beside make check)
pytestmark = pytest.mark.nolab

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
OLD_JWT = 'old-jwt-secret-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
OLD_PREV = 'older-jwt-secret-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB'
ENC_KEY = 'encryption-key-CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC'

pytest.importorskip('kubernetes', reason='kubernetes.core needs the Python kubernetes library (requirements.txt)')

PLAYBOOK = textwrap.dedent('''\
    - name: JWT step of the weekly window on the kubernetes backend
      hosts: localhost
      connection: local
      gather_facts: false
      tasks:
        - name: JWT rotation
          ansible.builtin.import_role:
            name: qflow.ops.maintenance
            tasks_from: jwt
        - name: Write the step result and check items
          ansible.builtin.copy:
            content: "{{ {'jwt': _qflow_jwt, 'checks': qflow_checks} | to_json }}"
            dest: "{{ out_file }}"
            mode: "0600"
          check_mode: false
''')


def b64(text):
    return base64.b64encode(text.encode()).decode()


def unb64(text):
    return base64.b64decode(text).decode()


def secret_forms(*values):
    """Every form in which a value could leak: plain and base64."""
    return [form for value in values for form in (value, b64(value))]


@pytest.fixture
def fake_api():
    with FakeKubeAPI() as api:
        api.add_secret('qflow', 'qflow-secrets', {'QFLOW_JWT_SECRET': b64(OLD_JWT),
                                                  'QFLOW_JWT_SECRET_PREVIOUS': b64(OLD_PREV),
                                                  'QFLOW_ENCRYPTION_KEY': b64(ENC_KEY)})
        yield api


def run_jwt_step(tmp_path, server_url, *args, config=None, extra_vars=None):
    """ansible-playbook of the JWT step; returns (completed process, {'jwt': ..., 'checks': ...}). The kubeconfig of
    ``server_url`` is given by K8S_AUTH_KUBECONFIG; ``config`` (kubeconfig text) by qflow_k8s_kubeconfig instead."""
    (tmp_path / 'kubeconfig').write_text(config or kubeconfig(server_url))
    (tmp_path / 'play.yml').write_text(PLAYBOOK)
    out = tmp_path / 'out.json'
    if out.exists():
        out.unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith('K8S_AUTH_') and k != 'KUBECONFIG'}
    env.update(ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               PATH='%s:%s' % (VENV_BIN, os.environ.get('PATH', '')))
    extra = {'qflow_service_backend': 'kubernetes', 'qflow_k8s_namespace': 'qflow', 'qflow_k8s_secret': 'qflow-secrets',
             'qflow_api_url': 'http://127.0.0.1:9', 'ansible_python_interpreter': sys.executable,
             'qflow_task_timeout': 120, 'out_file': str(out), **(extra_vars or {})}
    if config:
        extra['qflow_k8s_kubeconfig'] = str(tmp_path / 'kubeconfig')
    else:
        env['K8S_AUTH_KUBECONFIG'] = str(tmp_path / 'kubeconfig')
    proc = subprocess.run([str(VENV_BIN / 'ansible-playbook'), str(tmp_path / 'play.yml'), '-i', 'localhost,',
                           '-e', json.dumps(extra), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    result = json.loads(out.read_text()) if out.exists() else None
    return proc, result


def jwt_item(result):
    return next(item for item in result['checks'] if item['item'] == 'jwt_rotation')


def test_four_steps_rotate_once_with_previous_and_annotations(fake_api, tmp_path):
    before = fake_api.secret('qflow', 'qflow-secrets')

    # 1. check: would change, the Secret is left as it was (the patch is a server-side dry run)
    proc, result = run_jwt_step(tmp_path, fake_api.url, '--check', '--diff')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result['jwt']['changed'] is True and result['jwt']['rotated'] == ['QFLOW_JWT_SECRET']
    assert 'age unknown' in result['jwt']['reasons']['QFLOW_JWT_SECRET']
    assert result['jwt']['restart_required'] is False
    assert result['jwt']['fingerprints']['QFLOW_JWT_SECRET']['after'] is None
    assert jwt_item(result)['value'] == 'would change' and jwt_item(result)['ok'] is True
    assert fake_api.secret('qflow', 'qflow-secrets') == before
    assert any(method == 'PATCH' and 'dryRun=All' in query for method, _, query, _ in fake_api.requests)

    # 2. real: new value, the old one as _PREVIOUS, annotations with time and fingerprint; other keys untouched
    proc, result = run_jwt_step(tmp_path, fake_api.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = fake_api.secret('qflow', 'qflow-secrets')
    new_jwt = unb64(after['data']['QFLOW_JWT_SECRET'])
    assert new_jwt != OLD_JWT and len(new_jwt) >= 64
    assert unb64(after['data']['QFLOW_JWT_SECRET_PREVIOUS']) == OLD_JWT
    assert unb64(after['data']['QFLOW_ENCRYPTION_KEY']) == ENC_KEY
    annotations = after['metadata']['annotations']
    fp = result['jwt']['fingerprints']['QFLOW_JWT_SECRET']
    assert annotations['qflow.ops/QFLOW_JWT_SECRET-fingerprint'] == fp['after']
    assert annotations['qflow.ops/QFLOW_JWT_SECRET-rotated-at'].endswith('Z')
    assert fp['before'] != fp['after'] and fp['after'].startswith('sha256:')
    assert result['jwt']['changed'] is True and result['jwt']['restart_required'] is True
    assert jwt_item(result)['value'] == 'changed'
    assert fp['before'] in jwt_item(result)['detail'] and fp['after'] in jwt_item(result)['detail']

    # 3. check again: nothing to do; 4. real again: nothing changes
    for args in (('--check',), ()):
        proc, result = run_jwt_step(tmp_path, fake_api.url, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert result['jwt']['changed'] is False and result['jwt']['rotated'] == []
        assert jwt_item(result)['value'] == 'no change'
        assert fake_api.secret('qflow', 'qflow-secrets') == after
    assert fake_api.unknown == []


def test_kubernetes_context_selects_the_cluster(fake_api, tmp_path):
    """One kubeconfig with two clusters, given by qflow_k8s_kubeconfig (no K8S_AUTH_* variable), its current context
    the other cluster: qflow_k8s_context decides which API server every kubernetes.core task of the step talks to."""
    with FakeKubeAPI() as other:
        other.add_secret('qflow', 'qflow-secrets', {'QFLOW_JWT_SECRET': b64(OLD_JWT)})
        other_before = other.secret('qflow', 'qflow-secrets')
        config = kubeconfig(None, contexts={'prod-eu-west': fake_api.url, 'prod-us-east': other.url},
                            current='prod-us-east')

        # qflow_k8s_context prod-eu-west: that cluster's Secret is read and rotated, the current context is never asked
        proc, result = run_jwt_step(tmp_path, None, config=config, extra_vars={'qflow_k8s_context': 'prod-eu-west'})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert result['jwt']['changed'] is True and result['jwt']['rotated'] == ['QFLOW_JWT_SECRET']
        rotated = fake_api.secret('qflow', 'qflow-secrets')
        assert unb64(rotated['data']['QFLOW_JWT_SECRET_PREVIOUS']) == OLD_JWT
        assert {(m, p) for m, p, _, _ in fake_api.requests if '/secrets/' in p} == {
            ('GET', '/api/v1/namespaces/qflow/secrets/qflow-secrets'),
            ('PATCH', '/api/v1/namespaces/qflow/secrets/qflow-secrets')}
        assert other.requests == [] and other.secret('qflow', 'qflow-secrets') == other_before

        # no qflow_k8s_context: the same file (qflow_k8s_kubeconfig), its current context (check mode: a dry run)
        asked = len(fake_api.requests)
        proc, result = run_jwt_step(tmp_path, None, '--check', config=config)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert result['jwt']['changed'] is True  # us-east's Secret has no rotation annotation: it would rotate
        assert ('GET', '/api/v1/namespaces/qflow/secrets/qflow-secrets', '', None) in other.requests
        assert any(m == 'PATCH' and 'dryRun=All' in q for m, _, q, _ in other.requests)
        assert other.secret('qflow', 'qflow-secrets') == other_before
        assert len(fake_api.requests) == asked and fake_api.secret('qflow', 'qflow-secrets') == rotated
        assert fake_api.unknown == [] and other.unknown == []


def test_secret_values_never_in_output_at_vvv(fake_api, tmp_path):
    outputs = []
    for args in (('--check', '--diff', '-vvv'), ('--diff', '-vvv')):
        proc, _ = run_jwt_step(tmp_path, fake_api.url, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append(proc.stdout + proc.stderr)
    new_jwt = unb64(fake_api.secret('qflow', 'qflow-secrets')['data']['QFLOW_JWT_SECRET'])
    assert new_jwt != OLD_JWT
    leaks = [form for form in secret_forms(OLD_JWT, OLD_PREV, ENC_KEY, new_jwt) for text in outputs if form in text]
    assert leaks == []
    assert 'sha256:' in outputs[1]  # the fingerprints are shown


def test_unreachable_api_is_a_clear_failed_item(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    proc, result = run_jwt_step(tmp_path, 'http://127.0.0.1:%d' % port)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the window goes on; the report item fails
    item = jwt_item(result)
    assert item['ok'] is False and item['value'] == 'failed'
    assert 'read the Secret qflow/qflow-secrets' in item['detail']
    assert '127.0.0.1' in item['detail'] and str(port) in item['detail']
    assert result['jwt']['failed'] is True and result['jwt']['changed'] is False


def test_missing_secret_is_a_clear_failed_item(tmp_path):
    with FakeKubeAPI() as api:
        proc, result = run_jwt_step(tmp_path, api.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    item = jwt_item(result)
    assert item['ok'] is False and 'Secret qflow/qflow-secrets not found' in item['detail']


ROLLBACK_PLAYBOOK = textwrap.dedent('''\
    - name: JWT step, then the restart whose health gate fails, on the kubernetes backend
      hosts: localhost
      connection: local
      gather_facts: false
      tasks:
        - name: JWT rotation
          ansible.builtin.import_role:
            name: qflow.ops.maintenance
            tasks_from: jwt
        - name: Rolling restart, health gate, rollback
          ansible.builtin.import_role:
            name: qflow.ops.maintenance
            tasks_from: restart
''')


def test_failed_health_gate_patches_the_previous_secret_back(fake_api, tmp_path):
    fake_api.add_deployment('qflow', 'qflow')
    before = fake_api.secret('qflow', 'qflow-secrets')
    (tmp_path / 'kubeconfig').write_text(kubeconfig(fake_api.url))
    (tmp_path / 'play.yml').write_text(ROLLBACK_PLAYBOOK)
    env = dict(os.environ, K8S_AUTH_KUBECONFIG=str(tmp_path / 'kubeconfig'), ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'),
               ANSIBLE_NOCOLOR='1', QFLOW_REPORT_DIR=str(tmp_path / 'reports'),
               PATH='%s:%s' % (VENV_BIN, os.environ.get('PATH', '')))
    extra = {'qflow_service_backend': 'kubernetes', 'qflow_api_url': 'http://127.0.0.1:9',  # never ready
             'ansible_python_interpreter': sys.executable, 'qflow_maint_gate_timeout': 2,
             'qflow_service_gate_delay': 1, 'qflow_task_timeout': 120}
    proc = subprocess.run([str(VENV_BIN / 'ansible-playbook'), str(tmp_path / 'play.yml'), '-i', 'localhost,',
                           '-e', json.dumps(extra), '-vvv'], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and 'rolled back, node NOT r' in output, output[-3000:]
    # the rotated value was live in between (the rollout restart happened), then the previous values came back
    restored = fake_api.secret('qflow', 'qflow-secrets')
    assert restored['data'] == before['data']
    assert restored['metadata']['annotations'] == before['metadata']['annotations']
    assert int(restored['metadata']['resourceVersion']) > int(before['metadata']['resourceVersion'])
    restarts = [q for m, p, q, _ in fake_api.requests if m == 'PATCH' and p.endswith('/deployments/qflow')]
    assert len(restarts) == 2  # the restart, and the restart after the rollback
    assert 'restored: Secret qflow/qflow-secrets' in output
    assert [form for form in secret_forms(OLD_JWT, OLD_PREV, ENC_KEY) if form in output] == []
