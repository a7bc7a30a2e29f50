"""JSON-lines log with size rotation (contract §2.4). Never pass tokens or secrets here."""
import json
import os
import threading

from .util import iso

LEVELS = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40, "fatal": 50}


class JsonLog:
    def __init__(self, log_dir, level="info", max_bytes=100 << 20, max_files=10):
        self.dir = log_dir
        os.makedirs(log_dir, exist_ok=True)
        self.path = os.path.join(log_dir, "qflow.log")
        self.threshold = LEVELS.get(level, 20)
        self.max_bytes = max(4096, int(max_bytes))
        self.max_files = max(1, int(max_files))
        self.lock = threading.Lock()
        self.fh = open(self.path, "a", encoding="utf-8")
        self.size = self.fh.tell()
        self.counts = {}

    def enabled(self, level):
        return LEVELS.get(level, 20) >= self.threshold

    def log(self, level, component, message, **extra):
        if not self.enabled(level):
            return
        rec = {"time": iso(), "level": level, "component": component, "message": message}
        rec.update(extra)
        line = json.dumps(rec, default=str, separators=(", ", ": ")) + "\n"
        with self.lock:
            if self.fh is None:
                return
            self.fh.write(line)
            self.fh.flush()
            self.size += len(line.encode("utf-8"))
            self.counts[level] = self.counts.get(level, 0) + 1
            if self.size >= self.max_bytes:
                self._rotate()

    def _rotate(self):
        self.fh.close()
        last = "%s.%d" % (self.path, self.max_files)
        if os.path.exists(last):
            os.remove(last)
        for i in range(self.max_files - 1, 0, -1):
            src = "%s.%d" % (self.path, i)
            if os.path.exists(src):
                os.replace(src, "%s.%d" % (self.path, i + 1))
        os.replace(self.path, self.path + ".1")
        self.fh = open(self.path, "a", encoding="utf-8")
        self.size = 0

    def debug(self, component, message, **kw):
        self.log("debug", component, message, **kw)

    def info(self, component, message, **kw):
        self.log("info", component, message, **kw)

    def warn(self, component, message, **kw):
        self.log("warn", component, message, **kw)

    def error(self, component, message, **kw):
        self.log("error", component, message, **kw)

    def close(self):
        with self.lock:
            if self.fh is not None:
                self.fh.close()
                self.fh = None
