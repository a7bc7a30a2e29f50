"""The example inventories (inventories/examples/): they load, they hold what the procedures read, every variable the
procedures read is documented in each, and nothing in them is a secret or a real address. No lab needed: only
ansible-inventory, ansible-playbook --syntax-check and a controller-only render (no node is contacted).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "inventories" / "examples"
BIN = Path(sys.executable).parent
PLAYBOOKS = sorted(p for p in (REPO / "playbooks").glob("*.yml") if "-" not in p.stem)
DUMMY_TOKEN = "dummy-token-from-the-environment"

# example -> what its inventory must show
EXPECTED = {
    "systemd-fleet": {
        "backend": "systemd",
        "groups": {"qflow_nodes": {"qflow-1.example.com", "qflow-2.example.com", "qflow-3.example.com"},
                   "qflow_dc1": {"qflow-1.example.com", "qflow-2.example.com"},
                   "qflow_dc2": {"qflow-3.example.com"}},
        "values": {"qflow_config_path": "/etc/qflow/qflow-config.yaml", "qflow_env_path": "/etc/qflow/qflow.env",
                   "qflow_data_dir": "/var/lib/qflow", "qflow_log_dir": "/var/log/qflow",
                   "qflow_backup_dir": "/var/backups/qflow", "qflow_service_name": "qflow",
                   "qflow_api_url": "http://localhost:8080"},
        "needs": ["ansible_host", "ansible_user", "ansible_python_interpreter"],
        "rendered": {"qflow-1.example.com": {"qflow_metrics_url": "http://192.0.2.11:9090/metrics",
                                             "qflow_prometheus_url": "http://prometheus.example.com:9090"},
                     "qflow-3.example.com": {"qflow_metrics_url": "http://198.51.100.13:9090/metrics",
                                             "qflow_prometheus_url": "http://prometheus.dc2.example.com:9090"}},
    },
    "compose-host": {
        "backend": "docker_compose",
        "groups": {"qflow_nodes": {"qflow-compose-1.example.com", "qflow-compose-2.example.com"}},
        "values": {"qflow_compose_project_dir": "/srv/qflow/compose", "qflow_compose_service": "qflow",
                   "qflow_service_name": "qflow", "qflow_backup_dir": "/srv/qflow/backups",
                   "qflow_api_url": "http://localhost:8080"},
        "needs": ["ansible_host", "ansible_user", "ansible_python_interpreter", "qflow_config_path", "qflow_env_path",
                  "qflow_data_dir", "qflow_log_dir"],
        "rendered": {"qflow-compose-2.example.com": {"qflow_metrics_url": "http://192.0.2.22:9090/metrics"}},
    },
    "kubernetes": {
        "backend": "kubernetes",
        "groups": {"qflow_nodes": {"qflow-eu-1", "qflow-eu-2", "qflow-us-1"},
                   "qflow_clusters": {"qflow-eu-1", "qflow-eu-2", "qflow-us-1"},
                   "k8s_eu_west": {"qflow-eu-1", "qflow-eu-2"},
                   "k8s_us_east": {"qflow-us-1"}},
        "values": {"ansible_connection": "kubernetes.core.kubectl", "qflow_backup_dir": "/var/backups/qflow",
                   "qflow_api_url": "http://localhost:8080"},
        "needs": ["qflow_k8s_context", "qflow_k8s_namespace", "qflow_k8s_kind", "qflow_k8s_workload",
                  "qflow_k8s_secret", "qflow_k8s_label_selectors", "ansible_kubectl_context",
                  "ansible_kubectl_namespace", "ansible_kubectl_pod", "qflow_config_path", "qflow_env_path",
                  "qflow_data_dir", "qflow_log_dir"],
        "rendered": {"qflow-eu-2": {"ansible_kubectl_context": "prod-eu-west", "ansible_kubectl_namespace": "qflow",
                                    "ansible_kubectl_pod": "deployment/qflow-eu-2",
                                    "qflow_k8s_kind": "Deployment", "qflow_k8s_workload": "qflow-eu-2",
                                    "qflow_k8s_secret": "qflow-eu-2-secrets",
                                    "qflow_metrics_url": "http://qflow-eu-2.qflow.svc:9090/metrics",
                                    "qflow_k8s_label_selectors": ["app.kubernetes.io/name=qflow",
                                                                  "app.kubernetes.io/instance=qflow-eu-2"]},
                     "qflow-us-1": {"ansible_kubectl_context": "prod-us-east", "ansible_kubectl_namespace": "qflow-us",
                                    "qflow_metrics_url": "http://qflow-us-1.qflow-us.svc:9090/metrics"}},
    },
}
# Every node of every example must have these (the procedures read them; monitoring for the health check's items).
COMMON_NEEDS = ["qflow_service_backend", "qflow_api_url", "qflow_metrics_url", "qflow_api_token",
                "qflow_prometheus_url", "qflow_alertmanager_url", "qflow_backup_dir"]

RENDER_PLAYBOOK = textwrap.dedent("""\
    - name: Render what the procedures read, for every node, on the controller only (no node is contacted)
      hosts: localhost
      gather_facts: false
      tasks:
        - name: Collect the rendered values of each node
          ansible.builtin.set_fact:
            _rendered: >-
              {{ _rendered | default({}) | combine({item: dict(names | zip(names | map('extract', hostvars[item])))
                 | combine({'webhook_defined': hostvars[item].qflow_notify_webhook_url is defined})}) }}
          loop: "{{ groups['qflow_nodes'] }}"

        - name: Write them
          ansible.builtin.copy:
            dest: "{{ out_dir }}/rendered.json"
            content: "{{ _rendered | to_json }}"
            mode: "0600"
    """)


def _env():
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    for name in ("QFLOW_API_TOKEN", "QFLOW_NOTIFY_WEBHOOK_URL", "ANSIBLE_VAULT_PASSWORD_FILE", "ANSIBLE_INVENTORY",
                 "ANSIBLE_VAULT_IDENTITY_LIST"):
        env.pop(name, None)
    return env


def _start(tool, *args, env=None):
    return subprocess.Popen([str(BIN / tool), *map(str, args)], cwd=REPO, env=env or _env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every ansible command of the module, started at once (2 cores: the syntax checks dominate), then awaited."""
    procs = {}
    for name in EXPECTED:
        inv = EXAMPLES / name
        procs[name, "graph"] = _start("ansible-inventory", "-i", inv, "--graph")
        procs[name, "list"] = _start("ansible-inventory", "-i", inv, "--list")
        procs[name, "syntax"] = _start("ansible-playbook", "--syntax-check", "-i", inv, *PLAYBOOKS)
        out_dir = tmp_path_factory.mktemp("render-" + name)
        names = sorted(set(COMMON_NEEDS + EXPECTED[name]["needs"] + list(EXPECTED[name]["values"])))
        (out_dir / "render.yml").write_text(RENDER_PLAYBOOK)
        procs[name, "render"] = _start("ansible-playbook", "-i", inv, out_dir / "render.yml",
                                       "-e", json.dumps({"out_dir": str(out_dir), "names": names}),
                                       env=dict(_env(), QFLOW_API_TOKEN=DUMMY_TOKEN))
        procs[name, "render_dir"] = out_dir
    return {key: (p if isinstance(p, Path) else _finish(p)) for key, p in procs.items()}


