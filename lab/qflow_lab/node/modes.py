"""Operating modes emergency, lockdown, isolation (contract §3.4, extension).

State file (QFLOW_MODES_FILE, default qflow-modes.json next to the env file), JSON, written atomically, mode 0640:
{"modes": {"emergency": {"enabled": bool, "reason": str|null, "since": iso|null, "by": identity|null}, ...}}.
The node reads it at start and polls it (so `qflow-lab heal` and a restore of the file take effect).
"""
import json
import os
import threading

from .util import iso

MODES = ("emergency", "lockdown", "isolation")


def disabled_entry():
    return {"enabled": False, "reason": None, "since": None, "by": None}


def all_disabled():
    return {"modes": {m: disabled_entry() for m in MODES}}


def write_modes_file(path, doc):
    """Atomic write (temp file + rename in the same dir), mode 0640."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def parse_modes(doc):
    """{mode: entry} from a parsed modes file; unknown modes and malformed entries are ignored (disabled)."""
    out = {m: disabled_entry() for m in MODES}
    modes = doc.get("modes") if isinstance(doc, dict) else None
    if not isinstance(modes, dict):
        raise ValueError("no 'modes' object")
    for m in MODES:
        e = modes.get(m)
        if isinstance(e, dict) and isinstance(e.get("enabled"), bool):
            out[m] = {"enabled": e["enabled"],
                      "reason": e.get("reason") if isinstance(e.get("reason"), str) else None,
                      "since": e.get("since") if isinstance(e.get("since"), str) else None,
                      "by": e.get("by") if isinstance(e.get("by"), str) else None}
    return out


class ModeError(Exception):
    """The modes file could not be written."""


class Modes:
    def __init__(self, node, path):
        self.node = node
        self.path = path
        self.lock = threading.Lock()
        self.state = {m: disabled_entry() for m in MODES}
        self._key = None

    def enabled(self, mode):
        return self.state[mode]["enabled"]

    def active(self):
        return [m for m in MODES if self.state[m]["enabled"]]

    def view(self):
        with self.lock:
            return {"modes": {m: dict(self.state[m]) for m in MODES}}

    def _log_change(self, mode, entry, source):
        log = self.node.log
        if entry["enabled"]:
            log.warn("system", "Operating mode %s enabled by %s: %s" % (mode, entry["by"] or "unknown",
                                                                       entry["reason"] or "no reason given"),
                     mode=mode, enabled=True, reason=entry["reason"], by=entry["by"], source=source)
        else:
            log.info("system", "Operating mode %s disabled by %s" % (mode, entry["by"] or "unknown"),
                     mode=mode, enabled=False, reason=entry["reason"], by=entry["by"], source=source)

    def poll_once(self):
        """Re-read the file when it changed (mtime/size). Missing file = every mode disabled."""
        if not self.path:
            return
        try:
            st = os.stat(self.path)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            key = None
        except OSError:
            return
        with self.lock:
            if key == self._key and key is not None:
                return
            if key is None:
                new = {m: disabled_entry() for m in MODES}
            else:
                try:
                    with open(self.path, encoding="utf-8") as fh:
                        new = parse_modes(json.load(fh))
                except (OSError, ValueError) as exc:
                    if self._key != ("bad",) + key:
                        self.node.log.error("system", "Modes file %s is unreadable (%s); keeping the current modes"
                                            % (self.path, exc.__class__.__name__), file=self.path)
                    self._key = ("bad",) + key
                    return
            self._key = key
            changed = [m for m in MODES if new[m]["enabled"] != self.state[m]["enabled"]]
            self.state = new
        for m in changed:
            self._log_change(m, new[m], "file")

    def set(self, mode, enabled, reason, by):
        """Return (entry, changed). Persist first; raise ModeError when the file cannot be written."""
        with self.lock:
            cur = self.state[mode]
            if cur["enabled"] == enabled:
                return dict(cur), False
            new_state = {m: dict(self.state[m]) for m in MODES}
            new_state[mode] = {"enabled": enabled, "reason": reason, "since": iso(), "by": by}
            if self.path:
                try:
                    write_modes_file(self.path, {"modes": new_state})
                    st = os.stat(self.path)
                    self._key = (st.st_mtime_ns, st.st_size, st.st_ino)
                except OSError as exc:
                    raise ModeError("cannot write the modes file %s: %s" % (self.path, exc.strerror or exc))
            self.state = new_state
            entry = dict(new_state[mode])
        self._log_change(mode, entry, "api")
        return entry, True
