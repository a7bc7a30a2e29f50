"""AWX / Automation Controller as code, proven without a controller: awx/controller.yml's templates, surveys,
credential types, workflow and schedules are data, checked here against the playbooks, the roles' argument specs, the
runbook's times and the controller's own validation rules; execution-environment.yml builds its context with
ansible-builder; awx/configure.yml passes a syntax check and uses only options the awx.awx modules have; and
qflow_ops.awx.replay_kwargs launches a template the way the controller does. No lab, no controller."""

from __future__ import annotations

import ast
import datetime
import functools
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import ansible
import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from qflow_ops import awx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFS = awx.load()
TEMPLATES = DEFS["qflow_awx_job_templates"]
PROCEDURES = sorted(p.name for p in (ROOT / "playbooks").glob("*.yml") if "-" not in p.stem)
# awx.awx as the `ansible` package installs it (site-packages/ansible_collections, beside ansible-core)
AWX_MODULES = Path(ansible.__file__).resolve().parent.parent / "ansible_collections" / "awx" / "awx" / "plugins" / "modules"
if not AWX_MODULES.is_dir():  # pragma: no cover - awx.awx is part of the pinned ansible package
    AWX_MODULES = None

# The runbook's times (its "Daily", "Weekly" and "Monthly" sections) and ours for the procedures it gives no time:
# job template -> (frequency, weekday or None, hour, minute). Monthly: the first Sunday.
RUNBOOK_TIMES = {
    "Qflow morning health check": ("daily", None, 9, 0),
    "Qflow performance review": ("daily", None, 14, 0),
    "Qflow log review": ("daily", None, 17, 0),
    "Qflow weekly maintenance": ("weekly", 6, 2, 0),
    "Qflow monthly maintenance": ("monthly-first", 6, 1, 0),
    "Qflow nightly backup": ("daily", None, 0, 0),
    "Qflow security daily check": ("daily", None, 8, 30),
}
SURVEY_TO_SPEC = {  # survey question type -> argument spec types an answer of it passes
    "integer": {"int", "float", "str", "raw"},
    "float": {"float", "str", "raw"},
    "text": {"str", "raw", "path"},
    "textarea": {"str", "raw", "path"},
    "password": {"str", "raw"},
    "multiplechoice": {"str", "raw"},
    "multiselect": {"list"},
}


