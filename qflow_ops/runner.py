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

COLLECTION_ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK_DIR = COLLECTION_ROOT / "playbooks"
PROCEDURES = tuple(sorted(p.stem for p in PLAYBOOK_DIR.glob("*.yml")))


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


def _collections_path() -> str:
    """A collections path on which this checkout is qflow.ops (the link `make setup` creates)."""
    link_root = COLLECTION_ROOT / ".collections"
    link = link_root / "ansible_collections" / "qflow" / "ops"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("..") / ".." / "..")
    return str(link_root)


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
    """Run playbooks/<procedure>.yml against an inventory and return its report.

    The report is read from <report_dir>/<procedure>/latest/report.json written by the playbook.
    Secrets never go through ansible-runner's env or command artifacts: pass tokens in the inventory
    or in `extravars` (written to env/extravars with mode 0600 and removed with the private data dir).
    """
    if procedure not in PROCEDURES:
        raise ValueError("unknown procedure %r; known: %s" % (procedure, ", ".join(PROCEDURES)))
    inventory = Path(inventory).resolve()
    if not inventory.exists():
        raise FileNotFoundError("inventory %s does not exist (for the lab: qflow-lab up)" % inventory)
    report_root = Path(report_dir).resolve() if report_dir else COLLECTION_ROOT / "reports"
    own_pdd = private_data_dir is None
    pdd = Path(tempfile.mkdtemp(prefix="qflow-runner-")) if own_pdd else Path(private_data_dir)
    pdd.mkdir(parents=True, exist_ok=True)
    env = {
        "ANSIBLE_CONFIG": str(COLLECTION_ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": _collections_path(),
        "QFLOW_REPORT_DIR": str(report_root),
        "ANSIBLE_NOCOLOR": "1",
        # ansible-runner starts `ansible-playbook` from PATH: prefer the one beside this interpreter (a venv
        # that is not activated) so the run uses the same ansible-core as the caller.
        "PATH": os.pathsep.join([str(Path(_ansible_playbook()).parent), os.environ.get("PATH", "")]),
    }
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
    try:
        r = ansible_runner.run(
            private_data_dir=str(pdd), playbook=str(PLAYBOOK_DIR / (procedure + ".yml")),
            inventory=str(inventory), extravars=extravars or {}, envvars=env, limit=limit,
            cmdline=" ".join(cmdline) or None, verbosity=verbosity or None, quiet=quiet,
            ident=uuid.uuid4().hex, rotate_artifacts=5, timeout=timeout, event_handler=event_handler,
            project_dir=str(COLLECTION_ROOT),
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
