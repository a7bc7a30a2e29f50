"""AWX / Automation Controller definitions of qflow.ops (awx/controller.yml), checked and replayed without a controller.

    from qflow_ops import awx
    defs = awx.load()                                      # awx/controller.yml, rendered with its own variables
    template = awx.job_template(defs, "Qflow morning health check")
    api = awx.credential(defs, "Qflow API", api_token=token, prometheus_url=..., alertmanager_url=...)
    runner = awx.replay(template, inventory="hosts.yml", credentials=[api], answers={"qflow_target": "qflow-node-1"})
    runner.rc, runner.status

`replay` launches the template's playbook through ansible-runner the way the controller does: the survey's defaults
and answers (validated as the controller validates them) as the job's extra vars; each credential's injected extra
vars in a file of their own, marked `!unsafe`, passed with `-e @file`; its injected environment variables in the
job's environment; a Machine credential as `-u <user>` and an SSH key loaded into ssh-agent; `--check` for a check
job and `--diff` with diff mode; the project's ansible.cfg, and the collections path the controller builds
(requirements_collections, the project's setting, the execution environment's defaults) with qflow.ops on it as the
execution environment would have it.
"""

from __future__ import annotations

import configparser
import copy
import getpass
import os
import re
import stat
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

CHECKOUT_ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = CHECKOUT_ROOT / "awx" / "controller.yml"

SURVEY_TYPES = ("text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect")
# The fields of the controller's built-in Machine credential type that replay understands.
MACHINE = {"name": "Machine", "kind": "ssh",
           "inputs": {"fields": [{"id": "username", "label": "Username", "type": "string"},
                                 {"id": "ssh_key_data", "label": "SSH Private Key", "type": "string",
                                  "format": "ssh_private_key", "secret": True, "multiline": True}]}}


class Unsafe(str):
    """A string the controller renders (an injector template), never Ansible or this module: YAML `!unsafe`."""


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!unsafe", lambda loader, node: Unsafe(loader.construct_scalar(node)))


# ------------------------------------------------------------------------------------------------ definitions
def load(path: str | os.PathLike | None = None, **variables) -> dict:
    """awx/controller.yml (or `path`) with its strings rendered as awx/configure.yml renders them: Jinja with the
    file's own top-level variables, overridden by `variables`. Expressions naming a variable that is neither stay
    as they are (the secrets configure.yml reads from the environment); `!unsafe` strings are left alone."""
    import jinja2

    path = Path(path) if path else DEFINITIONS
    raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    env = jinja2.Environment(undefined=jinja2.DebugUndefined, keep_trailing_newline=True)
    context = {k: v for k, v in raw.items() if not isinstance(v, (dict, list))}
    context.update(variables)

    def render(node):
        if isinstance(node, Unsafe):
            return node
        if isinstance(node, str):
            return env.from_string(node).render(context) if "{{" in node or "{%" in node else node
        if isinstance(node, list):
            return [render(x) for x in node]
        if isinstance(node, dict):
            return {k: render(v) for k, v in node.items()}
        return node

    data = {k: render(v) for k, v in raw.items()}
    data.update(variables)
    return data


def _named(items: list[dict], name: str, what: str) -> dict:
    for item in items:
        if item.get("name") == name:
            return item
    raise KeyError("no %s named %r (known: %s)" % (what, name, ", ".join(i.get("name", "?") for i in items)))


def job_template(defs: dict, name: str) -> dict:
    return _named(defs["qflow_awx_job_templates"], name, "job template")


def credential_type(defs: dict, name: str) -> dict:
    if name == MACHINE["name"]:
        return MACHINE
    return _named(defs["qflow_awx_credential_types"], name, "credential type")


def workflow(defs: dict, name: str) -> dict:
    return _named(defs["qflow_awx_workflows"], name, "workflow")


