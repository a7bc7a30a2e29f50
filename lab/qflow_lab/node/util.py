"""Small helpers shared by the node modules."""
import datetime as _dt
import time
import uuid


def iso(ts=None):
    """ISO 8601 UTC with milliseconds and Z, like JavaScript's toISOString()."""
    if ts is None:
        ts = time.time()
    d = _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


def parse_iso(value):
    """Parse an ISO 8601 timestamp (with Z or offset) to epoch seconds; raise ValueError."""
    if not isinstance(value, str) or not value:
        raise ValueError("not a timestamp")
    v = value.strip()
    if v.endswith("Z") or v.endswith("z"):
        v = v[:-1] + "+00:00"
    d = _dt.datetime.fromisoformat(v)
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


def new_id():
    return str(uuid.uuid4())


def parse_size(value, default):
    """'100MB' / '512KB' / '1GB' / 1048576 -> bytes."""
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return int(value)
    s = str(value).strip().upper().replace(" ", "")
    mult = 1
    for suffix, m in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("G", 1 << 30),
                      ("M", 1 << 20), ("K", 1 << 10), ("B", 1)):
        if s.endswith(suffix):
            s = s[: -len(suffix)]
            mult = m
            break
    try:
        return int(float(s) * mult)
    except ValueError:
        return default
