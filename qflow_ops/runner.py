"""ansible-runner wrapper: one procedure run -> ProcedureResult with the report the playbook wrote."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner

CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def _is_collection(path: Path) -> bool:
    return (path / "playbooks").is_dir() and ((path / "galaxy.yml").is_file() or (path / "MANIFEST.json").is_file())


def _collection_search_path() -> list[Path]:
    """Where ansible-playbook looks for collections: ANSIBLE_COLLECTIONS_PATH (or the older ..._PATHS), else
    ansible's configured default (~/.ansible/collections, /usr/share/ansible/collections), then sys.path (a pip-installed
    `ansible` package carries its collections in site-packages)."""
    configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS")
    if configured:
        roots = configured.split(os.pathsep)
    else:
        try:
            from ansible import constants as C  # noqa: N812 - ansible's own name
            roots = list(C.COLLECTIONS_PATHS)
        except Exception:  # noqa: BLE001 - ansible-core missing or unconfigurable: fall back to its documented default
            roots = ["~/.ansible/collections", "/usr/share/ansible/collections"]
    roots += [p for p in sys.path if p]
    return [Path(os.path.expanduser(r)) for r in roots]


def find_collection() -> tuple[Path, str | None]:
    """The qflow.ops collection to run: this checkout when qflow_ops runs from one (the collections path is then
    <checkout>/collections, linked on first use), else the installed collection found on the collections search
    path. Returns (collection dir, collections path to pass to ansible, or None to keep the caller's)."""
    if _is_collection(CHECKOUT_ROOT):
        return CHECKOUT_ROOT, _checkout_collections_path()
    for root in _collection_search_path():
        for base in (root / "ansible_collections", root):
            candidate = base / "qflow" / "ops"
            if base.name == "ansible_collections" and _is_collection(candidate):
                return candidate.resolve(), str(base.parent)
    raise FileNotFoundError(
        "the qflow.ops collection is not installed where Ansible looks (%s): install it with "
        "`ansible-galaxy collection install qflow-ops-<version>.tar.gz` or set ANSIBLE_COLLECTIONS_PATH"
        % os.pathsep.join(str(p) for p in _collection_search_path()[:4]))


def _procedures(collection: Path) -> tuple[str, ...]:
    """Procedure names (morning-health-check) of the collection's playbooks (morning_health_check.yml; hyphenated
    files are checkout aliases of those)."""
    return tuple(sorted(p.stem.replace("_", "-") for p in (collection / "playbooks").glob("*.yml") if "-" not in p.stem))


def _checkout_collections_path() -> str:
    """A collections path on which this checkout is qflow.ops (the link `make setup` creates)."""
    link_root = CHECKOUT_ROOT / "collections"
    link = link_root / "ansible_collections" / "qflow" / "ops"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("..") / ".." / "..")
    return str(link_root)


try:
    PROCEDURES = _procedures(find_collection()[0])
except FileNotFoundError:
    PROCEDURES = ()


@dataclass
class ProcedureResult:
    procedure: str
    rc: int
    status: str
    report: dict | None
    report_dir: Path | None
    stdout: str
    stats: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.report is not None and self.report.get("result") == "pass"

    def failed_checks(self) -> list[dict]:
        return [c for c in (self.report or {}).get("checks", []) if not c.get("ok")]

    def check(self, node: str, item: str) -> dict | None:
        for c in (self.report or {}).get("checks", []):
            if c.get("node") == node and c.get("item") == item:
                return c
        return None


def _ansible_playbook() -> str:
    """ansible-playbook beside this interpreter (a venv that is not activated), else from PATH."""
    here = Path(sys.executable).parent / "ansible-playbook"
    if here.exists():
        return str(here)
    found = shutil.which("ansible-playbook")
    if not found:
        raise FileNotFoundError("ansible-playbook is not installed beside %s nor on PATH" % sys.executable)
    return found