# ------------------------------------------------------------------------------------------------ helpers
def _tasks(node):
    """Every task dict of a playbook or task file (blocks flattened)."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        if any(k in node for k in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")):
            for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
                yield from _tasks(node.get(key) or [])
            if "block" in node:
                return
        if "hosts" not in node:
            yield node


@functools.lru_cache(maxsize=None)
def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


def _role_refs(path: Path) -> set[str]:
    refs = set()
    for task in _tasks(_yaml(path) or []):
        for key in ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role"):
            name = (task.get(key) or {}).get("name", "") if isinstance(task.get(key), dict) else ""
            if name.startswith("qflow.ops."):
                refs.add(name.split(".", 2)[2])
    return refs


def roles_of(playbook: Path) -> set[str]:
    """The qflow.ops roles a playbook uses, with the roles those include (transitively)."""
    todo, seen = set(_role_refs(playbook)), set()
    while todo:
        role = todo.pop()
        if role in seen or not (ROOT / "roles" / role).is_dir():
            continue
        seen.add(role)
        for task_file in (ROOT / "roles" / role / "tasks").glob("*.yml"):
            todo |= _role_refs(task_file) - seen
    return seen


def role_options(roles) -> dict[str, list[dict]]:
    """variable -> every option spec of it in the roles' meta/argument_specs.yml (all entry points)."""
    options: dict[str, list[dict]] = {}
    for role in roles:
        specs = _yaml(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
        for entry in specs.values():
            for name, spec in (entry.get("options") or {}).items():
                options.setdefault(name, []).append(spec)
    return options


def playbook_vars(playbook: Path) -> dict[str, object]:
    """Variables the playbook reads itself: name -> its `| default(...)` literal (or None)."""
    text = playbook.read_text()
    found = {name: None for name in re.findall(r"\b(qflow_[a-z0-9_]+)\b", text)}
    for name, literal in re.findall(r"\b(qflow_[a-z0-9_]+)\s*\|\s*default\(([^()]*)\)", text):
        try:
            found[name] = ast.literal_eval(literal)
        except (ValueError, SyntaxError):
            pass
    return found


def set_fact_names() -> dict[str, str]:
    """Every variable set with set_fact in the roles and playbooks -> a file that sets it."""
    names = {}
    files = list((ROOT / "roles").glob("*/tasks/**/*.yml")) + list((ROOT / "roles").glob("*/handlers/*.yml"))
    files += list((ROOT / "playbooks").glob("*.yml"))
    for path in files:
        for task in _tasks(_yaml(path) or []):
            for key in ("ansible.builtin.set_fact", "set_fact"):
                if isinstance(task.get(key), dict):
                    for name in task[key]:
                        names.setdefault(name, str(path.relative_to(ROOT)))
    return names


def module_options(module: str) -> set[str]:
    """The option names of an awx.awx module, from its DOCUMENTATION."""
    source = (AWX_MODULES / (module + ".py")).read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DOCUMENTATION":
            doc = yaml.safe_load(node.value.value)
            fragments = set(doc.get("options", {}))
            return fragments | {"controller_host", "controller_username", "controller_password",
                                "controller_oauthtoken", "controller_config_file", "validate_certs",
                                "request_timeout"}
    raise AssertionError("no DOCUMENTATION in %s" % module)


# ------------------------------------------------------------------------------------------------ job templates
def test_every_procedure_has_one_run_template_and_every_playbook_exists():
    runs = [t for t in TEMPLATES if t.get("job_type", "run") == "run"]
    assert sorted(Path(t["playbook"]).name for t in runs) == PROCEDURES
    for t in TEMPLATES:
        assert t["playbook"].startswith("playbooks/") and "-" not in Path(t["playbook"]).stem, t["name"]
        assert (ROOT / t["playbook"]).is_file(), t["name"]
    assert len({t["name"] for t in TEMPLATES}) == len(TEMPLATES)


def test_run_templates_can_launch_in_check_mode_and_the_windows_have_previews():
    for t in TEMPLATES:
        if t.get("job_type", "run") == "run":
            assert t.get("ask_job_type_on_launch", True) is True, t["name"]
    previews = {Path(t["playbook"]).name: t for t in TEMPLATES if t.get("job_type") == "check"}
    assert set(previews) == {"weekly_maintenance.yml", "monthly_maintenance.yml"}
    for t in previews.values():
        assert t["ask_job_type_on_launch"] is False and t["diff_mode"] is True, t["name"]  # a preview stays one


@pytest.mark.parametrize("template", TEMPLATES, ids=[t["name"] for t in TEMPLATES])
def test_survey_is_valid_for_the_controller_and_asks_for_the_target(template):
    assert awx.validate_survey(template["survey"], template["name"]) == []
    target = [q for q in template["survey"] if q["variable"] == "qflow_target"]
    assert target and target[0]["default"] == "qflow_nodes" and target[0]["required"]


@pytest.mark.parametrize("template", TEMPLATES, ids=[t["name"] for t in TEMPLATES])
def test_every_survey_variable_is_accepted_by_the_playbook(template):
    playbook = ROOT / template["playbook"]
    options = role_options(roles_of(playbook))
    own = playbook_vars(playbook)
    for q in template["survey"]:
        var, qtype = q["variable"], q["type"]
        specs = options.get(var)
        if specs:
            for spec in specs:
                spec_type = spec.get("type", "str")
                assert spec_type in SURVEY_TO_SPEC[qtype], "%s: survey %s vs spec %s" % (var, qtype, spec_type)
                if qtype == "multiplechoice" and spec.get("choices"):
                    assert set(q["choices"]) <= set(spec["choices"]), var
                if "default" in q and spec.get("default") is not None:
                    assert q["default"] == spec["default"], "%s: survey default %r, role default %r" % (
                        var, q["default"], spec["default"])
            # the values a survey can send pass the roles' own validation (what validate_argument_spec runs)
            samples = [q[k] for k in ("default", "min", "max") if q.get(k) not in (None, "")]
            samples += q.get("choices", []) if qtype == "multiplechoice" else []
            samples = [s for s in samples if not (qtype == "text" and not isinstance(s, str))] or ["24h"]
            for sample in samples:
                for spec in specs:
                    one = {var: {k: v for k, v in spec.items() if k in ("type", "choices", "elements")}}
                    result = ArgumentSpecValidator(one).validate({var: sample})
                    assert not result.error_messages, (var, sample, result.error_messages)
        else:
            assert var in own, "%s: no role of %s takes it and the playbook does not read it" % (var, playbook.name)
            default = own[var]
            if default is not None:
                expected = {int: {"integer"}, float: {"float"}, str: {"text", "textarea", "multiplechoice"}}
                assert qtype in expected[type(default)], "%s: survey %s, playbook default %r" % (var, qtype, default)
                if "default" in q:
                    assert q["default"] == default, "%s: survey default %r, playbook default %r" % (
                        var, q["default"], default)
            else:
                assert qtype in ("text", "textarea"), var


def test_no_survey_or_credential_variable_is_set_as_a_fact():
    """Survey answers and credential injections are extra vars, which outrank set_fact: a procedure that set one of
    them as a fact would silently keep the launch value (the security breach's fresh token was such a case)."""
    launched = {q["variable"] for t in TEMPLATES for q in t["survey"]}
    for ctype in DEFS["qflow_awx_credential_types"]:
        launched |= set(ctype["injectors"].get("extra_vars", {}))
    facts = set_fact_names()
    clashes = {name: facts[name] for name in launched if name in facts}
    assert not clashes, clashes


def test_launch_vars_are_the_survey_defaults_and_validated_answers():
    template = awx.job_template(DEFS, "Qflow weekly maintenance")
    assert awx.launch_vars(template, {"qflow_target": "qflow-node-1"}) == {
        "qflow_target": "qflow-node-1", "qflow_maint_serial": 1, "qflow_maint_apt_upgrade": "safe",
        "qflow_maint_logs_older_than": "30d", "qflow_maint_cache_older_than": "7d", "qflow_maint_jwt_max_age": "6d"}
    with pytest.raises(ValueError) as err:
        awx.launch_vars(template, {"qflow_maint_serial": 1.5, "qflow_maint_apt_upgrade": "yolo", "qflow_x": 1,
                                   "qflow_target": ""})
    for part in ("qflow_maint_serial: 1.5 is not an integer", "'yolo' is not one of", "qflow_x is not a survey",
                 "qflow_target: '' is shorter than 1"):
        assert part in str(err.value)
    # a question without a default that is not answered passes no variable (the playbook's default applies)
    p0 = awx.job_template(DEFS, "Qflow incident P0")
    assert "qflow_incident_id" not in awx.launch_vars(p0)


# ------------------------------------------------------------------------------------------------ credentials
def test_the_token_and_monitoring_urls_are_injected_as_extra_vars_and_secrets_are_secret():
    api = awx.credential_type(DEFS, "Qflow API")
    fields = {f["id"]: f for f in api["inputs"]["fields"]}
    assert fields["api_token"]["secret"] is True
    assert set(api["inputs"]["required"]) == {"api_token", "prometheus_url", "alertmanager_url"}
    assert set(api["injectors"]) == {"extra_vars"}  # nothing through the environment: it stays on the controller
    token = "tok-{{ not templated }}-%s" % os.getpid()
    cred = awx.credential(DEFS, "Qflow API", api_token=token, prometheus_url="http://p:9090",
                          alertmanager_url="http://a:9093")
    extra, env = awx.injected(cred)
    assert extra == {"qflow_api_token": token, "qflow_prometheus_url": "http://p:9090",
                     "qflow_alertmanager_url": "http://a:9093"}
    assert env == {} and cred.secrets == [token]
    # written as the controller writes a credential's extra vars: !unsafe, so Ansible never templates the token
    assert yaml.load(awx.unsafe_yaml(extra), Loader=awx._Loader)["qflow_api_token"] == token
    assert "!unsafe 'qflow_api_token': !unsafe '%s'" % token in awx.unsafe_yaml(extra)
    # the variables are the ones every procedure reads (the roles' argument specs declare them)
    health = role_options({"health_check"})
    assert {"qflow_api_token", "qflow_prometheus_url", "qflow_alertmanager_url"} <= set(health)

    notify = awx.credential_type(DEFS, "Qflow notify")
    secret = {f["id"] for f in notify["inputs"]["fields"] if f.get("secret")}
    assert secret == {"webhook_url", "smtp_password"} and notify["inputs"]["required"] == ["webhook_url"]
    extra, env = awx.injected(awx.credential(DEFS, "Qflow notify", webhook_url="https://hooks.example/T1/x"))
    # a field that is not set is an empty string: only SMTP settings may be, which the procedures read as "no mail"
    assert extra == {"qflow_notify_webhook_url": "https://hooks.example/T1/x", "qflow_smtp_host": "",
                     "qflow_smtp_port": "25"}
    assert set(env) == {"QFLOW_SMTP_USERNAME", "QFLOW_SMTP_PASSWORD"}
    with pytest.raises(ValueError, match="needs api_token"):
        awx.credential(DEFS, "Qflow API", prometheus_url="x", alertmanager_url="y")
    with pytest.raises(ValueError, match="has no field token"):
        awx.credential(DEFS, "Qflow API", token="x")


def test_project_inventory_source_is_an_inventory_of_the_repository():
    path = ROOT / DEFS["qflow_awx_inventory_source_path"]
    assert path.is_file(), path
    groups = yaml.safe_load(path.read_text())["all"]["children"]
    assert "qflow_nodes" in groups  # the default target of every survey


def test_credentials_hold_no_secret_and_templates_use_them():
    for cred in DEFS["qflow_awx_credentials"]:
        ctype = awx.credential_type(DEFS, cred["credential_type"])
        secret = {f["id"] for f in ctype["inputs"]["fields"] if f.get("secret")}
        for field_id, value in cred["inputs"].items():
            if field_id in secret:
                assert re.fullmatch(r"\{\{ qflow_awx_[a-z_]+ \}\}", value), (cred["name"], field_id)
    names = {c["name"] for c in DEFS["qflow_awx_credentials"]}
    assert set(DEFS["qflow_awx_job_credentials"]) <= names


# ------------------------------------------------------------------------------------------------ workflow
def test_incident_workflow_runs_p1_then_p0_on_failure():
    wf = awx.workflow(DEFS, "Qflow incident path")
    nodes = {n["identifier"]: n for n in wf["nodes"]}
    names = {t["name"] for t in TEMPLATES}
    for node in nodes.values():
        assert node["job_template"] in names
        for edge in ("success_nodes", "failure_nodes", "always_nodes"):
            assert set(node.get(edge, [])) <= set(nodes), (node["identifier"], edge)
    children = {c for n in nodes.values() for e in ("success_nodes", "failure_nodes", "always_nodes")
                for c in n.get(e, [])}
    roots = set(nodes) - children
    assert roots == {"assess"} and nodes["assess"]["job_template"] == "Qflow morning health check"
    path, node = [], "assess"
    while node:
        path.append(nodes[node]["job_template"])
        node = (nodes[node].get("failure_nodes") or [None])[0]
    assert path == ["Qflow morning health check", "Qflow incident P1", "Qflow incident P0"]
    assert awx.validate_survey(wf["survey"], wf["name"]) == []


# ------------------------------------------------------------------------------------------------ schedules
@pytest.mark.parametrize("timezone", ["UTC", "Europe/Berlin", "America/New_York"])
def test_schedules_fire_at_the_runbooks_times(timezone):
    defs = awx.load(qflow_awx_timezone=timezone)
    schedules = {s["job_template"]: s for s in defs["qflow_awx_schedules"]}
    assert set(schedules) == set(RUNBOOK_TIMES)
    names = {t["name"] for t in TEMPLATES}
    for template, (freq, weekday, hour, minute) in RUNBOOK_TIMES.items():
        assert template in names
        rrule = schedules[template]["rrule"]
        assert awx.validate_rrule(rrule) == [], rrule
        assert "TZID=%s:" % timezone in rrule
        # 60 occurrences from a date in the summer time and one in the winter time: the wall-clock time holds
        for start in (datetime.datetime(2026, 3, 1, tzinfo=datetime.timezone.utc),
                      datetime.datetime(2026, 10, 1, tzinfo=datetime.timezone.utc)):
            times = awx.occurrences(rrule, 60, after=start)
            assert len(times) == 60
            for t in times:
                assert str(t.tzinfo) == timezone and (t.hour, t.minute) == (hour, minute), (template, t)
                if weekday is not None:
                    assert t.weekday() == weekday, (template, t)
                if freq == "monthly-first":
                    assert 1 <= t.day <= 7, (template, t)
            steps = {(b - a).days for a, b in zip(times, times[1:])}
            if freq == "daily":
                assert steps <= {0, 1}, (template, steps)  # 0: a 23 h day at a DST change
                assert times[-1].date() - times[0].date() == datetime.timedelta(days=59)
            elif freq == "weekly":
                assert steps <= {6, 7}, (template, steps)
            else:  # once in every month, none skipped
                months = [(t.year, t.month) for t in times]
                assert len(set(months)) == 60 and all(
                    (b[0] * 12 + b[1]) - (a[0] * 12 + a[1]) == 1 for a, b in zip(months, months[1:]))


def test_backup_runs_before_the_windows_on_their_days():
    defs = awx.load(qflow_awx_timezone="Europe/Berlin")
    schedules = {s["job_template"]: s["rrule"] for s in defs["qflow_awx_schedules"]}
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    backups = awx.occurrences(schedules["Qflow nightly backup"], 400, after=start)
    for window in ("Qflow weekly maintenance", "Qflow monthly maintenance"):
        for t in awx.occurrences(schedules[window], 12, after=start):
            before = [b for b in backups if b < t]
            assert before and t - before[-1] <= datetime.timedelta(hours=3), (window, t)


@pytest.mark.parametrize("rrule, error", [
    ("DTSTART;TZID=UTC:20260104T010000 RRULE:FREQ=MONTHLY;INTERVAL=1;BYDAY=1SU", "numeric prefix"),
    ("DTSTART;TZID=UTC:20260104T010000 RRULE:FREQ=DAILY", "INTERVAL required"),
    ("DTSTART:20260104T010000 RRULE:FREQ=DAILY;INTERVAL=1", "naive datetime"),
    ("DTSTART;TZID=Mars/Olympus:20260104T010000 RRULE:FREQ=DAILY;INTERVAL=1", "valid TZID"),
    ("RRULE:FREQ=DAILY;INTERVAL=1", "exactly one DTSTART"),
    ("DTSTART:20260104T010000Z RRULE:FREQ=DAILY;INTERVAL=1;COUNT=1000", "COUNT > 999"),
])
def test_rrule_validation_refuses_what_the_controller_refuses(rrule, error):
    assert any(error in e for e in awx.validate_rrule(rrule)), awx.validate_rrule(rrule)


# ------------------------------------------------------------------------------------------------ configure.yml
def test_configure_playbook_passes_a_syntax_check():
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "awx/configure.yml"], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(AWX_MODULES is None, reason="awx.awx is not installed")
def test_configure_playbook_uses_only_options_the_awx_modules_have():
    play = yaml.safe_load((ROOT / "awx" / "configure.yml").read_text())[0]
    assert play["vars_files"] == ["controller.yml"]
    used = set()
    for task in play["tasks"]:
        for key, args in task.items():
            if key.startswith("awx.awx."):
                module = key.split(".", 2)[2]
                used.add(module)
                unknown = set(args) - module_options(module)
                assert not unknown, (module, unknown)
    assert {"organization", "project", "credential_type", "credential", "inventory", "inventory_source",
            "job_template", "workflow_job_template", "workflow_job_template_node", "schedule",
            "execution_environment"} <= used
    # and the data's keys are ones configure.yml hands on
    handled = {"name", "description", "playbook", "job_type", "ask_job_type_on_launch", "diff_mode",
               "allow_simultaneous", "timeout", "survey", "credentials"}
    for t in TEMPLATES:
        assert set(t) <= handled, set(t) - handled
    assert handled - {"survey"} <= module_options("job_template")


