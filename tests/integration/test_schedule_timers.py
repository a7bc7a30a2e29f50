"""Schedules without a controller, for real: the role qflow.ops.schedule installs the runbook's timers in a node
container of the lab's systemd profile (systemd as PID 1), the container acting as its own controller.

The container gets what a controller needs, the least fragile way on this machine: it has no route to PyPI (only a
TLS-intercepting proxy it does not trust), but it has Debian's /usr/bin/python3 3.11, the same CPython minor as
.venv. So the installed files of ansible-core and its dependency closure (read from .venv's package metadata, about
40 MB) and the collection's content are copied in (`docker cp` of a tar stream) and run by /usr/bin/python3 with
PYTHONPATH and ANSIBLE_COLLECTIONS_PATH - set through the role's qflow_schedule_env, as an operator with a
non-packaged Ansible would. The role itself is applied from this machine over SSH, like any controller setup.

Then: `systemctl list-timers` shows the runbook's times (in qflow_schedule_timezone); the weekly window waits for
the maintenance lock held by another process, gives up with status 75 and the failure notification reaches the lab's
receiver naming the lock; `systemctl start qflow-ops-morning-health-check.service` runs the procedure against the node
itself and writes its report under the role's report dir. Everything is removed from the container afterwards."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import urllib.request
from importlib.metadata import distribution
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

import labtest
from labtest import ROOT, lab_url, run_cmd, wait_until

pytestmark = [
    pytest.mark.systemd,
    pytest.mark.skipif(not labtest.SYSTEMD, reason="needs the lab's systemd profile (QFLOW_LAB_PROFILE=systemd): the"
                       " timers run inside a node container with systemd as PID 1"),
]

NODE = "qflow-node-1"
OPT = "/opt/qflow-ops"
INVENTORY = "/etc/qflow-ops/hosts.yml"
# not the role's default /var/lib/qflow-ops: on a lab node that dir holds the nodes' window locks (docs/locking.md)
WORKDIR = "/var/lib/qflow-ops-schedule-test"
REPORTS = WORKDIR + "/reports"
TZ = "Europe/Madrid"
HOLDER_PID = "/run/qflow-ops/test-holder.pid"
NOTIFY = "qflow-ops-notify-failure@qflow-ops-%s.service.service"
PLAY = """
- name: Install the schedule on the controller
  hosts: %s
  gather_facts: false
  tasks:
    - name: Schedule
      ansible.builtin.include_role:
        name: qflow.ops.schedule
