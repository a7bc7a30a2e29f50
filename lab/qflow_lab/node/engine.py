"""Execution engine, storage cache, lab faults and the steady background workload."""
import json
import os
import random
import threading
import time

from . import flows as flowlib
from .util import iso, new_id

ERROR_TEMPLATES = (
    ("execution_error", "Step {step} failed: upstream timeout after {ms} ms"),
    ("network_error", "Step {step} failed: module call qindex.put returned HTTP 503"),
    ("node_failure", "Node selection failed for execution {eid}: no eligible executor (0 of {n} nodes healthy)"),
    ("resource_exhausted", "Execution {eid} exceeded resource limit: memory {mb} MB > {lim} MB"),
)
WARN_TEMPLATES = (
    "Step {step} retry {n}/3 after transient error: connection reset by peer",
    "Storage cache eviction: {n} entries evicted (pressure {p}%)",
    "Execution {eid} queue wait {ms} ms above target 250 ms",
)
VALIDATION_LAYERS = ("qlock", "qonsent", "qindex", "qerberos")
FAULT_KINDS = ("not_ready", "slow", "errors", "validation", "cpu", "memory", "alert", "cache", "hang", "garbage")

WORKLOAD_OWNER = "squid:lab:workload"


def builtin_flows():
    def flow(fid, name, category, steps):
        return {
            "id": fid, "name": name, "version": "1.0.0", "owner": WORKLOAD_OWNER,
            "description": "Built-in lab workload flow",
            "steps": steps,
            "metadata": {"tags": ["lab", "workload"], "category": category, "visibility": "public",
                         "requiredPermissions": ["flow:execute"]},
        }
    return [
        flow("lab-heartbeat", "Lab heartbeat", "monitoring", [
            {"id": "step-1", "type": "task", "action": "emit-heartbeat", "onSuccess": "step-2"},
            {"id": "step-2", "type": "module-call", "action": "qindex.put"},
        ]),
        flow("lab-ingest", "Lab ingest", "data", [
            {"id": "step-1", "type": "event-trigger", "action": "receive-batch", "onSuccess": "step-2"},
            {"id": "step-2", "type": "task", "action": "transform", "onSuccess": "step-3"},
            {"id": "step-3", "type": "module-call", "action": "qindex.put"},
        ]),
        flow("lab-report", "Lab report", "reporting", [
            {"id": "step-1", "type": "condition", "action": "check-window", "onSuccess": "step-2"},
            {"id": "step-2", "type": "parallel", "action": "aggregate", "onSuccess": "step-3"},
            {"id": "step-3", "type": "task", "action": "publish"},
        ]),
    ]


class EngineError(Exception):
    pass


class ModeRefused(EngineError):
    """A new execution refused because of an operating mode (emergency or isolation)."""

    def __init__(self, mode):
        super().__init__("%s mode is enabled: new executions are refused" % mode.capitalize())
        self.mode = mode


def refusing_mode(node):
    """The operating mode that refuses new executions, or None (contract §3.4)."""
    for mode in ("isolation", "emergency"):
        if node.modes.enabled(mode):
            return mode
    return None


MAX_STEPS = 20
SLEEP_MAX_SECONDS = 600.0


def sleep_seconds(step):
    """Lab step {"type": "task", "action": "sleep", "params": {"seconds": N}}: N clamped to [0, 600]; None otherwise."""
    if step.get("type") != "task" or step.get("action") != "sleep":
        return None
    n = (step.get("params") or {}).get("seconds", 0)
    if isinstance(n, bool) or not isinstance(n, (int, float)):
        return 0.0
    return max(0.0, min(SLEEP_MAX_SECONDS, float(n)))