# ------------------------------------------------------------------------------------------------ credentials
@dataclass
class Credential:
    """A credential of a type: what the controller injects into a job that uses it."""
    type: dict
    inputs: dict = field(default_factory=dict)

    @property
    def secrets(self) -> list[str]:
        """The values of the type's secret fields (what must never appear in a job's output)."""
        secret = {f["id"] for f in self.type.get("inputs", {}).get("fields", []) if f.get("secret")}
        return [str(v) for k, v in self.inputs.items() if k in secret and v not in (None, "")]


def credential(defs: dict, type_name: str, **inputs) -> Credential:
    """A credential of the credential type `type_name` (or the built-in Machine type) with `inputs`; fails like the
    controller on an unknown field or a missing required one."""
    ctype = credential_type(defs, type_name)
    fields = {f["id"]: f for f in ctype.get("inputs", {}).get("fields", [])}
    unknown = sorted(set(inputs) - set(fields))
    if unknown:
        raise ValueError("%s has no field %s (fields: %s)" % (type_name, ", ".join(unknown), ", ".join(fields)))
    missing = [f for f in ctype.get("inputs", {}).get("required", []) if inputs.get(f) in (None, "")]
    if missing:
        raise ValueError("%s needs %s" % (type_name, ", ".join(missing)))
    return Credential(type=ctype, inputs=dict(inputs))


