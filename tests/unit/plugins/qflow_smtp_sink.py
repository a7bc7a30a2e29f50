# -*- coding: utf-8 -*-
# Copyright: qflow.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helper: a tiny SMTP sink on 127.0.0.1 (EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import email
import email.policy
import socketserver
import threading

import pytest


class SmtpSink(object):
    """``messages``: dicts (mail_from, rcpt_to, auth, message). ``reject_rcpt``: recipients answered 550.
    ``auth_ok``: False answers 535 to AUTH."""

    def __init__(self, reject_rcpt=(), auth_ok=True):
        self.messages = []
        self.logins = []
        self.reject_rcpt = set(reject_rcpt)
        self.auth_ok = auth_ok
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 10

            def reply(self, line):
                self.wfile.write((line + '\r\n').encode('utf-8'))

            def handle(self):
                mail_from, rcpts, auth = None, [], None
                self.reply('220 sink ready')
                for raw in iter(lambda: self.rfile.readline(65536), b''):
                    line = raw.decode('utf-8').rstrip('\r\n')
                    verb, dummy, arg = line.partition(' ')
                    verb = verb.upper()
                    if verb == 'EHLO':
                        self.reply('250-sink')
                        self.reply('250 AUTH PLAIN')
                    elif verb == 'HELO':
                        self.reply('250 sink')
                    elif verb == 'AUTH':
                        parts = base64.b64decode(arg.split(' ', 1)[1]).split(b'\0')
                        sink.logins.append((parts[1].decode(), parts[2].decode()))
                        if sink.auth_ok:
                            auth = parts[1].decode()
                            self.reply('235 ok')
                        else:
                            self.reply('535 5.7.8 authentication failed')
                    elif verb == 'MAIL':
                        mail_from, rcpts = arg[5:].strip('<> '), []
                        self.reply('250 ok')
                    elif verb == 'RCPT':
                        rcpt = arg[3:].strip('<> ')
                        if rcpt in sink.reject_rcpt:
                            self.reply('550 5.1.1 no such user')
                        else:
                            rcpts.append(rcpt)
                            self.reply('250 ok')
                    elif verb == 'DATA':
                        self.reply('354 go on')
                        data = []
                        for chunk in iter(lambda: self.rfile.readline(1 << 20), b''):
                            if chunk == b'.\r\n':
                                break
                            data.append(chunk[1:] if chunk.startswith(b'..') else chunk)
                        msg = email.message_from_bytes(b''.join(data), policy=email.policy.default)
                        sink.messages.append(dict(mail_from=mail_from, rcpt_to=rcpts, auth=auth, message=msg))
                        self.reply('250 queued')
                    elif verb in ('RSET', 'NOOP'):
                        self.reply('250 ok')
                    elif verb == 'QUIT':
                        self.reply('221 bye')
                        return
                    else:
                        self.reply('502 not implemented')

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(('127.0.0.1', 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.05})
        self.thread.daemon = True
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def smtp_sink():
    sinks = []

    def make(**kwargs):
        sink = SmtpSink(**kwargs)
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.close()