# ------------------------------------------------------------------------------------------------ execution environment
def test_execution_environment_context_is_created(tmp_path):
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert ee["version"] == 3
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    reqs = yaml.safe_load((ROOT / ee["dependencies"]["galaxy"]).read_text())["collections"]
    tarball = "collections/qflow-ops-%s.tar.gz" % version
    assert reqs[0] == {"name": tarball, "type": "file"}
    # the same collection dependencies as collections/requirements.yml
    project_reqs = yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())["collections"]
    assert reqs[1:] == project_reqs
    # ansible-core, ansible-runner and the libraries pinned as in requirements.txt
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert ee["dependencies"]["ansible_core"]["package_pip"] == "ansible-core==" + pins["ansible-core"]
    assert ee["dependencies"]["ansible_runner"]["package_pip"] == "ansible-runner==" + pins["ansible-runner"]
    for lib in ("requests", "kubernetes"):
        assert "%s==%s" % (lib, pins[lib]) in ee["dependencies"]["python"]

    # ansible-builder create, from a copy of the definition with a stand-in for the built tarball
    (tmp_path / "awx").mkdir()
    (tmp_path / "build").mkdir()
    (tmp_path / "execution-environment.yml").write_text((ROOT / "execution-environment.yml").read_text())
    (tmp_path / ee["dependencies"]["galaxy"]).write_text((ROOT / ee["dependencies"]["galaxy"]).read_text())
    (tmp_path / "build" / Path(tarball).name).write_bytes(b"stand-in")
    context = tmp_path / "context"
    proc = subprocess.run([str(BIN / "ansible-builder"), "create", "--file", "execution-environment.yml",
                           "--context", str(context), "--output-filename", "Containerfile"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="%s"' % ee["images"]["base_image"]["name"] in containerfile
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile
    assert "ansible-core==%s ansible-runner==%s" % (pins["ansible-core"], pins["ansible-runner"]) in containerfile
    build = context / "_build"
    assert yaml.safe_load((build / "requirements.yml").read_text())["collections"] == reqs
    assert (build / tarball).read_bytes() == b"stand-in"  # where the galaxy stage (WORKDIR /build) finds it
    assert set((build / "requirements.txt").read_text().split()) == set(ee["dependencies"]["python"])
    bindep = (build / "bindep.txt").read_text()
    assert "openssh-clients [platform:rpm]" in bindep


# ------------------------------------------------------------------------------------------------ replay (no lab)
def test_replay_kwargs_launch_as_the_controller(tmp_path):
    template = awx.job_template(DEFS, "Qflow weekly maintenance (preview)")
    token = "s3cret-token-%d" % os.getpid()
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"
    creds = [awx.credential(DEFS, "Qflow API", api_token=token, prometheus_url="http://p", alertmanager_url="http://a"),
             awx.credential(DEFS, "Qflow notify", webhook_url="http://hooks.example/secret-path"),
             awx.credential(DEFS, "Machine", username="root", ssh_key_data=key)]
    inventory = {"all": {"vars": {"qflow_api_token": "inventory-token", "qflow_validate_certs": False},
                         "children": {"qflow_nodes": {"hosts": {"n1": {"qflow_api_token": "t1", "qflow_api_url": "u"}}}}}}
    inventory = awx.without_vars(inventory, ["qflow_api_token"])
    assert "qflow_api_token" not in yaml.safe_dump(inventory) and "qflow_validate_certs" in yaml.safe_dump(inventory)
    kw = awx.replay_kwargs(template, inventory=inventory, private_data_dir=tmp_path / "pdd", credentials=creds,
                           answers={"qflow_target": "n1"}, report_dir=tmp_path / "reports")
    args = kw["cmdline"].split()
    assert args[:2] == ["--check", "--diff"] and args[args.index("-u") + 1] == "root"
    files = [a[1:] for a in args if a.startswith("@")]
    assert len(files) == 2  # one extra-vars file per credential type with extra vars
    for path in files:
        assert Path(path).parent == tmp_path / "pdd" / "env"
        assert stat.S_IMODE(Path(path).stat().st_mode) == stat.S_IRUSR
    injected = {}
    for path in files:
        injected.update(yaml.load(Path(path).read_text(), Loader=awx._Loader))
    assert injected["qflow_api_token"] == token and injected["qflow_notify_webhook_url"].endswith("secret-path")
    assert kw["extravars"]["qflow_target"] == "n1" and kw["extravars"]["qflow_maint_serial"] == 1
    assert kw["playbook"] == "playbooks/weekly_maintenance.yml" and kw["project_dir"] == str(ROOT)
    assert kw["ssh_key"] == key + "\n" and kw["timeout"] == 3600
    # the secrets are in none of what ansible-runner records (command, env, extravars)
    visible = repr({k: v for k, v in kw.items() if k != "ssh_key"})
    assert token not in visible and "secret-path" not in visible and "abc" not in kw["cmdline"]
    # the collections path the controller builds, with qflow.ops where the execution environment has it
    paths = kw["envvars"]["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)
    assert paths[0] == str(tmp_path / "pdd" / "requirements_collections")
    assert (Path(paths[0]) / "ansible_collections" / "qflow" / "ops" / "galaxy.yml").is_file()
    assert paths[-1] == "/usr/share/ansible/collections"
    assert kw["envvars"]["QFLOW_REPORT_DIR"] == str(tmp_path / "reports")
    run = awx.replay_kwargs(awx.job_template(DEFS, "Qflow weekly maintenance"), inventory=inventory,
                            private_data_dir=tmp_path / "pdd2", job_type="check")
    assert run["cmdline"].split() == ["--check"]
    with pytest.raises(FileNotFoundError):
        awx.replay_kwargs(dict(template, playbook="playbooks/nope.yml"), inventory=inventory,
                          private_data_dir=tmp_path / "pdd3")


def test_replay_refuses_an_invalid_survey_answer_before_launching(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    qflow_nodes:\n      hosts:\n        n1: {}\n")
    with pytest.raises(ValueError, match="qflow_maint_serial: 0 is below the minimum 1"):
        awx.replay(awx.job_template(DEFS, "Qflow weekly maintenance"), inventory=inventory,
                   private_data_dir=tmp_path / "pdd", answers={"qflow_maint_serial": 0})
    assert not (tmp_path / "pdd" / "artifacts").exists()  # nothing was launched


def test_find_secrets_finds_plain_and_json_escaped(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "stdout").write_text("nothing here")
    (tmp_path / "a" / "event.json").write_text('{"x": "tok\\"en"}')
    assert awx.find_secrets(tmp_path, ['tok"en']) == ["%s: secret #0" % (tmp_path / "a" / "event.json")]
    assert awx.find_secrets(tmp_path, ["absent"]) == []
