"""Real receivers for the alert channels (T5.3), used by test_alerts.py and test_vulns.py:

- WebhookSink: an http.server on 127.0.0.1 that keeps every POST (headers, body) and answers
  with the statuses it is told (e.g. 500 first, then 200);
- SmtpSink: an aiosmtpd SMTP server that requires STARTTLS, with a throw-away certificate made
  by the openssl CLI, keeping every message;
- SyslogSink: a UDP socket keeping every datagram.

All of them run in threads of the test process and are closed by .close().
"""

import hashlib
import hmac
import http.server
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class WebhookSink:
    def __init__(self, statuses=(), tls_cert=None, tls_key=None):
        self.statuses = list(statuses)  # answered in order, then 200
        self.requests = []  # (path, headers dict, body bytes, status answered)
        self.lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with sink.lock:
                    status = sink.statuses.pop(0) if sink.statuses else 200
                    sink.requests.append((self.path, dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        if tls_cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(tls_cert), str(tls_key))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.url = f"https://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def received(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def verify_signature(secret, headers, body):
    """X-DTM-Signature: sha256=<hex HMAC-SHA-256 of the body under the channel's secret>."""
    sig = {k.lower(): v for k, v in headers.items()}.get("x-dtm-signature", "")
    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig, want)


def make_cert(directory):
    """A throw-away self-signed certificate for 127.0.0.1 and localhost (openssl CLI)."""
    d = Path(directory)
    cert, key = d / "smtp.crt", d / "smtp.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class _Keep:
    def __init__(self, sink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        with self.sink.lock:
            self.sink.messages.append({
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "data": envelope.content if isinstance(envelope.content, bytes)
                else envelope.content.encode(),
                "tls": session.ssl is not None,
            })
        return "250 OK"


class SmtpSink:
    """SMTP on 127.0.0.1 that refuses MAIL before STARTTLS (require_starttls); with auth
    (user, password), also before a successful AUTH (after TLS only)."""

    def __init__(self, directory, auth=None):
        self.cert, self.key = make_cert(directory)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        self.messages = []
        self.lock = threading.Lock()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.logins = []
        kw = {}
        if auth:
            def authenticator(server, session, envelope, mechanism, data):
                ok = (isinstance(data, LoginPassword) and data.login == auth[0].encode()
                      and data.password == auth[1].encode())
                with self.lock:
                    self.logins.append((mechanism, data.login if ok else None, ok))
                return AuthResult(success=ok)
            kw = {"authenticator": authenticator, "auth_required": True,
                  "auth_require_tls": True}
        self.controller = Controller(_Keep(self), hostname="127.0.0.1", port=self.port,
                                     tls_context=ctx, require_starttls=True, **kw)
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{self.port}"

    def received(self):
        with self.lock:
            return list(self.messages)

    def close(self):
        self.controller.stop()


class SyslogSink:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.datagrams = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.datagrams.append(data)

    def received(self):
        with self.lock:
            return list(self.datagrams)

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


def channels_conf(hook=None, secret=None, smtp=None, syslog=None, check_interval=1,
                  retry_initial=1, suppress_minutes=30, max_attempts=4, extra="",
                  hook_ca=None, smtp_login=None):
    """The dtm.conf lines of an [alert] section and a channel per sink given."""
    names, out = [], []
    if hook is not None:
        names.append("hook")
        out.append(f"[channel.hook]\ntype = webhook\nurl = {hook.url}\nsecret = {secret}\n"
                   "timeout = 5\n" + (f"ca_file = {hook_ca}\n" if hook_ca else ""))
    if smtp is not None:
        names.append("mail")
        out.append(f"[channel.mail]\ntype = email\nurl = {smtp.url}\nca_file = {smtp.cert}\n"
                   "from = dtm-alerts@example.vn\nto = soc@example.vn, oncall@example.vn\n"
                   "timeout = 10\n" + (f"username = {smtp_login[0]}\npassword = {smtp_login[1]}\n"
                                       if smtp_login else ""))
    if syslog is not None:
        names.append("siem")
        out.append(f"[channel.siem]\ntype = syslog\naddress = {syslog.address}\n")
    head = (f"\n[alert]\ncheck_interval = {check_interval}\nretry_initial = {retry_initial}\n"
            f"suppress_minutes = {suppress_minutes}\nmax_attempts = {max_attempts}\n"
            f"channels = {', '.join(names)}\n{extra}\n")
    return head + "\n".join(out)


def append_conf(data_dir, text):
    with open(Path(data_dir) / "dtm.conf", "a", encoding="utf-8") as f:
        f.write("\n" + text + "\n")


def wait_until(pred, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
