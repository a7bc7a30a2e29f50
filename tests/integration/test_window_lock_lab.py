"""Two windows on one node: the second stops before changing anything and names the run that holds the node; a holder
that died leaves a lock the next window detects as stale and takes over. The real weekly window, on one lab node."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import qflow_ops
from labtest import SYSTEMD, hostvars, node_pid

pytestmark = pytest.mark.skipif(SYSTEMD, reason="writes the holder's lock file from the controller (processes lab)")
NODE = "qflow-node-1"
LOCK_DIR = Path("/var/lib/qflow-ops/locks")  # the role's default qflow_lock_dir


def lock_path(inventory):
    data_dir = hostvars(inventory, NODE)["qflow_data_dir"]
    return LOCK_DIR / (re.sub(r"[^A-Za-z0-9]+", "-", data_dir).strip("-") + ".json")


def holder_of(proc):
    """A lock held by another live run of this controller: proc stands for its ansible-playbook process."""
    stat = Path("/proc/%d/stat" % proc.pid).read_text()
    now = datetime.now(timezone.utc)
    return {"run_id": "feedfacefeedface", "playbook": "monthly-maintenance", "who": "alice",
            "controller": socket.gethostname(), "pid": proc.pid, "pid_start": int(stat.rsplit(")", 1)[1].split()[19]),
            "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
            "since": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "expires": (now + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_second_window_is_refused_then_takes_over_a_dead_holder(green_lab, tmp_path):
    lock = lock_path(green_lab)
    LOCK_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(LOCK_DIR, 0o700)
    other = subprocess.Popen(["sleep", "600"])
    try:
        lock.write_text(json.dumps(holder_of(other)))
        os.chmod(lock, 0o600)
        before, pid = digest(lock), node_pid(NODE)
        extra = {"qflow_target": NODE}

        refused = qflow_ops.run("weekly-maintenance", green_lab, extravars=extra, tags="logs",
                                report_dir=tmp_path / "r1")
        out = refused.stdout
        assert refused.rc != 0, out[-3000:]
        assert "%s is held by monthly-maintenance (run feedfacefeedface, started by alice on %s" % (
            NODE, socket.gethostname()) in out, out[-3000:]
        assert "nothing was changed" in out
        assert digest(lock) == before, "the holder's lock must stay as it was"
        assert node_pid(NODE) == pid
        # stopped at the lock: nothing changed on the node
        recap = [line for line in out.split("PLAY RECAP")[-1].splitlines() if line.startswith(NODE)]
        assert recap and "changed=0" in recap[0] and "failed=1" in recap[0], out[-3000:]
    finally:
        other.kill()
        other.wait()

    # the holder's ansible-playbook is gone: the next window replaces its lock, runs, and releases the node
    taken = qflow_ops.run("weekly-maintenance", green_lab, extravars=extra, tags="logs", report_dir=tmp_path / "r2",
                            verbosity=1)
    assert taken.rc == 0, taken.stdout[-4000:]
    assert "feedfacefeedface" in taken.stdout and "is gone" in taken.stdout, taken.stdout[-4000:]
    assert not lock.exists(), "the window releases the node at its end"
    assert node_pid(NODE) == pid