""" % NODE
# procedure -> (weekday or None, hour, minute, days of month or None): the runbook's times
RUNBOOK = {
    "nightly-backup": (None, 0, 30, None),
    "morning-health-check": (None, 9, 0, None),
    "performance-review": (None, 14, 0, None),
    "log-review": (None, 17, 0, None),
    "weekly-maintenance": ("Sun", 2, 0, None),
    "monthly-maintenance": ("Sun", 1, 0, range(1, 8)),
}
COLLECTION_CONTENT = ("galaxy.yml", "meta", "plugins", "roles", "playbooks")


def docker(*args, input=None, timeout=120, check=True):
    proc = subprocess.run(["docker", *args], input=input, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("docker %s failed (%s): %s" % (" ".join(args[:4]), proc.returncode,
                                                              proc.stderr.decode(errors="replace")))
    return proc


def sh(script, *, env=None, timeout=120, check=True):
    """Run a shell script in the node container; return its stdout (text)."""
    args = ["exec"] + [a for k, v in (env or {}).items() for a in ("-e", "%s=%s" % (k, v))] + [NODE, "sh", "-c", script]
    proc = docker(*args, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("in %s: %s\nexit %s: %s%s" % (NODE, script, proc.returncode,
                                                             proc.stdout.decode(errors="replace"),
                                                             proc.stderr.decode(errors="replace")))
    return proc.stdout.decode(errors="replace")


def ansible_core_files():
    """(path, arcname) of every installed file of ansible-core and of its dependency closure."""
    seen, todo, files = set(), ["ansible-core"], []
    while todo:
        dist = distribution(todo.pop())
        name = dist.metadata["Name"].lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for req in map(Requirement, dist.requires or []):
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
        for f in dist.files or []:
            if ".." in f.parts or "__pycache__" in f.parts:
                continue  # console scripts (bin/), byte code
            files.append((Path(dist.locate_file(f)), "site-packages/" + f.as_posix()))
    assert {"ansible-core", "jinja2", "pyyaml", "cryptography"} <= seen, seen
    return files


def collection_files():
    for top in COLLECTION_CONTENT:
        base = ROOT / top
        for path in ([base] if base.is_file() else sorted(base.rglob("*"))):
            if path.is_file() and "__pycache__" not in path.parts:
                yield path, "collections/ansible_collections/qflow/ops/" + path.relative_to(ROOT).as_posix()


def tar_stream(files, extra=()):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, arcname in files:
            tar.add(str(path), arcname=arcname, recursive=False)
        for arcname, text, mode in extra:
            data = text.encode()
            info = tarfile.TarInfo(arcname)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def node_inventory(lab_inventory):
    """The node itself, reached with connection local, with its own vars (token included) and the lab's."""
    data = yaml.safe_load(Path(lab_inventory).read_text())
    host = dict(labtest.lab_hosts(data)[NODE])
    for key in ("ansible_host", "ansible_user", "ansible_ssh_private_key_file", "ansible_ssh_common_args"):
        host.pop(key, None)
    host.update(ansible_connection="local", ansible_python_interpreter="/usr/bin/python3")
    return {"all": {"vars": data["all"]["vars"], "children": {"qflow_nodes": {"hosts": {NODE: host}}}}}


