"""Release dirs of the lab's nodes (contract §2.5): create a release, point `current` at it, keep the history.

Layout: <dir>/<version>/release.json {"version", "createdAt", "defects": []}; <dir>/current -> <version> (relative
symlink, replaced atomically: new symlink + rename); <dir>/history.jsonl, one JSON object a line
{"time", "action": "deployed"|"rolled_back"|"verified", "version", "from", "by"}.
"""
import json
import os
import re

from .node.release import DEFECTS, read_current
from .node.util import iso

INITIAL_VERSION = "0.1.0"
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$")
BY = "qflow-lab"


class ReleaseError(Exception):
    pass


def check_version(version):
    if not VERSION_RE.match(version or "") or version in (".", "..", "current") or ".." in version:
        raise ReleaseError("invalid version %r (letters, digits, '.', '_', '+', '-'; e.g. 0.2.0)" % version)


def create(directory, version, defects=()):
    """Write <dir>/<version>/release.json (createdAt kept when it exists, defects replaced); return its path."""
    check_version(version)
    bad = [d for d in defects if d not in DEFECTS]
    if bad:
        raise ReleaseError("unknown defect %s (one of: %s)" % (", ".join(bad), ", ".join(DEFECTS)))
    vdir = os.path.join(directory, version)
    os.makedirs(vdir, exist_ok=True)
    path = os.path.join(vdir, "release.json")
    created = iso()
    try:
        with open(path) as fh:
            created = json.load(fh).get("createdAt") or created
    except (OSError, ValueError, AttributeError):
        pass
    doc = {"version": version, "createdAt": created, "defects": sorted(set(defects))}
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def current_version(directory):
    return read_current(directory).version


def point_current(directory, version):
    """Repoint <dir>/current at <version> atomically (relative symlink + rename)."""
    check_version(version)
    if not os.path.isfile(os.path.join(directory, version, "release.json")):
        raise ReleaseError("no release %s in %s" % (version, directory))
    tmp = os.path.join(directory, ".current.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(version, tmp)
    os.replace(tmp, os.path.join(directory, "current"))


def append_history(directory, action, version, previous, by=BY):
    line = json.dumps({"time": iso(), "action": action, "version": version, "from": previous, "by": by})
    with open(os.path.join(directory, "history.jsonl"), "a") as fh:
        fh.write(line + "\n")


def deploy(directory, version, defects=()):
    """Create the release, append `deployed`, point current at it. Return the previous version (or None)."""
    os.makedirs(directory, exist_ok=True)
    previous = current_version(directory)
    create(directory, version, defects)
    append_history(directory, "deployed", version, previous)
    point_current(directory, version)
    return previous


def ensure_initial(directory, version=INITIAL_VERSION):
    """A release dir without `current` gets <version> (history: deployed + verified). True when created."""
    if os.path.lexists(os.path.join(directory, "current")):
        return False
    deploy(directory, version)
    append_history(directory, "verified", version, None)
    return True
