"""Node process: wiring, background threads, signal handling."""
import argparse
import os
import ssl
import signal
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from . import VERSION
from . import flows as flowlib
from .api import ApiHandler, MetricsHandler
from .config import ConfigError, env_int, load_env_file, load_settings, process_env_float, read_config
from .engine import Engine, Faults, Workload
from .ipfs import FlowSync, IpfsClient, IpfsError
from .logs import JsonLog
from .metrics import Metrics
from .modes import MODES, Modes
from .release import DEFAULT_DIR as DEFAULT_RELEASE_DIR, read_current
from .store import Store
from .util import iso

_PROBE_FLOW = ('{"id":"probe","name":"probe","version":"1.0.0","owner":"squid:probe:0",'
               '"steps":[{"id":"s1","type":"task","action":"noop"}],'
               '"metadata":{"tags":[],"category":"probe","visibility":"private","requiredPermissions":[]}}')


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True


class Node:
    def __init__(self, env, config_path, workload_rate=None, faults_file=None, env_file=None):
        self.env = env
        self.config_path = config_path
        self.node_id = env.get("NODE_ID", "qflow-node")
        self.jwt_secret = env.get("QFLOW_JWT_SECRET", "")
        # Rotation grace (contract §3.1, extension): tokens signed with the previous secret stay valid.
        self.jwt_previous = env.get("QFLOW_JWT_SECRET_PREVIOUS", "")
        if not self.jwt_secret:
            raise SystemExit("QFLOW_JWT_SECRET is not set in the env file")
        self.settings, cfg_err = load_settings(config_path)
        self.stop_event = threading.Event()
        self.started = time.monotonic()
        self.log = JsonLog(env.get("QFLOW_LOG_DIR", "/var/log/qflow"), self.settings.log_level,
                           self.settings.log_max_bytes, self.settings.log_max_files)
        if cfg_err:
            self.log.error("config", cfg_err)
        self.metrics = Metrics()
        self.store = Store(env.get("QFLOW_DATA_DIR", "/var/lib/qflow"))
        self.faults = Faults(self, faults_file if faults_file is not None else os.environ.get("QFLOW_LAB_FAULTS_FILE"))
        # Operating modes (contract §3.4, extension): default file next to the env file (else the config file)
        modes_file = env.get("QFLOW_MODES_FILE") or os.path.join(
            os.path.dirname(os.path.abspath(env_file or config_path)), "qflow-modes.json")
        self.modes = Modes(self, modes_file)
        self.modes.poll_once()
        # Releases (contract §2.5, extension): the version is the current release's
        self.release = read_current(env.get("QFLOW_RELEASE_DIR") or DEFAULT_RELEASE_DIR)
        if self.release.error:
            self.log.error("system", "Cannot read the current release (%s); reporting the built-in version %s"
                           % (self.release.error, VERSION))
        self.version = self.release.version or VERSION
        self.engine = Engine(self)
        rate = workload_rate if workload_rate is not None else process_env_float("QFLOW_LAB_WORKLOAD_RATE", 2.0)
        self.workload = Workload(self, rate)
        self.ipfs = None
        if self.settings.ipfs_api_url:
            self.ipfs = FlowSync(self, IpfsClient(self.settings.ipfs_api_url))
        self.threads = []
        self.servers = []

    # ------------------------------------------------------------ state
    def uptime(self):
        return round(time.monotonic() - self.started, 3)

    def health_score(self):
        return 0 if "alert" in self.faults else 1

    def readiness(self):
        checks = {}
        if self.modes.enabled("isolation"):
            checks["isolation"] = False  # out of every load balancer pool while isolated
        try:
            flow, errors, _ = flowlib.parse_flow(_PROBE_FLOW, "json")
            checks["flowParser"] = flow is not None and not errors
        except Exception:  # noqa: BLE001
            checks["flowParser"] = False
        checks["executionEngine"] = (not self.stop_event.is_set()
                                     and self.engine.active_count() < self.settings.max_concurrent_flows)
        checks["validationPipeline"] = "validation" not in self.faults
        checks["eventEmitter"] = True
        try:
            checks["storage"] = "not_ready" not in self.faults and self.store.probe()
        except Exception:  # noqa: BLE001
            checks["storage"] = False
        try:
            read_config(self.config_path)
            checks["config"] = True
        except ConfigError:
            checks["config"] = False
        if self.ipfs is not None:  # a real call to the daemon (extension)
            try:
                checks["ipfs"] = bool(self.ipfs.client.version(timeout=1.0).get("Version"))
            except (IpfsError, ValueError, AttributeError):
                checks["ipfs"] = False
        return checks

    def render_metrics(self):
        return self.metrics.render(self.node_id, self.version, self.engine.active_count(),
                                   self.settings.max_memory_mb * (1 << 20), self.health_score(),
                                   {m: self.modes.enabled(m) for m in MODES})

    # ------------------------------------------------------------ lifecycle
    def _thread(self, target, name, *args):
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def _housekeeping(self):
        last_prune = last_flush = time.monotonic()
        while not self.stop_event.wait(1.0):
            self.metrics.cpu.sample()
            try:
                self.modes.poll_once()
            except Exception as exc:  # noqa: BLE001
                self.log.error("system", "Modes poll failed: %s" % exc.__class__.__name__)
            now = time.monotonic()
            if now - last_flush >= 5:
                last_flush = now
                try:
                    self.engine.flush_cache()
                except Exception as exc:  # noqa: BLE001
                    self.log.error("storage", "Cache flush failed: %s" % exc.__class__.__name__)
            if now - last_prune >= 60:
                last_prune = now
                try:
                    n = self.store.prune_executions(5000)
                    if n:
                        self.log.info("storage", "Pruned %d finished executions" % n, pruned=n)
                except Exception as exc:  # noqa: BLE001
                    self.log.error("storage", "Execution prune failed: %s" % exc.__class__.__name__)

    def _tls_context(self):
        """An SSL context when networking.enableTLS is true; refuse to start without readable cert and key."""
        st = self.settings
        if not st.enable_tls:
            return None
        missing = [k for k, v in (("networking.tlsCertPath", st.tls_cert_path), ("networking.tlsKeyPath", st.tls_key_path))
                   if not v or not os.path.isfile(v)]
        if missing:
            msg = "networking.enableTLS is true but %s %s not set or not a file" % (
                " and ".join(missing), "is" if len(missing) == 1 else "are")
            self.log.error("system", msg)
            raise SystemExit("qflow node: " + msg)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(st.tls_cert_path, st.tls_key_path)
        except (OSError, ssl.SSLError) as exc:
            self.log.error("system", "cannot load the TLS certificate: %s" % exc)
            raise SystemExit("qflow node: cannot load the TLS certificate %s: %s" % (st.tls_cert_path, exc))
        return ctx

    def start(self, host=None, port=None, metrics_port=None):
        host = host if host is not None else self.env.get("QFLOW_HOST", "0.0.0.0")
        port = port if port is not None else env_int(self.env, "QFLOW_PORT", 8080)
        metrics_port = metrics_port if metrics_port is not None else env_int(self.env, "QFLOW_METRICS_PORT", 9090)
        if "crash" in self.release.defects:  # lab defect: a bad release that never comes up
            msg = "Release %s is defective (lab defect crash): the node cannot start" % self.version
            self.log.log("fatal", "system", msg, version=self.version, releaseDir=self.release.dir)
            raise SystemExit("qflow node: " + msg)
        n = self.store.interrupt_stale(iso())
        if n:
            self.log.warn("storage", "Marked %d executions from a previous run as failed" % n)
        self.engine.load_cache()
        self.workload.ensure_flows()
        self.faults.poll_once()
        self.modes.poll_once()
        tls = self._tls_context()
        api = Server((host, port), ApiHandler)
        if tls is not None:
            api.socket = tls.wrap_socket(api.socket, server_side=True)
        met = Server((host, metrics_port), MetricsHandler)
        for s in (api, met):
            s.node = self
            self.servers.append(s)
            self._thread(s.serve_forever, "http-%d" % s.server_address[1], 0.25)
        self._thread(self.faults.run, "faults", self.stop_event)
        self._thread(self._housekeeping, "housekeeping")
        self._thread(self.workload.run, "workload", self.stop_event)
        if self.ipfs is not None:
            self._thread(self.ipfs.run, "ipfs-sync", self.stop_event)
        self.log.info("system", "Qflow node %s started" % self.node_id, version=self.version,
                      modes=self.modes.active(),
                      api="%s:%d" % api.server_address[:2], metrics="%s:%d" % met.server_address[:2],
                      workloadRate=self.workload.rate)
        return api.server_address[1], met.server_address[1]

    def stop(self):
        if self.stop_event.is_set() and not self.servers:
            return
        self.log.info("system", "Shutting down node %s" % self.node_id)
        self.stop_event.set()
        if self.ipfs is not None:
            self.ipfs.wake.set()
        for s in self.servers:
            s.shutdown()
            s.server_close()
        self.servers = []
        self.engine.shutdown()
        try:
            self.engine.flush_cache()
        except Exception:  # noqa: BLE001
            pass
        self.store.close()
        self.log.info("system", "Node %s stopped" % self.node_id)
        self.log.close()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m qflow_lab.node", description="Reference Qflow node")
    ap.add_argument("--env-file", required=True)
    ap.add_argument("--config", required=True)
    args = ap.parse_args(argv)
    env = load_env_file(args.env_file)
    node = Node(env, args.config, env_file=args.env_file)
    try:
        node.start()
    except OSError as exc:
        sys.stderr.write("qflow node %s: cannot listen: %s\n" % (node.node_id, exc))
        node.log.log("fatal", "system", "Cannot listen: %s" % exc)
        return 1
    done = threading.Event()

    def on_signal(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not done.wait(1.0):
        pass
    node.stop()
    return 0
