"""Prometheus text format 0.0.4 metrics (contract §4), no client library."""
import collections
import os
import threading
import time

EXEC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SELECT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
VALID_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def _fmt(v):
    if v == float("inf"):
        return "+Inf"
    if isinstance(v, int):
        return str(v)
    r = repr(float(v))
    return r[:-2] if r.endswith(".0") else r


class Counter:
    def __init__(self, name, help_):
        self.name, self.help, self.value = name, help_, 0.0
        self.lock = threading.Lock()

    def inc(self, n=1.0):
        with self.lock:
            self.value += n

    def render(self):
        return ["# HELP %s %s" % (self.name, self.help), "# TYPE %s counter" % self.name,
                "%s %s" % (self.name, _fmt(self.value))]


class Histogram:
    def __init__(self, name, help_, buckets):
        self.name, self.help = name, help_
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0
        self.lock = threading.Lock()

    def observe(self, v):
        with self.lock:
            self.sum += v
            self.count += 1
            for i, b in enumerate(self.buckets):
                if v <= b:
                    self.counts[i] += 1
                    break

    def render(self):
        out = ["# HELP %s %s" % (self.name, self.help), "# TYPE %s histogram" % self.name]
        with self.lock:
            acc = 0
            for b, c in zip(self.buckets, self.counts):
                acc += c
                out.append('%s_bucket{le="%s"} %d' % (self.name, _fmt(float(b)), acc))
            out.append('%s_bucket{le="+Inf"} %d' % (self.name, self.count))
            out.append("%s_sum %s" % (self.name, _fmt(self.sum)))
            out.append("%s_count %d" % (self.name, self.count))
        return out


def gauge_lines(name, help_, value, labels=None):
    lab = ""
    if labels:
        lab = "{" + ",".join('%s="%s"' % (k, str(v).replace("\\", "\\\\").replace('"', '\\"'))
                             for k, v in labels.items()) + "}"
    return ["# HELP %s %s" % (name, help_), "# TYPE %s gauge" % name, "%s%s %s" % (name, lab, _fmt(value))]


class RatioWindow:
    """hits / requests over the last `window` seconds, in one-second buckets."""

    def __init__(self, window=60):
        self.window = window
        self.buckets = collections.deque()
        self.lock = threading.Lock()

    def add(self, hit):
        sec = int(time.monotonic())
        with self.lock:
            if self.buckets and self.buckets[-1][0] == sec:
                b = self.buckets[-1]
            else:
                b = [sec, 0, 0]
                self.buckets.append(b)
            b[1] += 1
            b[2] += 1 if hit else 0
            self._trim(sec)

    def _trim(self, sec):
        while self.buckets and self.buckets[0][0] <= sec - self.window:
            self.buckets.popleft()

    def ratio(self):
        with self.lock:
            self._trim(int(time.monotonic()))
            req = sum(b[1] for b in self.buckets)
            hits = sum(b[2] for b in self.buckets)
        return 1.0 if req == 0 else hits / req

    def reset(self):
        with self.lock:
            self.buckets.clear()


class CpuSampler:
    """Process CPU % over the last ~5 s (100 = one core), sampled once a second."""

    def __init__(self, window=5.0):
        self.window = window
        self.samples = collections.deque(maxlen=16)
        self.lock = threading.Lock()
        self.sample()

    @staticmethod
    def cpu_seconds():
        t = os.times()
        return t.user + t.system

    def sample(self):
        with self.lock:
            self.samples.append((time.monotonic(), self.cpu_seconds()))

    def percent(self):
        now, cpu = time.monotonic(), self.cpu_seconds()
        with self.lock:
            base = None
            for t, c in self.samples:
                if now - t <= self.window + 0.5:
                    base = (t, c)
                    break
            if base is None and self.samples:
                base = self.samples[-1]
        if base is None or now - base[0] < 0.2:
            return 0.0
        return max(0.0, 100.0 * (cpu - base[1]) / (now - base[0]))


