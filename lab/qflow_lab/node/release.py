"""Releases (contract §2.5, extension): the node's version is <QFLOW_RELEASE_DIR>/current/release.json.

Layout: <dir>/<version>/release.json {"version", "createdAt", "defects": []}; <dir>/current -> <version>
(relative symlink); <dir>/history.jsonl one JSON object a line {"time", "action", "version", "from", "by"}.
Lab-only defects: "crash" (the node refuses to start, exit 1), "errors" (every execution fails).
"""
import json
import os

DEFAULT_DIR = "/opt/qflow/releases"
DEFECTS = ("crash", "errors")


class Release:
    def __init__(self, directory, version=None, defects=(), error=None):
        self.dir = directory
        self.version = version
        self.defects = tuple(defects)
        self.error = error


def read_current(directory):
    """The current release of `directory`; version None when there is no dir or no `current`."""
    if not directory or not os.path.lexists(os.path.join(directory, "current")):
        return Release(directory)
    path = os.path.join(directory, "current", "release.json")
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        version = doc.get("version")
        if not isinstance(version, str) or not version:
            raise ValueError("no version")
        defects = [d for d in doc.get("defects") or [] if d in DEFECTS]
    except (OSError, ValueError, AttributeError) as exc:
        return Release(directory, error="%s: %s" % (path, exc.__class__.__name__))
    return Release(directory, version, defects)
