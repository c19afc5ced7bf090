#!/usr/bin/python3
"""Local receivers for herald's alert actions (tests/integration/herald_alerts.sh):

- an SMTP server (aiosmtpd) that requires STARTTLS with a throwaway certificate and AUTH with one
  user, writing each accepted message to DIR/mail/N.eml;
- a plain-HTTP webhook receiver writing each POST body to DIR/hook/N.json (503 for the first
  --hook-fail requests, to exercise herald's retries).

Files appear atomically (written, then renamed). DIR/ready is written once both listen.
"""
import argparse
import http.server
import itertools
import os
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

ap = argparse.ArgumentParser()
ap.add_argument("--dir", required=True)
ap.add_argument("--smtp-port", type=int, required=True)
ap.add_argument("--hook-port", type=int, required=True)
ap.add_argument("--cert", required=True)
ap.add_argument("--key", required=True)
ap.add_argument("--user", required=True)
ap.add_argument("--password", required=True)
ap.add_argument("--hook-fail", type=int, default=0)
a = ap.parse_args()
os.makedirs(os.path.join(a.dir, "mail"), exist_ok=True)
os.makedirs(os.path.join(a.dir, "hook"), exist_ok=True)
counter = itertools.count(1)
lock = threading.Lock()


def store(kind, ext, data):
    with lock:
        n = next(counter)
    path = os.path.join(a.dir, kind, "%03d.%s" % (n, ext))
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.rename(path + ".tmp", path)


class Handler:
    async def handle_DATA(self, server, session, envelope):
        head = "X-Test-Envelope: from=%s to=%s tls=%s auth=%s\r\n" % (
            envelope.mail_from, ",".join(envelope.rcpt_tos), session.ssl is not None,
            session.authenticated)
        store("mail", "eml", head.encode() + envelope.original_content)
        return "250 OK"


def authenticate(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login.decode() == a.user and data.password.decode() == a.password
    return AuthResult(success=ok)


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(a.cert, a.key)
smtp = Controller(Handler(), hostname="127.0.0.1", port=a.smtp_port, server_hostname="localhost",
                  tls_context=ctx, require_starttls=True, authenticator=authenticate, auth_required=True,
                  auth_require_tls=True)
smtp.start()

failures = [a.hook_fail]


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        if failures[0] > 0:
            failures[0] -= 1
            self.send_response(503)
            self.end_headers()
            return
        store("hook", "json", body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


httpd = http.server.ThreadingHTTPServer(("127.0.0.1", a.hook_port), Hook)
with open(os.path.join(a.dir, "ready"), "w") as f:
    f.write("ready\n")
try:
    httpd.serve_forever()
finally:
    smtp.stop()