class Faults:
    """Polls QFLOW_LAB_FAULTS_FILE ({"faults": [...]}) and applies cpu/memory side effects."""

    def __init__(self, node, path):
        self.node = node
        self.path = path
        self.active = frozenset()
        self.changed = threading.Event()
        self._burner = None
        self._burn_stop = threading.Event()
        self._ballast = None
        self._mtime = None

    def __contains__(self, kind):
        return kind in self.active

    def poll_once(self):
        faults = frozenset()
        if self.path:
            try:
                st = os.stat(self.path)
                key = (st.st_mtime_ns, st.st_size)
                if key == self._mtime:
                    return
                with open(self.path, encoding="utf-8") as fh:
                    doc = json.load(fh)
                faults = frozenset(f for f in doc.get("faults", []) if f in FAULT_KINDS)
                self._mtime = key
            except FileNotFoundError:
                self._mtime = None
            except (OSError, ValueError, AttributeError):
                return  # half-written file: keep the current set
        self.set(faults)

    def set(self, faults):
        faults = frozenset(faults)
        if faults == self.active:
            return
        added, removed = faults - self.active, self.active - faults
        self.active = faults
        self.changed.set()
        log = self.node.log
        for f in sorted(added):
            log.warn("system", "Lab fault injected: %s" % f, fault=f)
        for f in sorted(removed):
            log.info("system", "Lab fault cleared: %s" % f, fault=f)
        self._apply()

    def _apply(self):
        if "cpu" in self.active and self._burner is None:
            self._burn_stop.clear()
            self._burner = threading.Thread(target=self._burn, name="lab-cpu-burner", daemon=True)
            self._burner.start()
        elif "cpu" not in self.active and self._burner is not None:
            self._burn_stop.set()
            self._burner = None
        if "memory" in self.active and self._ballast is None:
            from .metrics import resident_bytes
            target = int(self.node.settings.max_memory_mb * (1 << 20) * 0.9) - resident_bytes()
            if target > 0:
                self._ballast = bytearray(b"\x01") * target  # touched: every page is written
        elif "memory" not in self.active and self._ballast is not None:
            self._ballast = None

    def _burn(self):
        x = 0
        while not self._burn_stop.is_set():
            for i in range(20000):
                x = (x * 31 + i) % 1000003

    def run(self, stop):
        while not stop.is_set():
            self.poll_once()
            stop.wait(0.4)
        self._burn_stop.set()


