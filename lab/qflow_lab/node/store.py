"""state.db: SQLite 3 in WAL mode (contract §2.3). One connection guarded by a lock."""
import json
import os
import sqlite3
import threading
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS flows (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, owner TEXT, category TEXT, visibility TEXT,
    tags TEXT, doc TEXT NOT NULL, created_at TEXT, updated_at TEXT, ipfs_cid TEXT);
CREATE TABLE IF NOT EXISTS ownership (
    flow_id TEXT PRIMARY KEY, owner TEXT, created TEXT, last_modified TEXT, history TEXT);
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY, flow_id TEXT, status TEXT, triggered_by TEXT, start_ms INTEGER, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS executions_start ON executions (start_ms);
CREATE INDEX IF NOT EXISTS executions_flow ON executions (flow_id, status);
CREATE TABLE IF NOT EXISTS permissions (
    flow_id TEXT, granted_to TEXT, permission TEXT, doc TEXT NOT NULL,
    PRIMARY KEY (flow_id, granted_to, permission));
CREATE TABLE IF NOT EXISTS subnets (id TEXT PRIMARY KEY, seq INTEGER, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS validators (
    subnet_id TEXT, validator_id TEXT, doc TEXT NOT NULL, PRIMARY KEY (subnet_id, validator_id));
CREATE TABLE IF NOT EXISTS alert_rules (id TEXT PRIMARY KEY, seq INTEGER, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cache_entries (key TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS ipfs_unpin (cid TEXT PRIMARY KEY);
"""

FINISHED = ("completed", "failed", "aborted")
ACTIVE = ("pending", "running", "paused")


class Store:
    def __init__(self, data_dir):
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, "state.db")
        self.lock = threading.RLock()
        self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)
        if "ipfs_cid" not in [r[1] for r in self.db.execute("PRAGMA table_info(flows)")]:
            self.db.execute("ALTER TABLE flows ADD COLUMN ipfs_cid TEXT")  # state.db from before flows went to IPFS

    # -- helpers
    def _q(self, sql, args=()):
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def _x(self, sql, args=()):
        with self.lock:
            cur = self.db.execute(sql, args)
            return cur.rowcount

    def close(self):
        with self.lock:
            try:
                self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass
            self.db.close()

    def probe(self):
        """A real write + read (readiness check `storage`)."""
        token = "%.6f" % time.time()
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES ('readiness_probe', ?)", (token,))
            row = self.db.execute("SELECT value FROM kv WHERE key='readiness_probe'").fetchone()
        return row is not None and row[0] == token

    # -- flows
    def _next_seq(self, table):
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM %s" % table).fetchone()
        return row[0]

    def flow_exists(self, fid):
        return bool(self._q("SELECT 1 FROM flows WHERE id=?", (fid,)))

    def insert_flow(self, flow, cid=None):
        m = flow.get("metadata", {})
        with self.lock:
            self.db.execute(
                "INSERT INTO flows (id, seq, owner, category, visibility, tags, doc, created_at, updated_at, ipfs_cid) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (flow["id"], self._next_seq("flows"), flow["owner"], m.get("category"), m.get("visibility"),
                 json.dumps(m.get("tags", [])), json.dumps(flow), flow.get("createdAt"), flow.get("updatedAt"), cid))
            self.db.execute("INSERT OR REPLACE INTO ownership (flow_id, owner, created, last_modified, history) "
                            "VALUES (?,?,?,?,?)", (flow["id"], flow["owner"], flow.get("createdAt"),
                                                   flow.get("updatedAt"), "[]"))

    def update_flow(self, flow, cid=None):
        m = flow.get("metadata", {})
        with self.lock:
            self.db.execute("UPDATE flows SET owner=?, category=?, visibility=?, tags=?, doc=?, created_at=?, "
                            "updated_at=?, ipfs_cid=? WHERE id=?",
                            (flow["owner"], m.get("category"), m.get("visibility"), json.dumps(m.get("tags", [])),
                             json.dumps(flow), flow.get("createdAt"), flow.get("updatedAt"), cid, flow["id"]))
            self.db.execute("UPDATE ownership SET owner=?, last_modified=? WHERE flow_id=?",
                            (flow["owner"], flow.get("updatedAt"), flow["id"]))

    def get_flow(self, fid):
        rows = self._q("SELECT doc FROM flows WHERE id=?", (fid,))
        return json.loads(rows[0][0]) if rows else None

    # -- flow definitions in IPFS (node/ipfs.py)
    def flow_cid(self, fid):
        rows = self._q("SELECT ipfs_cid FROM flows WHERE id=?", (fid,))
        return rows[0][0] if rows else None

    def flows_without_cid(self):
        return self._q("SELECT id, doc FROM flows WHERE ipfs_cid IS NULL ORDER BY seq")

    def flows_with_cid(self):
        return self._q("SELECT id, doc, ipfs_cid FROM flows WHERE ipfs_cid IS NOT NULL ORDER BY seq")

    def set_flow_cid(self, fid, cid, doc):
        """Set the CID of a row whose definition is still doc; False when the row changed or is gone."""
        return self._x("UPDATE flows SET ipfs_cid=? WHERE id=? AND doc=?", (cid, fid, doc)) == 1

    def cid_in_use(self, cid):
        return bool(self._q("SELECT 1 FROM flows WHERE ipfs_cid=?", (cid,)))

    def queue_unpin(self, cid):
        self._x("INSERT OR IGNORE INTO ipfs_unpin (cid) VALUES (?)", (cid,))

    def pending_unpins(self):
        return [r[0] for r in self._q("SELECT cid FROM ipfs_unpin ORDER BY rowid")]

    def unpin_done(self, cid):
        self._x("DELETE FROM ipfs_unpin WHERE cid=?", (cid,))

    def delete_flow(self, fid):
        with self.lock:
            self.db.execute("DELETE FROM flows WHERE id=?", (fid,))
            self.db.execute("DELETE FROM ownership WHERE flow_id=?", (fid,))
            self.db.execute("DELETE FROM permissions WHERE flow_id=?", (fid,))

    def list_flows(self, category=None, visibility=None, owner=None, tags=None):
        sql, args = "SELECT doc, tags FROM flows WHERE 1=1", []
        for col, val in (("category", category), ("visibility", visibility), ("owner", owner)):
            if val:
                sql += " AND %s=?" % col
                args.append(val)
        rows = self._q(sql + " ORDER BY seq", args)
        out = []
        for doc, t in rows:
            if tags and not set(tags) & set(json.loads(t or "[]")):
                continue
            out.append(json.loads(doc))
        return out

    def flow_counts(self):
        total = self._q("SELECT COUNT(*) FROM flows")[0][0]
        by_cat = dict(self._q("SELECT category, COUNT(*) FROM flows GROUP BY category"))
        by_vis = dict(self._q("SELECT visibility, COUNT(*) FROM flows GROUP BY visibility"))
        return total, by_cat, by_vis

    def get_ownership(self, fid):
        rows = self._q("SELECT owner, created, last_modified, history FROM ownership WHERE flow_id=?", (fid,))
        if not rows:
            return None
        o, c, lm, h = rows[0]
        return {"flowId": fid, "owner": o, "created": c, "lastModified": lm, "transferHistory": json.loads(h)}

    # -- permissions
    def grant(self, fid, entry):
        self._x("INSERT OR REPLACE INTO permissions (flow_id, granted_to, permission, doc) VALUES (?,?,?,?)",
                (fid, entry["grantedTo"], entry["permission"], json.dumps(entry)))

    def revoke(self, fid, who, perm):
        return self._x("DELETE FROM permissions WHERE flow_id=? AND granted_to=? AND permission=?", (fid, who, perm))

    def permissions(self, fid):
        return [json.loads(r[0]) for r in self._q("SELECT doc FROM permissions WHERE flow_id=? ORDER BY rowid",
                                                  (fid,))]

    # -- executions
    def save_execution(self, ex):
        self._x("INSERT OR REPLACE INTO executions (id, flow_id, status, triggered_by, start_ms, doc) "
                "VALUES (?,?,?,?,?,?)",
                (ex["executionId"], ex["flowId"], ex["status"], (ex.get("context") or {}).get("triggeredBy"),
                 ex["_startMs"], json.dumps({k: v for k, v in ex.items() if not k.startswith("_")})))

    def get_execution(self, eid):
        rows = self._q("SELECT doc FROM executions WHERE id=?", (eid,))
        return json.loads(rows[0][0]) if rows else None

    def list_executions(self, flow_id=None, status=None, triggered_by=None, limit=50, offset=0):
        where, args = " WHERE 1=1", []
        for col, val in (("flow_id", flow_id), ("status", status), ("triggered_by", triggered_by)):
            if val:
                where += " AND %s=?" % col
                args.append(val)
        total = self._q("SELECT COUNT(*) FROM executions" + where, args)[0][0]
        rows = self._q("SELECT doc FROM executions" + where + " ORDER BY start_ms DESC, rowid DESC LIMIT ? OFFSET ?",
                       args + [limit, offset])
        return [json.loads(r[0]) for r in rows], total

    def execution_counts(self):
        return dict(self._q("SELECT status, COUNT(*) FROM executions GROUP BY status"))

    def executions_total(self, flow_id=None):
        if flow_id:
            return self._q("SELECT COUNT(*) FROM executions WHERE flow_id=?", (flow_id,))[0][0]
        return self._q("SELECT COUNT(*) FROM executions")[0][0]

    def interrupt_stale(self, now_iso):
        """Executions left active by a previous process are marked failed."""
        rows = self._q("SELECT doc FROM executions WHERE status IN ('pending','running','paused')")
        for (doc,) in rows:
            ex = json.loads(doc)
            ex["status"] = "failed"
            ex["endTime"] = now_iso
            ex["error"] = {"type": "node_failure", "message": "Execution interrupted by node restart"}
            ex["_startMs"] = 0
            with self.lock:
                self.db.execute("UPDATE executions SET status='failed', doc=? WHERE id=?",
                                (json.dumps({k: v for k, v in ex.items() if not k.startswith("_")}),
                                 ex["executionId"]))
        return len(rows)

    def prune_executions(self, keep=5000):
        with self.lock:
            n = self.db.execute("SELECT COUNT(*) FROM executions WHERE status IN ('completed','failed','aborted')"
                                ).fetchone()[0]
            if n <= keep:
                return 0
            cur = self.db.execute(
                "DELETE FROM executions WHERE id IN (SELECT id FROM executions WHERE status IN "
                "('completed','failed','aborted') ORDER BY start_ms ASC LIMIT ?)", (n - keep,))
            return cur.rowcount

    # -- subnets / validators
    def save_subnet(self, subnet):
        with self.lock:
            row = self.db.execute("SELECT seq FROM subnets WHERE id=?", (subnet["id"],)).fetchone()
            seq = row[0] if row else self._next_seq("subnets")
            self.db.execute("INSERT OR REPLACE INTO subnets (id, seq, doc) VALUES (?,?,?)",
                            (subnet["id"], seq, json.dumps(subnet)))

    def get_subnet(self, sid):
        rows = self._q("SELECT doc FROM subnets WHERE id=?", (sid,))
        return json.loads(rows[0][0]) if rows else None

    def list_subnets(self):
        return [json.loads(r[0]) for r in self._q("SELECT doc FROM subnets ORDER BY seq")]

    def add_validator(self, sid, vid, doc):
        self._x("INSERT OR REPLACE INTO validators (subnet_id, validator_id, doc) VALUES (?,?,?)",
                (sid, vid, json.dumps(doc)))

    def validators(self, sid):
        return [json.loads(r[0]) for r in self._q("SELECT doc FROM validators WHERE subnet_id=? ORDER BY rowid",
                                                  (sid,))]

    # -- alert rules
    def save_alert(self, alert):
        with self.lock:
            self.db.execute("INSERT INTO alert_rules (id, seq, doc) VALUES (?,?,?)",
                            (alert["id"], self._next_seq("alert_rules"), json.dumps(alert)))

    def list_alerts(self):
        return [json.loads(r[0]) for r in self._q("SELECT doc FROM alert_rules ORDER BY seq")]

    def delete_alert(self, aid):
        return self._x("DELETE FROM alert_rules WHERE id=?", (aid,))

    # -- cache entries
    def load_cache(self):
        return {k: json.loads(d) for k, d in self._q("SELECT key, doc FROM cache_entries")}

    def save_cache(self, entries):
        with self.lock:
            self.db.execute("BEGIN")
            try:
                self.db.execute("DELETE FROM cache_entries")
                self.db.executemany("INSERT INTO cache_entries (key, doc) VALUES (?,?)",
                                    [(k, json.dumps(v)) for k, v in entries.items()])
                self.db.execute("COMMIT")
            except sqlite3.Error:
                self.db.execute("ROLLBACK")
                raise

    def kv_get(self, key, default=None):
        rows = self._q("SELECT value FROM kv WHERE key=?", (key,))
        return rows[0][0] if rows else default

    def kv_set(self, key, value):
        self._x("INSERT OR REPLACE INTO kv (key, value) VALUES (?,?)", (key, value))
