"""Flow definitions in IPFS (contract §2.3, extension): a small client of the IPFS RPC API (kubo / js-ipfs) and the
sync thread that keeps every flows row's definition added and pinned.

Only flow definitions go to IPFS, never executions. The API handlers add a flow synchronously (short timeout); when
the daemon does not answer the row keeps ``ipfs_cid`` NULL and the sync thread adds it later, so the node never
waits on IPFS to start or to serve reads. CIDs no longer referenced (updated or deleted flows) are unpinned, also
through a retried queue.
"""
import json
import threading
import time
import urllib.error
import urllib.request
import uuid

ADD_QUERY = "pin=true&cid-version=1&cid-base=base32&quieter=true"
SYNC_INTERVAL = 2.0
RECONCILE_INTERVAL = 60.0


class IpfsError(Exception):
    pass


def canonical(flow):
    """The bytes stored in IPFS for a flow definition: sorted keys, no spaces, UTF-8."""
    return json.dumps(flow, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class IpfsClient:
    """POST-only client (kubo and js-ipfs refuse GET on the RPC API)."""

    def __init__(self, api_url, timeout=3.0):
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout

    def _post(self, path, query="", body=None, content_type=None, timeout=None):
        url = "%s/api/v0/%s%s" % (self.api_url, path, ("?" + query) if query else "")
        req = urllib.request.Request(url, data=body if body is not None else b"", method="POST")
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            raise IpfsError("IPFS %s answered HTTP %s: %s" % (path, e.code, e.read()[:200]))
        except Exception as e:  # noqa: BLE001 - connection refused, timeout, reset
            raise IpfsError("IPFS %s at %s: %s" % (path, self.api_url, getattr(e, "reason", e)))

    def version(self, timeout=None):
        return json.loads(self._post("version", timeout=timeout))

    def add(self, data, name="flow.json"):
        """Add and pin bytes; return the CID (v1, base32)."""
        boundary = uuid.uuid4().hex
        body = (("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n" % (boundary, name)).encode()
                + data + ("\r\n--%s--\r\n" % boundary).encode())
        out = self._post("add", ADD_QUERY, body, "multipart/form-data; boundary=%s" % boundary)
        lines = [json.loads(x) for x in out.splitlines() if x.strip()]
        if not lines or "Hash" not in lines[-1]:
            raise IpfsError("IPFS add answered without a Hash: %r" % out[:200])
        return lines[-1]["Hash"]

    def pin_rm(self, cid):
        try:
            self._post("pin/rm", "arg=%s" % cid)
        except IpfsError as e:
            if "not pinned" not in str(e):
                raise

    def is_pinned(self, cid):
        """Whether cid is pinned (recursively); asks about that CID, as pin/ls spells CIDs in its own base."""
        try:
            keys = json.loads(self._post("pin/ls", "type=recursive&arg=%s" % cid)).get("Keys", {})
        except IpfsError as e:
            if "not pinned" in str(e):
                return False
            raise
        return bool(keys)


class FlowSync:
    """Adds flows rows without a CID, unpins CIDs queued by updates/deletes, and re-adds a row's definition when its
    CID is no longer pinned (a wiped or restored repo). Runs in its own thread."""

    def __init__(self, node, client):
        self.node = node
        self.client = client
        self.wake = threading.Event()
        self.last_reconcile = None

    def store_flow(self, flow):
        """Add a flow definition now (API handlers). Return its CID, or None when IPFS does not answer (the sync
        thread retries)."""
        try:
            cid = self.client.add(canonical(flow), "%s.json" % flow["id"])
        except IpfsError as e:
            self.node.log.warn("storage", "IPFS add of flow %s deferred: %s" % (flow["id"], e), flowId=flow["id"])
            self.wake.set()
            return None
        return cid

    def release(self, cid):
        """Queue a CID for unpinning (only if no flows row still references it)."""
        if cid:
            self.node.store.queue_unpin(cid)
            self.wake.set()

    def run_once(self, reconcile=False):
        store = self.node.store
        for fid, doc in store.flows_without_cid():
            flow = json.loads(doc)
            cid = self.client.add(canonical(flow), "%s.json" % fid)
            if not store.set_flow_cid(fid, cid, doc):
                self.release(cid)  # the row changed meanwhile; its new version gets its own CID
        for cid in store.pending_unpins():
            if not store.cid_in_use(cid):
                self.client.pin_rm(cid)
            store.unpin_done(cid)
        if reconcile:
            for fid, doc, cid in store.flows_with_cid():
                if not self.client.is_pinned(cid):
                    again = self.client.add(canonical(json.loads(doc)), "%s.json" % fid)
                    if again != cid:
                        store.set_flow_cid(fid, again, doc)
                        self.node.log.warn("storage", "Flow %s re-added to IPFS under a new CID" % fid, flowId=fid)

    def run(self, stop):
        failing = False
        while not stop.is_set():
            now = time.monotonic()
            reconcile = self.last_reconcile is None or now - self.last_reconcile >= RECONCILE_INTERVAL
            try:
                self.run_once(reconcile)
                if reconcile:
                    self.last_reconcile = now
                if failing:
                    self.node.log.info("storage", "IPFS reachable again at %s" % self.client.api_url)
                failing = False
            except IpfsError as e:
                if not failing:
                    self.node.log.warn("storage", "IPFS sync waiting for the daemon: %s" % e)
                failing = True
            self.wake.wait(SYNC_INTERVAL)
            self.wake.clear()