class Engine:
    def __init__(self, node):
        self.node = node
        self.lock = threading.Lock()
        self.active = {}
        self.cache = {}
        self.cache_stats = {"hits": 0, "misses": 0, "evictions": 0}
        self.cache_dirty = False
        self._credit = 0.5

    # ---------------------------------------------------------------- cache
    def load_cache(self):
        try:
            self.cache = self.node.store.load_cache()
        except Exception:  # noqa: BLE001 - a bad row must not stop the node
            self.cache = {}

    def flush_cache(self):
        with self.lock:
            if not self.cache_dirty:
                return
            snapshot = json.loads(json.dumps(self.cache))
            self.cache_dirty = False
        self.node.store.save_cache(snapshot)

    def cache_lookup(self, key, tags, hit_prob):
        now = time.time()
        with self.lock:
            # error diffusion: the realised hit ratio tracks hit_prob closely (no spurious low-ratio alerts)
            self._credit += hit_prob + random.uniform(-0.03, 0.03)
            hit = self._credit >= 1.0
            if hit:
                self._credit -= 1.0
            entry = self.cache.get(key)
            if hit:
                self.cache_stats["hits"] += 1
            else:
                self.cache_stats["misses"] += 1
            if entry is None or not hit:  # a miss (re)loads the entry
                new = entry is None
                entry = {"key": key, "tags": tags, "size": random.randint(512, 8192), "created": iso(now),
                         "lastAccessTs": now, "frequency": entry["frequency"] if entry else 0,
                         "accessTimes": entry["accessTimes"] if entry else []}
                self.cache[key] = entry
                if new and len(self.cache) > 256:
                    oldest = min(self.cache.values(), key=lambda e: e.get("lastAccessTs", 0))
                    self.cache.pop(oldest["key"], None)
                    self.cache_stats["evictions"] += 1
            entry["frequency"] += 1
            entry["lastAccess"] = iso(now)
            entry["lastAccessTs"] = now
            entry["accessTimes"] = (entry["accessTimes"] + [iso(now)])[-10:]
            self.cache_dirty = True
        self.node.metrics.cache_lookup(hit)
        return hit

    def cache_stats_view(self):
        with self.lock:
            h, m = self.cache_stats["hits"], self.cache_stats["misses"]
            total = h + m
            size = sum(e.get("size", 0) for e in self.cache.values())
            return {"totalEntries": len(self.cache), "totalSize": size,
                    "hitRate": round(h / total, 4) if total else 0, "missRate": round(m / total, 4) if total else 0,
                    "evictionCount": self.cache_stats["evictions"], "memoryUsage": size}

    def cache_invalidate(self, keys, tags):
        with self.lock:
            victims = [k for k, e in self.cache.items()
                       if (keys and k in keys) or (tags and set(tags) & set(e.get("tags", [])))]
            for k in victims:
                del self.cache[k]
            self.cache_dirty = True
        return len(victims)

    def cache_clear(self):
        with self.lock:
            self.cache.clear()
            self.cache_stats = {"hits": 0, "misses": 0, "evictions": 0}
            self.cache_dirty = True

    def cache_patterns(self):
        with self.lock:
            out = []
            for e in sorted(self.cache.values(), key=lambda e: -e.get("frequency", 0)):
                ts = e.get("lastAccessTs", 0)
                out.append({"key": e["key"], "frequency": e.get("frequency", 0), "lastAccess": e.get("lastAccess"),
                            "accessTimes": list(e.get("accessTimes", [])),
                            "predictedNextAccess": iso(ts + 60) if ts else None})
            return out

    # ------------------------------------------------------------ executions
    def active_count(self, flow_id=None):
        with self.lock:
            return sum(1 for e in self.active.values()
                       if e["status"] in ("pending", "running", "paused") and (flow_id is None or e["flowId"] == flow_id))

    def get(self, eid):
        with self.lock:
            ex = self.active.get(eid)
            if ex is not None:
                return self.public(ex)
        return self.node.store.get_execution(eid)

    @staticmethod
    def public(ex):
        return {k: (list(v) if isinstance(v, list) else v) for k, v in ex.items() if not k.startswith("_")}

    def _save(self, ex):
        try:
            self.node.store.save_execution(ex)
        except Exception as exc:  # noqa: BLE001
            self.node.log.error("storage", "Failed to persist execution %s: %s" % (ex["executionId"],
                                                                                  exc.__class__.__name__),
                                executionId=ex["executionId"])

    def start(self, flow, context, workload=False):
        mode = refusing_mode(self.node)
        if mode:
            raise ModeRefused(mode)
        limit = self.node.settings.max_concurrent_flows
        now = time.time()
        ex = {
            "executionId": new_id(), "flowId": flow["id"], "status": "pending", "currentStep": flow["steps"][0]["id"],
            "completedSteps": [], "failedSteps": [], "context": context, "startTime": iso(now),
            "checkpoints": [], "nodeAssignments": {}, "_startMs": int(now * 1000), "_t0": time.monotonic(),
            "_workload": workload,
        }
        with self.lock:
            n = sum(1 for e in self.active.values() if e["status"] in ("pending", "running", "paused"))
            if n >= limit:
                raise EngineError("Maximum concurrent flows reached (%d/%d)" % (n, limit))
            self.active[ex["executionId"]] = ex
        self._save(ex)
        threading.Thread(target=self._run, args=(ex, flow), name="exec-" + ex["executionId"][:8],
                         daemon=True).start()
        return ex

    def _wait(self, ex, seconds):
        """Sleep `seconds` of running time; pauses stop the clock. False if aborted/stopping."""
        stop = self.node.stop_event
        remaining = seconds
        while remaining > 0:
            if ex["status"] == "aborted" or stop.is_set():
                return False
            if ex["status"] == "paused":
                stop.wait(0.05)
                continue
            step = min(0.05, remaining)
            time.sleep(step)
            remaining -= step
        return ex["status"] != "aborted" and not stop.is_set()

    def _run(self, ex, flow):
        node, log, m, faults = self.node, self.node.log, self.node.metrics, self.node.faults
        eid, fid = ex["executionId"], flow["id"]
        ctx = {"executionId": eid, "flowId": fid}
        try:
            ex["status"] = "running"
            self._save(ex)
            log.info("execution-engine", "Execution %s started for flow %s" % (eid, fid), **ctx)
            slow = "slow" in faults
            # node selection
            t = random.uniform(0.15, 0.3) if slow else random.uniform(0.005, 0.04)
            time.sleep(t)
            m.selection_duration.observe(t)
            ex["nodeAssignments"] = {s["id"]: node.node_id for s in flow["steps"]}
            log.debug("node-selection", "Selected executor %s in %d ms" % (node.node_id, t * 1000), **ctx)
            if t > 0.1 and random.random() < 0.2:
                log.warn("node-selection", "Node selection took %d ms (threshold 100 ms)" % (t * 1000), **ctx)
            # validation pipeline
            error = self._validate(ex, flow, ctx)
            # storage cache
            if error is None:
                hit_prob = 0.4 if "cache" in faults else 0.92
                for _ in range(random.randint(2, 4)):
                    key = random.choice(("flow:%s" % fid, "context:%s" % fid, "subnet:dao.public.default",
                                         "ipfs:Qm%s%02d" % (fid.replace("-", "")[:6], random.randint(0, 15))))
                    self.cache_lookup(key, [fid, key.split(":")[0]], hit_prob)
            # steps
            if error is None:
                error = self._steps(ex, flow, ctx)
        except Exception as exc:  # noqa: BLE001 - an engine bug must fail the execution, not kill the node
            error = ("execution_error", "Internal engine error: %s" % exc.__class__.__name__)
        self._finish(ex, error, ctx)

    def _validate(self, ex, flow, ctx):
        m, faults, log = self.node.metrics, self.node.faults, self.node.log
        t0 = time.monotonic()
        m.validation_requests.inc()
        hit_prob = 0.4 if "cache" in faults else 0.9
        if self.node.settings.validation_cache and random.random() < hit_prob:
            m.validation_cache_hits.inc()
            time.sleep(random.uniform(0.001, 0.003))
            errors = []
        else:
            errors, _ = flowlib.validate_doc(flow)
            time.sleep(random.uniform(0.01, 0.04))
        m.validation_duration.observe(time.monotonic() - t0)
        if "validation" in faults or errors or random.random() < 0.0005:
            m.validation_failures.inc()
            layer = random.choice(VALIDATION_LAYERS)
            msg = "Validation layer %s rejected flow %s: signature mismatch" % (layer, flow["id"])
            log.error("validation-pipeline", msg, layer=layer, **ctx)
            return ("validation_error", msg)
        log.debug("validation-pipeline", "Flow %s passed validation" % flow["id"], **ctx)
        return None

    def _steps(self, ex, flow, ctx):
        log, faults = self.node.log, self.node.faults
        steps = flow["steps"][:MAX_STEPS]
        sleeps = [sleep_seconds(s) for s in steps]
        timed = sum(1 for x in sleeps if x is None) or 1
        total = random.uniform(6.0, 8.0) if "slow" in faults else random.uniform(0.05, 0.4)
        fail_p = 0.3 if "errors" in faults else 0.0015
        fail_at = random.randrange(len(steps)) if random.random() < fail_p else None
        defect = "errors" in self.node.release.defects  # lab defect: every execution fails
        if defect:
            fail_at = 0
        for i, step in enumerate(steps):
            ex["currentStep"] = step["id"]
            if not self._wait(ex, sleeps[i] if sleeps[i] is not None else total / timed):
                return "aborted"
            if i == fail_at:
                ex["failedSteps"].append(step["id"])
                if defect:
                    return ("execution_error", "Step %s failed: unhandled TypeError in release %s: Cannot read "
                            "properties of undefined (reading 'payload')" % (step["id"], self.node.version))
                kind, tmpl = random.choice(ERROR_TEMPLATES)
                msg = tmpl.format(step=step["id"], ms=random.choice((3000, 5000, 10000)), eid=ex["executionId"],
                                  n=random.randint(3, 12), mb=random.randint(300, 900),
                                  lim=self.node.settings.max_memory_mb)
                return (kind, msg)
            ex["completedSteps"].append(step["id"])
            ex["checkpoints"].append({"stepId": step["id"], "timestamp": iso()})
            log.debug("execution-engine", "Step %s completed" % step["id"], stepId=step["id"], **ctx)
            if random.random() < 0.01:
                tmpl = random.choice(WARN_TEMPLATES)
                log.warn("execution-engine", tmpl.format(step=step["id"], n=random.randint(1, 3),
                                                         p=random.randint(70, 95), eid=ex["executionId"],
                                                         ms=random.randint(300, 900)), **ctx)
        return None

    def _finish(self, ex, error, ctx):
        m, log = self.node.metrics, self.node.log
        dur = time.monotonic() - ex["_t0"]
        ex["endTime"] = iso()
        if error == "aborted" or ex["status"] == "aborted":
            ex["status"] = "aborted"
            m.executions.inc()
            log.info("execution-engine", "Execution %s aborted" % ex["executionId"], **ctx)
        elif error:
            kind, msg = error
            ex["status"] = "failed"
            ex["error"] = {"type": kind, "message": msg, "stepId": ex.get("currentStep"), "timestamp": iso()}
            m.failed.inc()
            m.execution_failures.inc()
            m.executions.inc()
            m.errors.inc()
            m.exec_duration.observe(dur)
            if kind != "validation_error":
                log.error("execution-engine", msg, durationMs=int(dur * 1000), **ctx)
            log.info("execution-engine", "Execution %s failed after %d ms" % (ex["executionId"], dur * 1000), **ctx)
        else:
            ex["status"] = "completed"
            ex["currentStep"] = None
            m.completed.inc()
            m.executions.inc()
            m.exec_duration.observe(dur)
            log.info("execution-engine", "Execution %s completed in %d ms" % (ex["executionId"], dur * 1000),
                     durationMs=int(dur * 1000), **ctx)
        self._save(ex)
        with self.lock:
            self.active.pop(ex["executionId"], None)

    def control(self, eid, action):
        """pause / resume / abort. Return the execution or raise EngineError."""
        with self.lock:
            ex = self.active.get(eid)
            if ex is None:
                stored = self.node.store.get_execution(eid)
                if stored is None:
                    raise EngineError("Execution not found: %s" % eid)
                raise EngineError("Cannot %s execution in status %s" % (action, stored["status"]))
            st = ex["status"]
            if action == "pause":
                if st != "running":
                    raise EngineError("Cannot pause execution in status %s" % st)
                ex["status"] = "paused"
            elif action == "resume":
                if st != "paused":
                    raise EngineError("Cannot resume execution in status %s" % st)
                ex["status"] = "running"
            elif action == "abort":
                if st in ("completed", "failed", "aborted"):
                    raise EngineError("Cannot abort execution in status %s" % st)
                ex["status"] = "aborted"
            view = self.public(ex)
        self._save(ex)
        self.node.log.info("execution-engine", "Execution %s %s" % (eid, {"pause": "paused", "resume": "resumed",
                                                                          "abort": "aborted"}[action]),
                           executionId=eid, flowId=ex["flowId"])
        return view

    def shutdown(self, timeout=2.0):
        deadline = time.monotonic() + timeout
        while self.active_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.lock:
            left = list(self.active.values())
        for ex in left:
            ex["status"] = "failed"
            ex["endTime"] = iso()
            ex["error"] = {"type": "node_failure", "message": "Execution interrupted by node shutdown"}
            self._save(ex)


