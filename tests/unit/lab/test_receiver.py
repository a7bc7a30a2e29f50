"""The lab's notification sink (qflow_lab.receiver): webhook recording, /fail, /messages, SMTP sink, /mail."""
import json
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage

import pytest

from qflow_lab import receiver as rcv
from qflow_lab import render

from _lab_helpers import request


@pytest.fixture
def sink(tmp_path):
    r = rcv.Receiver(str(tmp_path / "store"), listen="127.0.0.1:0", smtp="127.0.0.1:0")
    http_port, smtp_port = r.start()
    r.url = "http://127.0.0.1:%d" % http_port
    r.store_dir = tmp_path / "store"
    yield r
    r.stop()


def messages(sink, query=""):
    status, _, body = request(sink.url, "GET", "/messages" + query)
    assert status == 200
    return json.loads(body)


def test_post_is_recorded_and_answered_ok(sink):
    status, headers, body = request(sink.url, "POST", "/hooks/qflow/T0/B0/x", body={"text": "hi"},
                                    token="must-not-be-recorded", headers={"X-Trace": "t1"})
    assert (status, body) == (200, b"ok") and headers["Content-Type"].startswith("text/plain")
    got = messages(sink)
    assert len(got) == 1
    m = got[0]
    assert m["path"] == "/hooks/qflow/T0/B0/x" and m["method"] == "POST" and m["status"] == 200
    assert m["json"] is True and m["body"] == {"text": "hi"} and m["headers"]["X-Trace"] == "t1"
    assert "Authorization" not in m["headers"] and m["time"].endswith("Z")
    lines = (sink.store_dir / "webhook.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0]) == m
    assert "must-not-be-recorded" not in (sink.store_dir / "webhook.jsonl").read_text()


def test_non_json_body_kept_as_text(sink):
    status, _, _ = request(sink.url, "POST", "/x", raw=b"payload=not-json")
    assert status == 200
    m = messages(sink)[0]
    assert m["json"] is False and m["body"] == "payload=not-json"


def test_fail_path_answers_500_and_is_recorded(sink):
    status, _, body = request(sink.url, "POST", "/fail/hooks/x", body={"text": "x"})
    assert (status, body) == (500, b"internal_error")
    assert [m["status"] for m in messages(sink)] == [500]


def test_filter_and_clear(sink):
    for path in ("/a", "/b", "/a"):
        request(sink.url, "POST", path, body={"p": path})
    assert [m["body"]["p"] for m in messages(sink, "?path=/a")] == ["/a", "/a"]
    assert len(messages(sink)) == 3
    status, _, _ = request(sink.url, "DELETE", "/messages")
    assert status == 200 and messages(sink) == []
    assert request(sink.url, "POST", "/messages", body={})[0] == 405
    assert request(sink.url, "GET", "/nope")[0] == 404
    assert request(sink.url, "GET", "/-/ready")[:3:2] == (200, b"ok")


def test_smtp_sink_records_mail(sink):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "qflow@example.net", "ops@example.net", "[qflow.ops] INFO: hi"
    msg.set_content("line 1\n.leading dot\n")
    with smtplib.SMTP("127.0.0.1", sink.smtp_port, timeout=5) as smtp:
        smtp.login("qflow-ops", "pw-never-stored")
        refused = smtp.send_message(msg, to_addrs=["ops@example.net", "fail@example.net"])
    assert list(refused) == ["fail@example.net"] and refused["fail@example.net"][0] == 550
    status, _, body = request(sink.url, "GET", "/mail")
    mails = json.loads(body)
    assert status == 200 and len(mails) == 1
    m = mails[0]
    assert m["mail_from"] == "qflow@example.net" and m["rcpt_to"] == ["ops@example.net"]
    assert m["subject"] == "[qflow.ops] INFO: hi" and m["auth_user"] == "qflow-ops"
    assert m["body"].replace("\r\n", "\n") == "line 1\n.leading dot\n"
    assert "pw-never-stored" not in (sink.store_dir / "mail.jsonl").read_text()
    assert len(json.loads(request(sink.url, "GET", "/mail?rcpt=other@example.net")[2])) == 0
    assert request(sink.url, "DELETE", "/mail")[0] == 200
    assert json.loads(request(sink.url, "GET", "/mail")[2]) == []


def test_smtp_all_refused_and_auth_login(sink):
    with smtplib.SMTP("127.0.0.1", sink.smtp_port, timeout=5) as smtp:
        smtp.ehlo()
        code, _ = smtp.docmd("AUTH", "LOGIN")
        assert code == 334
        assert smtp.docmd("cWZsb3c=")[0] == 334  # "qflow"
        assert smtp.docmd("cHc=")[0] == 235
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("a@example.net", ["fail-1@example.net"], "Subject: x\r\n\r\nbody\r\n")
    assert json.loads(request(sink.url, "GET", "/mail")[2]) == []


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_main_process_serves_and_stops_on_term(tmp_path):
    hp, sp = _free_port(), _free_port()
    base = "http://127.0.0.1:%d" % hp
    proc = subprocess.Popen([sys.executable, "-m", "qflow_lab.receiver", "--listen", "127.0.0.1:%d" % hp,
                             "--smtp", "127.0.0.1:%d" % sp, "--store", str(tmp_path / "s")],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if request(base, "GET", "/-/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.1)
        assert request(base, "POST", "/hooks/qflow", body={"text": "x"})[0] == 200
        assert (tmp_path / "s" / "webhook.jsonl").exists()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_supervisord_program_and_addresses():
    conf = render.supervisord_conf("/lab", "/py", "/src", 1, 2.0)
    assert "[program:receiver]" in conf
    assert ("command=/py -m qflow_lab.receiver --listen 127.0.0.1:19095 --smtp 127.0.0.1:19025 "
            "--store /lab/receiver") in conf
    assert 'environment=PYTHONPATH="/src",PYTHONUNBUFFERED="1"' in conf
    assert rcv.DEFAULT_LISTEN == render.RECEIVER_ADDR and rcv.DEFAULT_SMTP == render.RECEIVER_SMTP_ADDR
