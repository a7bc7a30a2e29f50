"""Env file and YAML config loading (contract §2.1, §2.2)."""
import os

import yaml

from .util import parse_size

ENV_DEFAULTS = {
    "NODE_ID": "qflow-node",
    "QFLOW_HOST": "0.0.0.0",
    "QFLOW_PORT": "8080",
    "QFLOW_METRICS_PORT": "9090",
    "QFLOW_DATA_DIR": "/var/lib/qflow",
    "QFLOW_LOG_DIR": "/var/log/qflow",
}


def load_env_file(path):
    """KEY=value lines; '#' comments, blank lines, optional 'export ' and quotes are accepted."""
    env = dict(ENV_DEFAULTS)
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            if line.startswith("export "):
                line = line[7:].strip()
            key, _, value = line.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key.strip()] = value
    return env


class ConfigError(Exception):
    pass


def read_config(path):
    """Parse the config file; return the dict under `qflow:` or raise ConfigError."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError("config file %s does not parse: %s" % (path, exc.__class__.__name__))
    if not isinstance(doc, dict) or not isinstance(doc.get("qflow"), dict):
        raise ConfigError("config file %s has no root key 'qflow:'" % path)
    return doc["qflow"]


def _get(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


class Settings:
    """The config keys the reference node acts on (contract §2.2)."""

    def __init__(self, qflow):
        self.raw = qflow or {}
        self.max_concurrent_flows = int(_get(self.raw, "engine", "maxConcurrentFlows", default=100))
        self.max_memory_mb = int(_get(self.raw, "engine", "maxMemoryMB", default=2048))
        self.log_level = str(_get(self.raw, "logging", "level", default="info")).lower()
        self.log_max_bytes = parse_size(_get(self.raw, "logging", "maxFileSize"), 100 << 20)
        self.log_max_files = int(_get(self.raw, "logging", "maxFiles", default=10))
        self.validation_cache = bool(_get(self.raw, "validation", "cache", "enabled", default=True))
        # flow definitions go to IPFS only when the config names a daemon (contract §2.3)
        self.ipfs_api_url = _get(self.raw, "storage", "ipfsApiUrl") or None
        # TLS on the API port (contract §2.2): the node refuses to start when the files are missing
        self.enable_tls = _get(self.raw, "networking", "enableTLS", default=False) is True
        self.tls_cert_path = _get(self.raw, "networking", "tlsCertPath") or None
        self.tls_key_path = _get(self.raw, "networking", "tlsKeyPath") or None


def load_settings(path):
    """Settings from the config file; defaults when it does not parse (readiness reports it)."""
    try:
        return Settings(read_config(path)), None
    except ConfigError as exc:
        return Settings({}), str(exc)


def env_int(env, key, default):
    try:
        return int(env.get(key, default))
    except (TypeError, ValueError):
        return default


def process_env_float(key, default):
    try:
        return float(os.environ.get(key, default))
    except ValueError:
        return default