class Workload:
    """Starts executions of the built-in flows at QFLOW_LAB_WORKLOAD_RATE per second."""

    def __init__(self, node, rate):
        self.node = node
        self.rate = max(0.0, rate)
        self.paused_by = None  # the operating mode that stopped the workload (logged once per change)

    def _paused(self):
        mode = refusing_mode(self.node)
        if mode != self.paused_by:
            if mode:
                self.node.log.warn("execution-engine", "Workload paused: %s mode is enabled, no new executions are "
                                   "started" % mode, mode=mode)
            else:
                self.node.log.info("execution-engine", "Workload resumed: %s mode is disabled" % self.paused_by,
                                   mode=self.paused_by)
            self.paused_by = mode
        return mode is not None

    def ensure_flows(self):
        store = self.node.store
        for flow in builtin_flows():
            if not store.flow_exists(flow["id"]):
                now = iso()
                flow["createdAt"] = flow["updatedAt"] = now
                store.insert_flow(flowlib.normalise(flow))
                self.node.log.info("storage", "Created built-in flow %s" % flow["id"], flowId=flow["id"])

    def run(self, stop):
        if self.rate <= 0:
            return
        ids = [f["id"] for f in builtin_flows()]
        weights = [1, 3, 1]
        interval = 1.0 / self.rate
        nxt = time.monotonic()
        while not stop.is_set():
            nxt += interval
            delay = nxt - time.monotonic()
            if delay < -5:  # fell far behind (e.g. suspended): do not burst
                nxt = time.monotonic()
            elif delay > 0 and stop.wait(delay):
                break
            if self._paused():
                continue
            fid = random.choices(ids, weights)[0]
            flow = self.node.store.get_flow(fid)
            if flow is None:
                continue
            ctx = {"triggeredBy": WORKLOAD_OWNER, "triggerType": "schedule", "inputData": {},
                   "variables": {}, "daoSubnet": "dao.public.default", "permissions": ["flow:execute"]}
            try:
                self.node.engine.start(flow, ctx, workload=True)
            except ModeRefused:
                self._paused()
            except EngineError as exc:
                self.node.log.warn("execution-engine", "Workload execution refused: %s" % exc, flowId=fid)