def run(procedure: str, inventory: str | os.PathLike, extravars: dict | None = None, *,
        limit: str | None = None, tags: str | None = None, check: bool = False, diff: bool = False,
        verbosity: int = 0,
        report_dir: str | os.PathLike | None = None, private_data_dir: str | os.PathLike | None = None,
        envvars: dict | None = None, timeout: int | None = None, quiet: bool = True,
        event_handler=None) -> ProcedureResult:
    """Run the procedure's playbook (qflow.ops.<procedure_with_underscores>) against an inventory; return its report.

    From a checkout the checkout's collection and ansible.cfg are used; otherwise the installed qflow.ops collection
    (see find_collection), with the caller's Ansible configuration. The report is read from
    <report_dir>/<procedure>/latest/report.json written by the playbook; report_dir defaults to reports/ in the
    checkout, or in the current directory for an installed collection.
    Secrets never go through ansible-runner's env or command artifacts: pass tokens in the inventory
    or in `extravars` (written to env/extravars with mode 0600 and removed with the private data dir).
    """
    procedure = procedure.replace("_", "-")
    collection, collections_path = find_collection()
    procedures = _procedures(collection)
    if procedure not in procedures:
        raise ValueError("unknown procedure %r; known: %s" % (procedure, ", ".join(procedures)))
    checkout = collection == CHECKOUT_ROOT
    inventory = Path(inventory).resolve()
    if not inventory.exists():
        raise FileNotFoundError("inventory %s does not exist (for the lab: qflow-lab up)" % inventory)
    report_root = Path(report_dir).resolve() if report_dir else (CHECKOUT_ROOT if checkout else Path.cwd()) / "reports"
    own_pdd = private_data_dir is None
    pdd = Path(tempfile.mkdtemp(prefix="qflow-runner-")) if own_pdd else Path(private_data_dir)
    pdd.mkdir(parents=True, exist_ok=True)
    env = {
        "QFLOW_REPORT_DIR": str(report_root),
        "ANSIBLE_NOCOLOR": "1",
        # ansible-runner starts `ansible-playbook` from PATH: prefer the one beside this interpreter (a venv
        # that is not activated) so the run uses the same ansible-core as the caller.
        "PATH": os.pathsep.join([str(Path(_ansible_playbook()).parent), os.environ.get("PATH", "")]),
    }
    if checkout:
        env["ANSIBLE_CONFIG"] = str(CHECKOUT_ROOT / "ansible.cfg")
    if collections_path:
        env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
            [collections_path] + [p for p in (os.environ.get("ANSIBLE_COLLECTIONS_PATH") or "").split(os.pathsep)
                                  if p and p != collections_path])
    env.update(envvars or {})
    cmdline = []
    if check:
        cmdline.append("--check")
    if diff:
        cmdline.append("--diff")
    if tags:
        cmdline += ["--tags", tags]
    latest = report_root / procedure / "latest"
    before = os.path.realpath(latest) if latest.exists() else None
    playbook = collection / "playbooks" / (procedure.replace("-", "_") + ".yml")
    try:
        r = ansible_runner.run(
            private_data_dir=str(pdd), playbook=str(playbook),
            inventory=str(inventory), extravars=extravars or {}, envvars=env, limit=limit,
            cmdline=" ".join(cmdline) or None, verbosity=verbosity or None, quiet=quiet,
            ident=uuid.uuid4().hex, rotate_artifacts=5, timeout=timeout, event_handler=event_handler,
            project_dir=str(CHECKOUT_ROOT if checkout else Path.cwd()),
        )
        stdout = r.stdout.read() if r.stdout else ""
        report, rdir = None, None
        if latest.exists() and os.path.realpath(latest) != before:
            rdir = Path(os.path.realpath(latest))
            report = json.loads((rdir / "report.json").read_text())
        return ProcedureResult(procedure=procedure, rc=r.rc, status=r.status, report=report,
                               report_dir=rdir, stdout=stdout, stats=r.stats or {})
    finally:
        if own_pdd:
            shutil.rmtree(pdd, ignore_errors=True)
