"""Notification sink of the lab: a webhook receiver (Slack-compatible answers) and an SMTP sink, one process.

    python -m qflow_lab.receiver --listen 127.0.0.1:19095 --smtp 127.0.0.1:19025 --store DIR

HTTP
  POST/PUT any path     recorded as one JSON line in DIR/webhook.jsonl; answers 200 ``ok`` (as Slack does).
                        A path starting with /fail answers 500 ``internal_error`` (still recorded, status 500).
  GET /messages         every recorded request, a JSON list (``?path=/hooks/x`` keeps one path).
  DELETE /messages      clear them.
  GET /mail             every received mail, a JSON list (``?rcpt=a@b`` keeps one recipient); DELETE /mail clears.
  GET /-/ready          200 ``ok`` (readiness for qflow-lab).
SMTP (``--smtp``, empty to disable)
  HELO/EHLO, AUTH PLAIN/LOGIN (any password; the user is recorded, never the password), MAIL FROM, RCPT TO, DATA,
  RSET, NOOP, QUIT. STARTTLS is not offered. A recipient starting with ``fail`` is refused (550). Each mail is one
  JSON line in DIR/mail.jsonl.

Standard library only; Authorization / Cookie headers are not recorded.
"""
import argparse
import base64
import email
import email.policy
import json
import os
import signal
import socketserver
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DEFAULT_LISTEN = "127.0.0.1:19095"
DEFAULT_SMTP = "127.0.0.1:19025"
DROPPED_HEADERS = ("authorization", "proxy-authorization", "cookie")
MAX_BODY = 1024 * 1024


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _addr(text):
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