def injected(cred: Credential) -> tuple[dict, dict]:
    """(extra vars, environment variables) the controller injects for `cred`: its injector templates rendered in a
    sandbox with the inputs that are set (an input that is not set renders as an empty string; a boolean field not
    set is false)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    namespace = {}
    for key, value in cred.inputs.items():
        if isinstance(value, bool) or (value is not None and len(str(value))):
            namespace[key] = value
    for f in cred.type.get("inputs", {}).get("fields", []):
        if f.get("type") == "boolean" and f["id"] not in namespace:
            namespace[f["id"]] = False
    sandbox = ImmutableSandboxedEnvironment()

    def render(node):
        if isinstance(node, dict):
            return {render(k): render(v) for k, v in node.items()}
        if isinstance(node, list):
            return [render(x) for x in node]
        return sandbox.from_string(str(node)).render(**namespace)

    injectors = cred.type.get("injectors", {})
    return render(injectors.get("extra_vars", {})), render(injectors.get("env", {}))


def unsafe_yaml(data: dict) -> str:
    """YAML of extra vars with every string marked `!unsafe`, as the controller writes a credential's extra vars:
    Ansible never templates their values."""
    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar("!unsafe", value))
    Dumper.add_representer(Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value)))
    return yaml.dump(data, Dumper=Dumper, default_flow_style=False)


# ------------------------------------------------------------------------------------------------ surveys
def validate_survey(spec: list[dict], name: str = "survey") -> list[str]:
    """The controller's checks of a survey spec (question keys, types, unique variables, defaults within min/max
    and among the choices). Returns the errors; empty when the controller accepts it."""
    errors, seen = [], set()
    if not spec:
        return ["%s: 'spec' doesn't contain any items" % name]
    for idx, q in enumerate(spec):
        where = "%s question %d (%s)" % (name, idx, q.get("variable", "?"))
        for key in ("type", "question_name", "variable", "required"):
            if key not in q:
                errors.append("%s: '%s' missing" % (where, key))
        if q.get("variable") in seen:
            errors.append("%s: variable duplicated" % where)
        seen.add(q.get("variable"))
        qtype = q.get("type")
        if qtype not in SURVEY_TYPES:
            errors.append("%s: type %r is not one of %s" % (where, qtype, ", ".join(SURVEY_TYPES)))
            continue
        if qtype in ("multiplechoice", "multiselect"):
            choices = q.get("choices")
            if isinstance(choices, str):
                choices = choices.split("\n")
            if not isinstance(choices, list) or not choices:
                errors.append("%s: choices must be a non-empty list" % where)
        if "default" in q:
            errors += ["%s: default %s" % (where, e) for e in _answer_errors(q, q["default"])]
    return errors


def _answer_errors(q: dict, value) -> list[str]:
    qtype, errors = q.get("type"), []
    lo, hi = q.get("min"), q.get("max")
    if qtype == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return ["%r is not an integer" % (value,)]
    elif qtype == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return ["%r is not a number" % (value,)]
    elif qtype in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return ["%r is not a string" % (value,)]
        if lo not in (None, "") and len(value) < int(lo):
            errors.append("%r is shorter than %s" % (value, lo))
        if hi not in (None, "") and len(value) > int(hi):
            errors.append("%r is longer than %s" % (value, hi))
        return errors
    elif qtype in ("multiplechoice", "multiselect"):
        choices = q.get("choices") or []
        choices = choices.split("\n") if isinstance(choices, str) else choices
        values = value if qtype == "multiselect" else [value]
        if qtype == "multiselect" and not isinstance(value, list):
            return ["%r is not a list" % (value,)]
        return ["%r is not one of %s" % (v, choices) for v in values if v not in choices]
    if lo not in (None, "") and value < lo:
        errors.append("%r is below the minimum %s" % (value, lo))
    if hi not in (None, "") and value > hi:
        errors.append("%r is above the maximum %s" % (value, hi))
    return errors


def launch_vars(template: dict, answers: dict | None = None) -> dict:
    """The job's extra vars from the template's survey: each question's default unless answered, then the answers;
    validated as the controller validates a launch (ValueError naming every bad or missing answer). A question
    without a default that is not answered passes no variable."""
    answers = dict(answers or {})
    spec = template.get("survey") or []
    known = {q["variable"] for q in spec}
    errors = ["%s is not a survey question of %s" % (k, template["name"]) for k in answers if k not in known]
    result = {}
    for q in spec:
        var = q["variable"]
        if var in answers:
            value = answers[var]
        elif "default" in q:
            value = q["default"]
        else:
            if q.get("required"):
                errors.append("%s: an answer is required" % var)
            continue
        errors += ["%s: %s" % (var, e) for e in _answer_errors(q, value)]
        result[var] = value
    if errors:
        raise ValueError("survey of %s: %s" % (template["name"], "; ".join(errors)))
    return result


# ------------------------------------------------------------------------------------------------ schedules
_RULE = re.compile(r"(?:EX)?RRULE:[^\s]*")


def _tzid(rrule: str) -> str | None:
    match = re.search(r"DTSTART;TZID=([^:]+):", rrule)
    return match.group(1) if match else None


def validate_rrule(rrule: str) -> list[str]:
    """The controller's checks of a schedule's rrule: one DTSTART, with a TZID or in UTC (Z); at least one RRULE;
    INTERVAL in every rule; no SECONDLY, no numeric BYDAY prefix (1SU), not both COUNT and UNTIL, COUNT <= 999; no
    EXDATE/RDATE; a valid time zone; and it parses."""
    from dateutil.rrule import rrulestr

    errors = []
    dtstarts = re.findall(r"DTSTART(?:;[^:]+)?:[0-9]+T[0-9]+Z?", rrule)
    if len(dtstarts) != 1:
        errors.append("exactly one DTSTART is required (found %d)" % len(dtstarts))
    elif re.search(r"DTSTART:[0-9]+T[0-9]+(\s|$)", rrule):
        errors.append("DTSTART cannot be a naive datetime: give ;TZID= or a UTC time (Z)")
    rules = _RULE.findall(rrule)
    if not [r for r in rules if r.startswith("RRULE:")]:
        errors.append("one or more RRULE is required")
    for rule in ("exdate:", "rdate:"):
        if rule in rrule.lower():
            errors.append("%s not allowed" % rule[:-1].upper())
    for rule in rules:
        if "INTERVAL" not in rule.upper():
            errors.append("INTERVAL required in %s" % rule)
        if "SECONDLY" in rule.upper():
            errors.append("SECONDLY is not supported: %s" % rule)
        if re.search(r"BYDAY[:=][-+]?[0-9]+[A-Za-z]{2}", rule):
            errors.append("BYDAY with numeric prefix not supported: %s (use BYSETPOS)" % rule)
        if "COUNT" in rule and "UNTIL" in rule:
            errors.append("RRULE may not contain both COUNT and UNTIL: %s" % rule)
        count = re.search(r"COUNT=([0-9]+)", rule)
        if count and int(count.group(1)) > 999:
            errors.append("COUNT > 999 is unsupported: %s" % rule)
    tzid = _tzid(rrule)
    if tzid:
        try:
            ZoneInfo(tzid)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append("A valid TZID must be provided (e.g., America/New_York), not %r" % tzid)
    if not errors:
        try:
            rrulestr(rrule, forceset=True, tzids=_tzlookup)
        except Exception as exc:  # noqa: BLE001 - the parser's message is the answer
            errors.append("rrule parsing failed validation: %s" % exc)
    return errors


def _tzlookup(name: str):
    return ZoneInfo(name)


def occurrences(rrule: str, count: int = 10, after=None) -> list:
    """The first `count` times the schedule fires (after `after`, an aware datetime, when given), aware datetimes in
    the schedule's time zone."""
    import itertools

    from dateutil.rrule import rrulestr

    rules = rrulestr(rrule, forceset=True, tzids=_tzlookup)
    if after is None:
        return list(itertools.islice(rules, count))
    return list(rules.xafter(after, count=count))