def apply_role(lab_inventory, tmp_path, variables):
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    proc = run_cmd([str(labtest.BIN / "ansible-playbook"), "-i", str(lab_inventory), str(tmp_path / "play.yml"),
                    "-e", "@%s" % (tmp_path / "vars.json")], timeout=600,
                   env={"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    m = re.search(r"%s\s+: ok=\d+\s+changed=(\d+)" % NODE, proc.stdout)
    assert m, proc.stdout[-3000:]
    return int(m.group(1)), proc.stdout


def receiver_messages(title):
    """The Slack-compatible messages the lab's receiver got with this attachment title: [{text, fields}]."""
    with urllib.request.urlopen(lab_url("receiver") + "/messages?path=/hooks/qflow", timeout=10) as resp:
        messages = json.load(resp)
    found = []
    for m in messages:
        body = m.get("body") if isinstance(m.get("body"), dict) else {}
        for att in body.get("attachments") or []:
            if att.get("title") == title:
                found.append({"text": body.get("text", ""),
                              "fields": {f["title"]: f["value"] for f in att.get("fields", [])}})
    return found


def notified(unit):
    """Wait until the notification unit started by OnFailure= has run; it must have succeeded."""
    def done():
        state = unit_state(unit)
        ran = state.get("ExecMainExitTimestampMonotonic", "0") not in ("", "0")
        return state if ran and state.get("ActiveState") in ("inactive", "failed") else None
    state = wait_until(done, timeout=240, interval=2, what=unit)
    assert state["Result"] == "success", (state, sh("journalctl -u %s --no-pager -n 80 -o cat" % unit, check=False))


def lock_held():
    return docker("exec", NODE, "sh", "-c", "test -s %s && ! flock -n /run/qflow-ops/maintenance.lock true"
                  % HOLDER_PID, check=False).returncode == 0


def unit_state(unit):
    out = sh("systemctl show %s --property=Result --property=ExecMainStatus --property=ActiveState"
             " --property=ExecMainExitTimestampMonotonic" % unit)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def cleanup():
    """Remove what the test installs in the container: timers stopped and disabled, units, files, the lock holder."""
    sh("kill $(cat %s 2>/dev/null) 2>/dev/null; "
       "systemctl disable --now $(cd /etc/systemd/system && ls qflow-ops-*.timer 2>/dev/null) >/dev/null 2>&1; "
       "rm -f /etc/systemd/system/qflow-ops-*; systemctl daemon-reload; systemctl reset-failed 'qflow-ops-*'; "
       "rm -rf %s /etc/qflow-ops %s /run/qflow-ops" % (HOLDER_PID, OPT, WORKDIR), check=False)


@pytest.fixture
def controller(lab_inventory):
    """The node container with ansible-core and the collection under /opt/qflow-ops and its own inventory;
    everything the test installs is removed afterwards."""
    lab_inventory = Path(lab_inventory)
    cleanup()  # an earlier run kept with QFLOW_TEST_KEEP_SCHEDULE
    t0 = time.monotonic()
    launcher = ("#!/usr/bin/python3\n# ansible-playbook of .venv's ansible-core, on the container's Python "
                "(PYTHONPATH=%s/site-packages)\nimport sys\nfrom ansible.cli.playbook import main\n"
                "sys.exit(main())\n" % OPT)
    sh("mkdir -p %s /etc/qflow-ops" % OPT)
    docker("cp", "-", "%s:%s" % (NODE, OPT), timeout=300,
           input=tar_stream(list(ansible_core_files()) + list(collection_files()),
                            extra=[("bin/ansible-playbook", launcher, 0o755)]))
    docker("exec", "-i", NODE, "sh", "-c", "umask 077 && cat > %s" % INVENTORY,
           input=yaml.safe_dump(node_inventory(lab_inventory)).encode())
    # the copied Ansible works with the container's Python
    version = sh("PYTHONPATH=%s/site-packages %s/bin/ansible-playbook --version" % (OPT, OPT))
    assert "python version = 3.11" in version and "/usr/bin/python3" in version, version
    print("controller prepared in %.1f s" % (time.monotonic() - t0))
    yield lab_inventory
    if not os.environ.get("QFLOW_TEST_KEEP_SCHEDULE"):  # debugging: leave the units and files in the container
        cleanup()


def test_timers_list_lock_and_a_procedure_run(controller, tmp_path):
    defaults = yaml.safe_load((ROOT / "roles" / "schedule" / "defaults" / "main.yml").read_text())
    jobs = defaults["qflow_schedule_jobs"]
    for job in jobs:
        if job.get("lock"):
            # a maintenance window that did start would only list its tasks: never a window on the shared lab
            job["extra_args"] = ["--list-tasks"]
    variables = {
        "qflow_schedule_jobs": jobs,
        "qflow_schedule_inventory": INVENTORY,
        "qflow_schedule_ansible_playbook": OPT + "/bin/ansible-playbook",
        "qflow_schedule_env": {"PYTHONPATH": OPT + "/site-packages",
                               "ANSIBLE_COLLECTIONS_PATH": OPT + "/collections"},
        "qflow_schedule_timezone": TZ,
        "qflow_schedule_lock_wait": 3,
        "qflow_schedule_working_dir": WORKDIR,
        "qflow_schedule_report_dir": REPORTS,
    }

    # the role, applied twice: installs and starts, then changes nothing
    changed, _ = apply_role(controller, tmp_path, variables)
    assert changed > 0
    changed, out = apply_role(controller, tmp_path, variables)
    assert changed == 0, out[-4000:]

    # systemctl list-timers: every runbook job, next elapse at the runbook's time in the zone
    listing = sh("systemctl list-timers --all --no-pager 'qflow-ops-*'", env={"TZ": TZ})
    rows = {}
    for m in re.finditer(r"^(\w{3}) \d{4}-\d\d-(\d\d) (\d\d):(\d\d):(\d\d) (\S+) .*?(qflow-ops-[a-z-]+)\.timer +"
                         r"(qflow-ops-[a-z-]+\.service)", listing, re.M):
        rows[m.group(7)[len("qflow-ops-"):]] = (m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)),
                                                 int(m.group(5)), m.group(6), m.group(8))
    assert set(rows) == set(RUNBOOK), listing
    for procedure, (weekday, hour, minute, days) in RUNBOOK.items():
        day_name, day, h, mi, s, zone, service = rows[procedure]
        assert (h, mi, s) == (hour, minute, 0) and zone in ("CET", "CEST"), (procedure, listing)
        assert service == "qflow-ops-%s.service" % procedure
        if weekday:
            assert day_name == weekday, (procedure, listing)
        if days:
            assert day in days, (procedure, listing)
    for procedure in RUNBOOK:
        assert sh("systemctl is-enabled qflow-ops-%s.timer" % procedure).strip() == "enabled"

    # the maintenance lock: held by another process, the weekly window waits lock_wait (3 s) and gives up with 75
    sh("mkdir -p /run/qflow-ops")
    docker("exec", "-d", NODE, "/usr/bin/python3", "-c",
           "import fcntl, os, time\nf = open('/run/qflow-ops/maintenance.lock', 'a')\nfcntl.flock(f, fcntl.LOCK_EX)\n"
           "open('%s', 'w').write(str(os.getpid()))\ntime.sleep(300)\n" % HOLDER_PID)
    wait_until(lock_held, timeout=30, interval=0.5, what="the lock holder")
    t0 = time.monotonic()
    sh("systemctl start qflow-ops-weekly-maintenance.service", check=False, timeout=120)
    waited = time.monotonic() - t0
    state = unit_state("qflow-ops-weekly-maintenance.service")
    assert (state["Result"], state["ExecMainStatus"]) == ("exit-code", "75"), state
    assert 2.5 <= waited < 60, waited
    sh("kill $(cat %s) && rm -f %s" % (HOLDER_PID, HOLDER_PID))
    # ...and OnFailure= posted why, through qflow.ops.notify, to the webhook of the inventory (the lab's receiver)
    title = "Scheduled weekly-maintenance failed on %s" % NODE
    notified(NOTIFY % "weekly-maintenance")
    sent = receiver_messages(title)
    assert sent, sh("journalctl -u %s --no-pager -n 80 -o cat" % (NOTIFY % "weekly-maintenance"), check=False)
    assert "lock" in sent[-1]["text"] and "nothing ran" in sent[-1]["text"], sent[-1]
    fields = sent[-1]["fields"]
    assert fields["Exit status"] == "75" and fields["Unit"] == "qflow-ops-weekly-maintenance.service", fields

    # a timer's service runs its procedure against the node and writes the report under the role's report dir
    before = len(receiver_messages("Scheduled morning-health-check failed on %s" % NODE))
    started = time.time()
    sh("systemctl start qflow-ops-morning-health-check.service", check=False, timeout=600)
    state = unit_state("qflow-ops-morning-health-check.service")
    journal = sh("journalctl -u qflow-ops-morning-health-check.service --no-pager -n 60 -o cat", check=False)
    report = json.loads(sh("cat %s/morning-health-check/latest/report.json" % REPORTS))
    mtime = float(sh("stat -c %%Y %s/morning-health-check/latest/report.json" % REPORTS))
    assert mtime >= started - 2, "the report is not from this run"
    assert {c["node"] for c in report["checks"]} == {NODE}, report["checks"]
    assert report["summary"]["items"] >= 5, report["summary"]
    assert "PLAY RECAP" in journal, journal
    if report["result"] == "pass":
        assert state["Result"] == "success", (state, journal)
    else:  # a failed check fails the unit, and the notification names the failed items
        assert state["Result"] == "exit-code", (state, journal)
        notified(NOTIFY % "morning-health-check")
        sent = receiver_messages("Scheduled morning-health-check failed on %s" % NODE)[before:]
        assert sent, sh("journalctl -u %s --no-pager -n 80 -o cat" % (NOTIFY % "morning-health-check"), check=False)
        failed = [c["item"] for c in report["checks"] if not c["ok"]]
        assert all(item in sent[-1]["text"] for item in failed), (failed, sent[-1])
    print("morning-health-check: %s, %s of %s items passed" % (state["Result"], report["summary"]["passed"],
                                                               report["summary"]["items"]), file=sys.stderr)
