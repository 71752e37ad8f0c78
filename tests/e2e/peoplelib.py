"""Helpers of the people and MFA tests (test_people.py, test_mfa.py): a server with its own
[session] settings, a signed-in person as a real HTTPS client with its cookie jar, TOTP codes
from the `oathtool` CLI (Debian's oath-toolkit), and MFA enrolment."""

import json
import subprocess
import time

import dtmtest as T


def start_server(tmp_path_factory, conf, name="people"):
    """A fresh data dir with `conf` appended to its dtm.conf, served over HTTP and HTTPS."""
    root = tmp_path_factory.mktemp(name)
    data_dir = root / "data"
    admin = T.dtm_init(str(data_dir))
    with open(data_dir / "dtm.conf", "a") as f:
        f.write(conf)
    srv = T.DtmServer(data_dir, log_path=root / "serve.stderr.log")
    srv.admin = admin
    srv.start()
    return srv


def add_user(srv, username, role):
    """`dtm user add`; returns the printed password."""
    p = T.run_dtm("user", "add", "--data-dir", srv.data_dir, "--username", username,
                  "--role", role, "--json")
    info = json.loads(p.stdout)
    assert info["username"] == username and info["role"] == role, info
    return info["password"]


def totp(secret, offset=0):
    """The code oathtool computes for now + offset seconds."""
    args = ["oathtool", "--totp", "-b", secret]
    if offset:
        args += ["-N", f"now + {offset} seconds"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()


class Person:
    """A person using the API from a browser-like client over HTTPS (Secure cookies)."""

    def __init__(self, srv, username, password, lang="en"):
        self.srv = srv
        self.username = username
        self.password = password
        self.s = T.new_session()
        self.s.headers["Accept-Language"] = lang
        self.csrf = None
        self.me = None

    def url(self, path):
        return self.srv.https_url + path

    def login(self, totp=None, password=None, **extra):
        body = {"username": self.username, "password": password or self.password}
        if totp is not None:
            body["totp"] = totp
        body.update(extra)
        r = self.s.post(self.url("/api/v1/session"), json=body, timeout=T.TIMEOUT)
        if r.status_code == 201:
            self.me = r.json()
            self.csrf = self.me["csrf_token"]
        return r

    def login_ok(self, **kw):
        """A login that must succeed, once the progressive delay of an earlier failure of the
        same name (429 login_delayed + Retry-After) has passed."""
        for _ in range(5):
            r = self.login(**kw)
            if r.status_code != 429 or "login_delayed" not in r.text:
                break
            time.sleep(int(r.headers["Retry-After"]))
        assert r.status_code == 201, r.text
        return r

    def req(self, method, path, csrf=True, headers=None, **kw):
        h = dict(headers or {})
        if csrf and self.csrf and method not in ("GET", "HEAD"):
            h["X-CSRF-Token"] = self.csrf
        kw.setdefault("timeout", T.TIMEOUT)
        return self.s.request(method, self.url(path), headers=h, **kw)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, **kw):
        return self.req("POST", path, **kw)


def enrol(person):
    """Enrols TOTP for a signed-in person; returns (secret, recovery codes, step offset used).
    The confirmation uses the current code, so the next login should use the next step's."""
    r = person.post("/api/v1/session/mfa")
    assert r.status_code == 201, r.text
    body = r.json()
    secret = body["secret"]
    r = person.post("/api/v1/session/mfa/confirm", json={"totp": totp(secret)})
    assert r.status_code == 200, r.text
    codes = r.json()["recovery_codes"]
    assert len(codes) == 10
    return secret, codes, body


def audit_actions(srv, action=None, until=None, timeout=10):
    """Audit entries read with `dtm audit list` (as JSON objects). The server appends through
    its writer, a moment after the request: the list is read again until until(rows) holds
    (default: any row) or timeout seconds passed."""
    args = ["audit", "list", "--data-dir", srv.data_dir, "--format", "json"]
    if action:
        args += ["--action", action]
    until = until or bool
    deadline = time.monotonic() + timeout
    while True:
        rows = json.loads(T.run_dtm(*args).stdout)
        if until(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)