# ------------------------------------------------------------------------------------------------ replay
def without_vars(inventory: dict, names) -> dict:
    """A copy of a YAML inventory (loaded) without the variables `names`, wherever they are set (all.vars, a
    group's vars, a host): for a replay in which they must come from the credentials."""
    names = set(names)
    data = copy.deepcopy(inventory)

    def strip(group):
        if not isinstance(group, dict):
            return
        for key in list((group.get("vars") or {})):
            if key in names:
                del group["vars"][key]
        for host in (group.get("hosts") or {}).values():
            for key in list(host or {}):
                if key in names:
                    del host[key]
        for child in (group.get("children") or {}).values():
            strip(child)

    for group in data.values():
        strip(group)
    return data


def _config_collections_path(project_dir: Path) -> list[str]:
    cfg = project_dir / "ansible.cfg"
    if not cfg.is_file():
        return []
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(cfg)
    except configparser.Error:
        return []
    for key in ("collections_path", "collections_paths"):
        if parser.has_option("defaults", key):
            return [p for p in parser.get("defaults", key).split(os.pathsep) if p]
    return []


def _ee_collections(private_data_dir: Path, project_dir: Path) -> Path:
    """requirements_collections with qflow.ops on it, as the execution environment has it installed (a link to the
    project when the project is the collection)."""
    root = private_data_dir / "requirements_collections"
    if (project_dir / "galaxy.yml").is_file():
        link = root / "ansible_collections" / "qflow" / "ops"
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(project_dir.resolve(), target_is_directory=True)
    return root