def _graph_groups(text):
    """--graph output -> {group: set of the hosts in it or in its children}."""
    groups, stack = {}, []
    for line in text.splitlines():
        m = re.match(r"^([ |]*)--(@?)([^:]+):?$", line.rstrip())
        if not line.startswith("@") and not m:
            continue
        if line.startswith("@"):
            stack = [line.strip("@:")]
            groups.setdefault(stack[0], set())
            continue
        stack = stack[:len(m.group(1)) // 3]
        if m.group(2):
            stack.append(m.group(3))
            groups.setdefault(m.group(3), set())
        else:
            for group in stack:
                groups[group].add(m.group(3))
    return groups


def _list_hosts(data, group):
    hosts = set(data.get(group, {}).get("hosts", []))
    for child in data.get(group, {}).get("children", []):
        hosts |= _list_hosts(data, child)
    return hosts


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_graph_shows_the_groups_and_hosts(results, name):
    proc = results[name, "graph"]
    assert proc.returncode == 0, proc.stderr
    groups = _graph_groups(proc.stdout)
    for group, hosts in EXPECTED[name]["groups"].items():
        assert groups.get(group) == hosts, "%s: group %s shows %s\n%s" % (name, group, groups.get(group), proc.stdout)
    assert groups["qflow_nodes"], "qflow_nodes is what the procedures target: it must not be empty"
    assert "[WARNING]" not in proc.stderr, proc.stderr


def test_node_groups_and_cluster_groups_are_distinct(results):
    data = json.loads(results["kubernetes", "list"].stdout)
    assert "qflow_clusters" not in data["qflow_nodes"].get("children", [])
    assert "qflow_nodes" not in data["qflow_clusters"].get("children", [])
    clusters = data["qflow_clusters"]["children"]
    assert sorted(clusters) == ["k8s_eu_west", "k8s_us_east"]
    hostvars = data["_meta"]["hostvars"]
    for cluster in clusters:  # each cluster gives its nodes one context and namespace
        nodes = _list_hosts(data, cluster)
        assert len({hostvars[h]["qflow_k8s_context"] for h in nodes}) == 1
        assert len({hostvars[h]["qflow_k8s_namespace"] for h in nodes}) == 1


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_list_holds_what_the_procedures_read_without_a_vault_password(results, name):
    proc = results[name, "list"]
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    nodes = _list_hosts(data, "qflow_nodes")
    assert nodes == EXPECTED[name]["groups"]["qflow_nodes"]
    for node in nodes:
        hv = data["_meta"]["hostvars"][node]
        missing = [v for v in COMMON_NEEDS + EXPECTED[name]["needs"] if v not in hv]
        assert not missing, "%s: %s lacks %s" % (name, node, missing)
        assert hv["qflow_service_backend"] == EXPECTED[name]["backend"]
        for var, value in EXPECTED[name]["values"].items():
            assert hv.get(var) == value, "%s: %s %s=%r" % (name, node, var, hv.get(var))
        # the token is a template over the vault, else the environment, never a value; the optional webhook is off
        # (an undefined optional secret would stop the roles' argument checks)
        assert "vault_qflow_api_token" in hv["qflow_api_token"] and "QFLOW_API_TOKEN" in hv["qflow_api_token"]
        assert "qflow_notify_webhook_url" not in hv


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_values_render_token_from_the_environment_and_no_webhook(results, name):
    proc = results[name, "render"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    out_dir = results[name, "render_dir"]
    rendered = json.loads((out_dir / "rendered.json").read_text())
    assert set(rendered) == EXPECTED[name]["groups"]["qflow_nodes"]
    for node, values in rendered.items():
        assert values["qflow_api_token"] == DUMMY_TOKEN, "no vault: the token comes from $QFLOW_API_TOKEN"
        assert values["webhook_defined"] is False, "neither vault nor environment: no webhook, notifications skipped"
        assert not [k for k, v in values.items() if "{{" in json.dumps(v)], values
    for node, want in EXPECTED[name]["rendered"].items():
        for var, value in want.items():
            assert rendered[node][var] == value, "%s: %s %s" % (name, node, var)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_playbook_passes_syntax_check(results, name):
    assert len(PLAYBOOKS) >= 12
    proc = results[name, "syntax"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for playbook in PLAYBOOKS:
        assert "playbook: %s" % playbook in proc.stdout


# ---------------------------------------------------------------------------------------------------------------------
# Every variable the procedures read is documented in each example
# ---------------------------------------------------------------------------------------------------------------------
def _procedure_roles():
    """Roles the underscore playbooks use, and the roles those roles use (the closure)."""
    refs = re.compile(r"qflow\.ops\.([a-z_]+)")
    roles_dir = REPO / "roles"
    todo = {r for p in PLAYBOOKS for r in refs.findall(p.read_text()) if (roles_dir / r).is_dir()}
    seen = set()
    while todo:
        role = todo.pop()
        seen.add(role)
        for f in (roles_dir / role).rglob("*.yml"):
            todo |= {r for r in refs.findall(f.read_text()) if (roles_dir / r).is_dir()} - seen
    return seen


def _assigned_names():
    """qflow_* names the roles and playbooks set themselves (set_fact keys, register)."""
    names = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("ansible.builtin.set_fact", "set_fact") and isinstance(value, dict):
                    names.update(k for k in value if str(k).startswith("qflow_"))
                elif key == "register" and str(value).startswith("qflow_"):
                    names.add(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for f in list((REPO / "roles").glob("*/tasks/*.yml")) + PLAYBOOKS:
        walk(yaml.safe_load(f.read_text()))
    return names


@functools.lru_cache(maxsize=None)
def procedure_variables():
    names = set()
    for role in _procedure_roles():
        spec = REPO / "roles" / role / "meta" / "argument_specs.yml"
        if spec.exists():
            for entry in (yaml.safe_load(spec.read_text())["argument_specs"] or {}).values():
                names |= {k for k in (entry.get("options") or {}) if k.startswith("qflow_")}
    knobs = set()
    for playbook in PLAYBOOKS:
        knobs |= set(re.findall(r"(qflow_[a-z0-9_]+) \| default\(", playbook.read_text()))
    return frozenset(names | (knobs - _assigned_names()))


def test_the_variable_list_is_the_procedures():
    names = procedure_variables()
    # a sample of each source: argument specs, playbook knobs, a shared node variable
    assert {"qflow_health_cpu_max_percent", "qflow_k8s_secret", "qflow_maint_serial", "qflow_target",
            "qflow_breach_identity", "qflow_backup_dir"} <= names
    assert not {"qflow_checks", "qflow_procedure_hosts", "qflow_ir_recovered"} & names  # facts, not variables


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_variable_the_procedures_read_is_documented(name):
    text = "\n".join(p.read_text() for p in (EXAMPLES / name).rglob("*") if p.is_file())
    missing = sorted(v for v in procedure_variables() if not re.search(r"\b%s\b" % v, text))
    assert not missing, "inventories/examples/%s does not mention: %s" % (name, ", ".join(missing))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_vault_example_lists_every_vault_variable(name):
    files = [p for p in (EXAMPLES / name).rglob("*") if p.is_file()]
    used = set()
    for p in files:
        if p.name != "vault.yml.example":
            used |= set(re.findall(r"\b(vault_[a-z0-9_]+)", p.read_text()))
    example = (EXAMPLES / name / "group_vars" / "all" / "vault.yml.example").read_text()
    assert {"vault_qflow_api_token", "vault_qflow_notify_webhook_url"} <= used
    assert not [v for v in used if v not in example], used
    assert "ansible-vault create" in example
    # placeholders only, loaded by nobody (ansible-vault create makes the real, encrypted vault.yml)
    data = yaml.safe_load(example.split("\n---\n", 1)[1])
    assert all(looks_like_placeholder(v) for v in data.values()), data
    assert not [p for p in files if p.name in ("vault.yml", "vault.yaml")]


# ---------------------------------------------------------------------------------------------------------------------
# No secret, no real address
# ---------------------------------------------------------------------------------------------------------------------
SECRET_KEY = re.compile(r"(token|secret|passw|webhook|api_?key|private_key|credential)", re.I)
SECRET_FORMATS = [re.compile(p) for p in (
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----", r"\bxox[abposr]-[0-9A-Za-z-]{10,}", r"\bgh[pousr]_[0-9A-Za-z]{20,}",
    r"\beyJ[0-9A-Za-z_-]{10,}\.[0-9A-Za-z_-]{10,}", r"hooks\.slack\.com/services/T[0-9A-Z]+", r"\$ANSIBLE_VAULT;",
    r"\bAKIA[0-9A-Z]{16}\b")]
DOC_NETWORKS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
                                                  "127.0.0.0/8")]  # RFC 5737, and the loopback (no host)
DOC_DOMAINS = ("example.com", "example.net", "example.org", "example", "test", "invalid", "localhost", "svc",
               "svc.cluster.local",
               "kubernetes.io")  # the prefix of the labels app.kubernetes.io/name, not an address


def looks_like_placeholder(value):
    return isinstance(value, str) and ("<" in value and ">" in value or "{{" in value)


def _entropy(text):
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def looks_random(value):
    """A run of 20+ key-like characters that looks generated: long hex, or upper, lower and digits mixed, or letters
    and many digits, with a high entropy (words, paths and names have fewer digits and repeat their letters)."""
    if "{{" in value:
        return False
    for run in re.findall(r"[A-Za-z0-9+/=_.~-]{20,}", value):
        classes = sum(bool(re.search(p, run)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
        digits = len(re.findall("[0-9]", run)) / len(run)
        if (re.fullmatch(r"[0-9a-fA-F]{32,}", run) or (classes == 3 and _entropy(run) >= 3.5)
                or (classes == 2 and digits >= 0.25 and _entropy(run) >= 3.8)):
            return True
    return False


def secret_findings(text):
    """(line number, line) of what looks like a secret: a known secret format anywhere, or a random-looking value for
    a key whose name says secret (token, password, webhook, ...), in YAML or in a comment."""
    found = []
    for no, line in enumerate(text.splitlines(), 1):
        if any(p.search(line) for p in SECRET_FORMATS):
            found.append((no, line))
            continue
        m = re.match(r"^[\s#-]*\"?([A-Za-z0-9_.#\"-]+)\"?\s*[:=]\s*(.+)$", line)
        if m and SECRET_KEY.search(m.group(1)):
            value = m.group(2).strip().strip("'\"")
            if looks_random(value) or (re.match(r"https?://", value) and not looks_like_placeholder(value)
                                       and "example." not in value):
                found.append((no, line))
    return found


def address_findings(text):
    """Addresses that are not documentation ones: IPv4 outside RFC 5737, host names outside RFC 2606 / local."""
    found = set()
    for ip in re.findall(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?![\w.])", text):
        addr = ipaddress.ip_address(ip)
        if not any(addr in net for net in DOC_NETWORKS):
            found.add(ip)
    hosts = re.findall(r"[a-z][a-z0-9+.-]*://([^/:\s\"'<>{}\[\]]+)", text, re.I)
    hosts += re.findall(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)", text)
    hosts += re.findall(r"\b((?:[a-z0-9-]+\.)+(?:com|net|org|io|dev|cloud|app|co|de|uk|eu))\b", text, re.I)
    hosts += re.findall(r"ansible_host:\s*([^\s#]+)", text)
    for host in hosts:
        host = host.strip("\"'").lower()
        if "{" in host or re.fullmatch(r"[\d.]+", host):
            continue
        if not any(host == d or host.endswith("." + d) for d in DOC_DOMAINS):
            found.add(host)
    return sorted(found)


def test_the_detectors_catch_what_they_must():
    generated = secrets.token_urlsafe(32)
    assert secret_findings("qflow_api_token: %s" % generated)
    assert secret_findings('vault_qflow_api_token: "%s"' % secrets.token_hex(24))
    assert secret_findings("# qflow_notify_webhook_url: https://hooks.slack.com/services/T0AB12/B0CD34/abc")
    assert secret_findings("ansible_become_password: %s" % generated)
    assert secret_findings("-----BEGIN OPENSSH PRIVATE KEY-----")
    for fine in ('qflow_api_token: "{{ vault_qflow_api_token }}"', 'vault_qflow_api_token: "<the operator token>"',
                 'vault_qflow_notify_webhook_url: "https://hooks.example.com/services/<your webhook path>"',
                 "qflow_k8s_secret: qflow-eu-1-secrets", "qflow_maint_jwt_max_age: 6d",
                 "# qflow_security_max_secret_age: 90d", "qflow_maint_jwt_rotation: true"):
        assert not secret_findings(fine), fine
    assert address_findings("ansible_host: 10.0.0.5") == ["10.0.0.5"]
    assert address_findings("qflow_prometheus_url: http://prometheus.corp.acme.io:9090")
    assert address_findings("mail: ops@acme.com") == ["acme.com"]
    assert not address_findings("ansible_host: 192.0.2.11 http://prometheus.example.com:9090 "
                                "http://qflow-eu-1.qflow.svc:9090 http://localhost:8080 kubernetes.core.kubectl")


def _example_files():
    return sorted(p for p in EXAMPLES.rglob("*") if p.is_file())


def test_no_file_holds_a_secret():
    files = _example_files()
    assert len(files) >= 20
    findings = {str(p.relative_to(REPO)): secret_findings(p.read_text()) for p in files}
    assert not {k: v for k, v in findings.items() if v}


def test_only_documentation_addresses():
    findings = {str(p.relative_to(REPO)): address_findings(p.read_text()) for p in _example_files()}
    assert not {k: v for k, v in findings.items() if v}


def test_the_examples_are_not_ignored_by_git():
    if not (REPO / ".git").exists() or not shutil.which("git"):
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(REPO)) for p in _example_files()]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *files], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1 and not proc.stdout, "ignored by .gitignore: %s" % proc.stdout