class Store:
    """JSON-lines files in one directory, one lock."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.lock = threading.Lock()

    def path(self, kind):
        return os.path.join(self.dir, "%s.jsonl" % kind)

    def append(self, kind, record):
        line = json.dumps(record, sort_keys=True) + "\n"
        with self.lock, open(self.path(kind), "a", encoding="utf-8") as fh:
            fh.write(line)

    def read(self, kind):
        out = []
        with self.lock:
            try:
                with open(self.path(kind), encoding="utf-8") as fh:
                    for line in fh:
                        try:
                            out.append(json.loads(line))
                        except ValueError:
                            continue
            except FileNotFoundError:
                pass
        return out

    def clear(self, kind):
        with self.lock:
            try:
                os.remove(self.path(kind))
            except FileNotFoundError:
                pass


# ------------------------------------------------------------------ HTTP
def make_http_handler(store):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "qflow-lab-receiver"

        def log_message(self, fmt, *args):  # one line per request on stderr, without bodies (not readiness polls)
            if self.path == "/-/ready":
                return
            sys.stderr.write("%s %s\n" % (_now(), fmt % args))

        def _answer(self, status, body, ctype="text/plain; charset=utf-8"):
            data = body if isinstance(body, bytes) else body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _json(self, obj):
            self._answer(200, json.dumps(obj), "application/json")

        def _record(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, "payload_too_large")
                return
            raw = self.rfile.read(length) if length else b""
            text = raw.decode("utf-8", errors="replace")
            try:
                body = json.loads(text) if text.strip() else None
                parsed = True
            except ValueError:
                body, parsed = text, False
            path = urlsplit(self.path).path
            status = 500 if path.startswith("/fail") else 200
            store.append("webhook", {
                "time": _now(), "method": self.command, "path": path, "status": status,
                "headers": {k: v for k, v in self.headers.items() if k.lower() not in DROPPED_HEADERS},
                "json": parsed, "body": body,
            })
            if status == 500:
                self._answer(500, "internal_error")
            else:
                self._answer(200, "ok")

        def do_POST(self):  # noqa: N802
            parts = urlsplit(self.path)
            if parts.path in ("/messages", "/mail"):
                self._answer(405, "use GET or DELETE on %s" % parts.path)
                return
            self._record()

        do_PUT = do_POST

        def do_GET(self):  # noqa: N802
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if parts.path in ("/-/ready", "/health"):
                self._answer(200, "ok")
            elif parts.path == "/messages":
                items = store.read("webhook")
                if "path" in query:
                    items = [m for m in items if m.get("path") in query["path"]]
                self._json(items)
            elif parts.path == "/mail":
                items = store.read("mail")
                if "rcpt" in query:
                    items = [m for m in items if set(m.get("rcpt_to", [])) & set(query["rcpt"])]
                self._json(items)
            else:
                self._answer(404, "not_found: GET /messages, GET /mail, POST anything else")

        def do_DELETE(self):  # noqa: N802
            path = urlsplit(self.path).path
            if path == "/messages":
                store.clear("webhook")
                self._answer(200, "ok")
            elif path == "/mail":
                store.clear("mail")
                self._answer(200, "ok")
            else:
                self._answer(404, "not_found")

    return Handler


# ------------------------------------------------------------------ SMTP
class SMTPHandler(socketserver.StreamRequestHandler):
    """A minimal RFC 5321 server side: enough for smtplib (EHLO, AUTH, MAIL, RCPT, DATA, QUIT)."""

    timeout = 30

    def reply(self, line):
        self.wfile.write((line + "\r\n").encode("utf-8"))
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(65536)
        if not line:
            raise EOFError
        return line.decode("utf-8", errors="replace").rstrip("\r\n")

    def reset(self):
        self.mail_from = None
        self.rcpt_to = []

    def handle(self):
        self.helo = None
        self.auth_user = None
        self.reset()
        self.reply("220 %s qflow-lab SMTP sink" % self.server.hostname)
        try:
            while True:
                line = self.readline()
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                method = getattr(self, "smtp_" + verb, None)
                if method is None:
                    self.reply("502 5.5.2 command not implemented")
                    continue
                if method(arg.strip()) == "quit":
                    return
        except (EOFError, ConnectionError, OSError):
            return

    def smtp_HELO(self, arg):  # noqa: N802
        self.helo = arg
        self.reset()
        self.reply("250 %s" % self.server.hostname)

    def smtp_EHLO(self, arg):  # noqa: N802
        self.helo = arg
        self.reset()
        self.reply("250-%s" % self.server.hostname)
        self.reply("250-8BITMIME")
        self.reply("250-SIZE %d" % MAX_BODY)
        self.reply("250 AUTH PLAIN LOGIN")

    def smtp_AUTH(self, arg):  # noqa: N802
        mech, _, initial = arg.partition(" ")
        mech = mech.upper()
        try:
            if mech == "PLAIN":
                if not initial:
                    self.reply("334 ")
                    initial = self.readline()
                parts = base64.b64decode(initial).split(b"\0")
                user = parts[1].decode("utf-8", errors="replace") if len(parts) >= 3 else ""
            elif mech == "LOGIN":
                if initial:
                    user = base64.b64decode(initial).decode("utf-8", errors="replace")
                else:
                    self.reply("334 VXNlcm5hbWU6")
                    user = base64.b64decode(self.readline()).decode("utf-8", errors="replace")
                self.reply("334 UGFzc3dvcmQ6")
                self.readline()  # the password: read, never kept
            else:
                self.reply("504 5.5.4 unrecognized authentication type")
                return None
        except ValueError:
            self.reply("501 5.5.2 cannot decode the response")
            return None
        self.auth_user = user
        self.reply("235 2.7.0 authentication successful")
        return None

    def smtp_MAIL(self, arg):  # noqa: N802
        if not arg.upper().startswith("FROM:"):
            self.reply("501 5.5.4 syntax: MAIL FROM:<address>")
            return
        self.mail_from = arg[5:].strip().split(" ")[0].strip("<>")
        self.rcpt_to = []
        self.reply("250 2.1.0 ok")

    def smtp_RCPT(self, arg):  # noqa: N802
        if self.mail_from is None:
            self.reply("503 5.5.1 MAIL first")
            return
        if not arg.upper().startswith("TO:"):
            self.reply("501 5.5.4 syntax: RCPT TO:<address>")
            return
        rcpt = arg[3:].strip().split(" ")[0].strip("<>")
        if rcpt.lower().startswith("fail"):
            self.reply("550 5.1.1 <%s>: recipient rejected (qflow-lab: addresses starting with fail)" % rcpt)
            return
        self.rcpt_to.append(rcpt)
        self.reply("250 2.1.5 ok")

    def smtp_DATA(self, arg):  # noqa: N802
        if not self.rcpt_to:
            self.reply("503 5.5.1 RCPT first")
            return
        self.reply("354 end data with <CR><LF>.<CR><LF>")
        lines = []
        while True:
            line = self.rfile.readline(MAX_BODY)
            if not line:
                raise EOFError
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b".."):
                line = line[1:]
            lines.append(line)
        raw = b"".join(lines)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain", "html"))
        self.server.store.append("mail", {
            "time": _now(), "peer": self.client_address[0], "helo": self.helo, "auth_user": self.auth_user,
            "mail_from": self.mail_from, "rcpt_to": list(self.rcpt_to),
            "subject": msg.get("Subject"), "from": msg.get("From"), "to": msg.get("To"),
            "headers": {k: str(v) for k, v in msg.items()},
            "body": body.get_content() if body is not None else raw.decode("utf-8", errors="replace"),
            "size": len(raw),
        })
        self.reset()
        self.reply("250 2.0.0 ok: queued")

    def smtp_RSET(self, arg):  # noqa: N802
        self.reset()
        self.reply("250 2.0.0 ok")

    def smtp_NOOP(self, arg):  # noqa: N802
        self.reply("250 2.0.0 ok")

    def smtp_QUIT(self, arg):  # noqa: N802
        self.reply("221 2.0.0 bye")
        return "quit"


class SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, store, hostname="qflow-lab"):
        self.store = store
        self.hostname = hostname
        super().__init__(addr, SMTPHandler)


# ------------------------------------------------------------------ process
class Receiver:
    """Both servers; start() returns (http_port, smtp_port or None) - ports may be 0 for tests."""

    def __init__(self, store_dir, listen=DEFAULT_LISTEN, smtp=DEFAULT_SMTP):
        self.store = Store(store_dir)
        self.httpd = ThreadingHTTPServer(_addr(listen), make_http_handler(self.store))
        self.httpd.daemon_threads = True
        self.smtpd = SMTPServer(_addr(smtp), self.store) if smtp else None
        self.threads = []

    @property
    def http_port(self):
        return self.httpd.server_address[1]

    @property
    def smtp_port(self):
        return self.smtpd.server_address[1] if self.smtpd else None

    def start(self):
        for server in (self.httpd, self.smtpd):
            if server is not None:
                t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
                t.start()
                self.threads.append(t)
        return self.http_port, self.smtp_port

    def stop(self):
        for server in (self.httpd, self.smtpd):
            if server is not None:
                server.shutdown()
                server.server_close()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m qflow_lab.receiver", description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default=DEFAULT_LISTEN, help="HTTP host:port (default %s)" % DEFAULT_LISTEN)
    ap.add_argument("--smtp", default=DEFAULT_SMTP, help="SMTP host:port, empty to disable (default %s)" % DEFAULT_SMTP)
    ap.add_argument("--store", required=True, help="directory of webhook.jsonl and mail.jsonl")
    args = ap.parse_args(argv)
    receiver = Receiver(args.store, args.listen, args.smtp)
    http_port, smtp_port = receiver.start()
    sys.stderr.write("%s receiver: http %s:%d, smtp %s, store %s\n" % (
        _now(), receiver.httpd.server_address[0], http_port,
        "%s:%d" % (receiver.smtpd.server_address[0], smtp_port) if smtp_port else "off", args.store))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    while not stop.wait(0.5):
        pass
    receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