def replay_kwargs(template: dict, *, inventory, private_data_dir: str | os.PathLike,
                  credentials=(), answers: dict | None = None, project_dir: str | os.PathLike | None = None,
                  job_type: str | None = None, limit: str | None = None, verbosity: int = 0,
                  envvars: dict | None = None, report_dir: str | os.PathLike | None = None,
                  ident: str | None = None, user: str | None = None) -> dict:
    """The ansible_runner.run() keyword arguments of a launch of `template` as the controller makes it (see the
    module's docstring). `inventory`: a path, or a loaded inventory written to <private_data_dir>/inventory/.
    `job_type`: run or check (default: the template's). `user`: the launching user (extra var awx_user_name, as
    the controller passes it; default: the current user). Credential files go to <private_data_dir>/env (mode 0400),
    never into the artifacts; remove the private data dir afterwards as the controller does."""
    # refused like the controller refuses a launch, before anything is written
    extravars = launch_vars(template, answers)
    project = Path(project_dir).resolve() if project_dir else CHECKOUT_ROOT
    if not (project / template["playbook"]).is_file():
        raise FileNotFoundError("%s: playbook %s does not exist in %s" % (template["name"], template["playbook"], project))
    job_type = job_type or template.get("job_type", "run")
    if job_type not in ("run", "check"):
        raise ValueError("job_type must be run or check, not %r" % job_type)
    pdd = Path(private_data_dir)
    (pdd / "env").mkdir(parents=True, exist_ok=True)
    if isinstance(inventory, dict):
        (pdd / "inventory").mkdir(parents=True, exist_ok=True)
        path = pdd / "inventory" / "hosts.yml"
        path.write_text(yaml.safe_dump(inventory))
        inventory = path

    cmdline, env, ssh_key = [], {}, None
    if job_type == "check":
        cmdline.append("--check")
    if template.get("diff_mode"):
        cmdline.append("--diff")
    for cred in credentials:
        if cred.type.get("name") == MACHINE["name"]:
            if cred.inputs.get("username"):
                cmdline += ["-u", cred.inputs["username"]]
            ssh_key = cred.inputs.get("ssh_key_data") or ssh_key
            continue
        extra, cred_env = injected(cred)
        env.update(cred_env)
        if extra:
            fd, path = tempfile.mkstemp(dir=pdd / "env", prefix="credential-")
            with os.fdopen(fd, "w") as handle:
                handle.write(unsafe_yaml(extra))
            os.chmod(path, stat.S_IRUSR)
            cmdline += ["-e", "@" + path]

    paths = [str(_ee_collections(pdd, project))] + _config_collections_path(project)
    paths += [p for p in ("~/.ansible/collections", "/usr/share/ansible/collections") if p not in paths]
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(paths),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    })
    if (project / "ansible.cfg").is_file():
        env["ANSIBLE_CONFIG"] = str(project / "ansible.cfg")
    if report_dir:
        env["QFLOW_REPORT_DIR"] = str(report_dir)
    env.update(envvars or {})

    extravars.update({"awx_job_template_name": template["name"], "awx_job_launch_type": "manual",
                      "awx_user_name": user or getpass.getuser()})
    kwargs = dict(
        private_data_dir=str(pdd), project_dir=str(project), playbook=template["playbook"],
        inventory=str(inventory), extravars=extravars, envvars=env, cmdline=" ".join(_quote(a) for a in cmdline),
        limit=limit, verbosity=verbosity or None, ident=ident or uuid.uuid4().hex,
        timeout=template.get("timeout") or None,
    )
    if ssh_key:
        kwargs["ssh_key"] = ssh_key if ssh_key.endswith("\n") else ssh_key + "\n"
    return kwargs


def _quote(arg: str) -> str:
    import shlex
    return shlex.quote(arg)


def replay(template: dict, *, quiet: bool = True, **kwargs):
    """Replay `template` through ansible_runner.run (see replay_kwargs for the arguments); returns the Runner."""
    import ansible_runner

    return ansible_runner.run(quiet=quiet, **replay_kwargs(template, **kwargs))


def find_secrets(directory: str | os.PathLike, secrets) -> list[str]:
    """Files under `directory` that contain one of `secrets` (also JSON-escaped), as '<path>: secret #i'."""
    import json

    needles = []
    for i, secret in enumerate(s for s in secrets if s):
        forms = {secret, json.dumps(secret)[1:-1]}
        needles += [(i, form.encode()) for form in forms]
    found = []
    for path in sorted(Path(directory).rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for i, needle in needles:
            if needle in data:
                found.append("%s: secret #%d" % (path, i))
                break
    return found