def resident_bytes():
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Metrics:
    def __init__(self):
        C, H = Counter, Histogram
        self.exec_duration = H("qflow_flow_execution_duration_seconds",
                               "Flow execution wall time in seconds.", EXEC_BUCKETS)
        self.completed = C("qflow_flows_completed_total", "Executions that completed.")
        self.failed = C("qflow_flows_failed_total", "Executions that failed.")
        self.executions = C("qflow_flow_executions_total",
                            "Finished executions (completed, failed or aborted); dashboard name.")
        self.execution_failures = C("qflow_flow_execution_failures_total",
                                    "Failed executions; dashboard name for qflow_flows_failed_total.")
        self.validation_duration = H("qflow_validation_duration_seconds",
                                     "Validation pipeline time in seconds.", VALID_BUCKETS)
        self.validation_requests = C("qflow_validation_requests_total", "Validation pipeline requests.")
        self.validation_cache_hits = C("qflow_validation_cache_hits_total", "Validation cache hits.")
        self.validation_failures = C("qflow_validation_failures_total", "Validation pipeline failures.")
        self.selection_duration = H("qflow_node_selection_duration_seconds",
                                    "Time to pick an executor node in seconds.", SELECT_BUCKETS)
        self.cache_requests = C("qflow_storage_cache_requests_total", "Storage cache lookups.")
        self.cache_hits = C("qflow_storage_cache_hits_total", "Storage cache hits.")
        self.request_duration = H("qflow_request_duration_seconds",
                                  "REST API request time in seconds.", REQUEST_BUCKETS)
        self.errors = C("qflow_errors_total", "API 5xx answers and failed executions.")
        self.cache_window = RatioWindow(60)
        self.cpu = CpuSampler()
        self.start_time = time.time()
        self.start_mono = time.monotonic()

    def cache_lookup(self, hit):
        self.cache_requests.inc()
        if hit:
            self.cache_hits.inc()
        self.cache_window.add(hit)

    def render(self, node_id, version, active, memory_limit_bytes, health_score, modes=None):
        rss = resident_bytes()
        uptime = time.monotonic() - self.start_mono
        out = []
        for m in (self.exec_duration, self.completed, self.failed, self.executions, self.execution_failures):
            out += m.render()
        out += gauge_lines("qflow_flows_active_count", "Executions pending, running or paused.", active)
        for m in (self.validation_duration, self.validation_requests, self.validation_cache_hits,
                  self.validation_failures, self.selection_duration, self.cache_requests, self.cache_hits):
            out += m.render()
        out += gauge_lines("qflow_storage_cache_hit_ratio", "Storage cache hits / requests over the last 60 s.",
                           round(self.cache_window.ratio(), 4))
        out += self.request_duration.render()
        out += self.errors.render()
        out += gauge_lines("qflow_process_cpu_usage_percent", "Process CPU over the last 5 s, 100 = one core.",
                           round(self.cpu.percent(), 2))
        out += gauge_lines("qflow_process_memory_usage_bytes", "Resident memory in bytes.", rss)
        out += gauge_lines("process_resident_memory_bytes", "Resident memory size in bytes.", rss)
        out += gauge_lines("qflow_process_memory_limit_bytes", "Memory limit (engine.maxMemoryMB) in bytes.",
                           memory_limit_bytes)
        out += ["# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
                "# TYPE process_cpu_seconds_total counter",
                "process_cpu_seconds_total %s" % _fmt(round(CpuSampler.cpu_seconds(), 3))]
        out += gauge_lines("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                           round(self.start_time, 3))
        out += gauge_lines("qflow_process_uptime_seconds", "Process uptime in seconds.", round(uptime, 3))
        out += gauge_lines("qflow_node_health_score", "1 = healthy, 0 = the node reports itself critical.",
                           health_score)
        out += gauge_lines("qflow_build_info", "Build information; always 1.", 1,
                           {"version": version, "node_id": node_id})
        if modes is not None:
            out += ["# HELP qflow_node_mode Operating mode enabled (1) or not (0) (extension).",
                    "# TYPE qflow_node_mode gauge"]
            out += ['qflow_node_mode{mode="%s"} %d' % (m, 1 if on else 0) for m, on in modes.items()]
        return "\n".join(out) + "\n"
