"""MFA (T4.3; issue 5 item 2): TOTP per RFC 6238 interoperable with authenticator apps — codes
computed by `oathtool` — with an otpauth:// URI and a QR code (SVG and PNG), the seed sealed
at rest, codes usable once, ten one-time recovery codes, admins blocked from every admin action
until enrolled, and `dtm user reset-mfa`. All of it audited."""

import base64
import re
import struct
import time
import zlib

import pytest

import dtmtest as T
import peoplelib as P

CONF = """
[session]
lockout_after = 20
ip_lockout_after = 1000
"""

pytestmark = pytest.mark.owns_server


@pytest.fixture(scope="module")
def srv(dtm_bin, tmp_path_factory):
    if T.EXTERNAL_URL:
        pytest.skip("needs a server with its own [session] settings")
    s = P.start_server(tmp_path_factory, CONF, name="mfa")
    try:
        yield s
    finally:
        rc = s.stop()
        assert rc == 0, f"dtm serve exited with {rc}; log:\n{s.log_tail()}"


def login(p, **kw):
    """A login that waits out the progressive delay of earlier failures."""
    for _ in range(10):
        r = p.login(**kw)
        if r.status_code != 429:
            return r
        time.sleep(int(r.headers["Retry-After"]))
    return r


def png_size(data):
    """Checks a PNG's structure and CRCs; returns (width, height) after inflating IDAT."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(kind + chunk) == crc, kind
        if kind == b"IHDR":
            size = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    w, h = size
    assert len(zlib.decompress(idat)) == h * (w + 1)
    return size


def test_enrolment_secret_uri_qr_and_sealed_seed(srv):
    name = "mfa.admin"
    pw = P.add_user(srv, name, "admin")
    p = P.Person(srv, name, pw)
    r = p.login_ok()
    assert r.json()["mfa_required"] is True
    # an admin without MFA: every admin action refused, with a way out
    body = T.assert_problem(p.get("/api/v1/users"), 403)
    assert body["type"] == "urn:dtm:problem:mfa_required"
    assert "/api/v1/session/mfa" in body["detail"]
    T.assert_problem(p.get("/api/v1/audit"), 403)
    T.assert_problem(p.get("/api/v1/stats/transactions"), 403)
    assert p.get("/api/v1/session").status_code == 200
    T.assert_problem(p.get("/api/v1/session/mfa/qr.png"), 409)  # not started
    # start
    r = p.post("/api/v1/session/mfa")
    assert r.status_code == 201, r.text
    e = r.json()
    secret = e["secret"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert e["otpauth_uri"] == (f"otpauth://totp/DTM:{name}?secret={secret}&issuer=DTM"
                                "&algorithm=SHA1&digits=6&period=30")
    assert e["qr_svg"].startswith("<svg") and e["qr_svg"].endswith("</svg>")
    r = p.get("/api/v1/session/mfa/qr.png")
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    w, h = png_size(r.content)
    assert w == h and w >= 21 * 4
    # the seed is sealed at rest: neither its bytes nor its base32 are in the database
    raw = base64.b32decode(secret)
    con = T.open_db(srv.data_dir)
    try:
        blob, = con.execute("SELECT mfa_secret FROM users WHERE username=?", (name,)).fetchone()
        keys = T.data_keys(srv.data_dir, con)  # T4.2: sealed under a data key
    finally:
        con.close()
    assert len(blob) == 33 + len(raw) and raw not in bytes(blob)
    assert T.open_sealed(keys, blob, b"dtm totp seed\n" + name.encode()) == raw
    db = T.store_bytes(srv.data_dir)  # dtm.db, or PostgreSQL's files and WAL
    assert raw not in db and secret.encode() not in db
    # a wrong code does not confirm; the right one does, once
    bad = "000000" if P.totp(secret) != "000000" else "111111"
    r = p.post("/api/v1/session/mfa/confirm", json={"totp": bad})
    assert T.assert_problem(r, 400)["type"] == "urn:dtm:problem:mfa_failed"
    r = p.post("/api/v1/session/mfa/confirm", json={"totp": P.totp(secret)})
    assert r.status_code == 200, r.text
    codes = r.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    # now an admin: the same session goes on
    assert p.get("/api/v1/users").status_code == 200
    assert p.get("/api/v1/session").json()["mfa_enrolled"] is True
    T.assert_problem(p.get("/api/v1/session/mfa/qr.png"), 409)  # the seed is not shown again
    T.assert_problem(p.post("/api/v1/session/mfa"), 409)
    con = T.open_db(srv.data_dir)
    try:
        stored = [bytes(h) for h, in con.execute(
            "SELECT hash FROM mfa_recovery WHERE username=?", (name,))]
    finally:
        con.close()
    assert len(stored) == 10 and all(c.encode() not in db for c in codes)
    want = {"mfa.enrolment_started", "mfa.confirm_failed", "mfa.enrolled"}

    def done(rows):
        return want <= {e["action"] for e in rows if e["actor"] == name}
    assert done(P.audit_actions(srv, until=done))
    assert secret not in srv.log_text()


def test_login_needs_a_code_used_once(srv):
    name = "mfa.operator"
    pw = P.add_user(srv, name, "operator")
    p = P.Person(srv, name, pw)
    p.login_ok()
    secret, codes, _ = P.enrol(p)
    confirm_code = P.totp(secret)
    assert p.req("DELETE", "/api/v1/session").status_code == 204
    q = P.Person(srv, name, pw)
    body = T.assert_problem(login(q), 401)
    assert body["type"] == "urn:dtm:problem:totp_required"
    body = T.assert_problem(login(q, password="wrong password!"), 401)
    assert body["type"] == "urn:dtm:problem:login_failed"  # the password first
    wrong = "000000" if confirm_code != "000000" else "111111"
    T.assert_problem(login(q, totp=wrong), 401)
    # the code used to confirm: used already
    body = T.assert_problem(login(q, totp=confirm_code), 401)
    assert body["type"] == "urn:dtm:problem:mfa_failed"
    # the next step's code (±1 step is accepted), once
    nxt = P.totp(secret, 30)
    r = login(q, totp=nxt)
    assert r.status_code == 201, r.text
    assert q.get("/api/v1/session").json()["mfa_enrolled"] is True
    T.assert_problem(login(P.Person(srv, name, pw), totp=nxt), 401)
    def reasons(rows):
        return {e["detail"]["reason"] for e in rows if e["actor"] == name}
    assert {"totp_reused", "wrong_totp"} <= reasons(P.audit_actions(
        srv, "login.failed", until=lambda rows: {"totp_reused", "wrong_totp"} <= reasons(rows)))

    def with_totp(rows):
        return any(e["actor"] == name and e["detail"]["mfa"] == "totp" for e in rows)
    assert with_totp(P.audit_actions(srv, "login.succeeded", until=with_totp))


def test_recovery_codes_work_once(srv):
    name = "mfa.analyst"
    pw = P.add_user(srv, name, "analyst")
    p = P.Person(srv, name, pw)
    p.login_ok()
    _, codes, _ = P.enrol(p)
    q = P.Person(srv, name, pw)
    r = login(q, totp=codes[0])
    assert r.status_code == 201, r.text
    T.assert_problem(login(P.Person(srv, name, pw), totp=codes[0]), 401)
    # another one, typed in upper case without dashes, in its own member
    r = login(P.Person(srv, name, pw), recovery_code=codes[1].replace("-", "").upper())
    assert r.status_code == 201, r.text
    def two(rows):
        return [e["detail"]["mfa"] for e in rows
                if e["actor"] == name].count("recovery_code") == 2
    assert two(P.audit_actions(srv, "login.succeeded", until=two))


def test_reset_mfa(srv):
    name = "mfa.reset"
    pw = P.add_user(srv, name, "admin")
    p = P.Person(srv, name, pw)
    p.login_ok()
    secret, _, _ = P.enrol(p)
    assert p.get("/api/v1/users").status_code == 200
    T.run_dtm("user", "reset-mfa", "--data-dir", srv.data_dir, "--username", name)
    # its sessions ended; it signs in with the password alone, and is blocked again
    T.assert_problem(p.get("/api/v1/session"), 401)
    q = P.Person(srv, name, pw)
    r = login(q)
    assert r.status_code == 201 and r.json()["mfa_enrolled"] is False, r.text
    assert T.assert_problem(q.get("/api/v1/users"), 403)["type"] == "urn:dtm:problem:mfa_required"
    # enrolling again gives a new seed, and its replay guard starts afresh
    secret2, _, _ = P.enrol(q)
    assert secret2 != secret
    assert q.get("/api/v1/users").status_code == 200
    resets = [e for e in P.audit_actions(srv, "mfa.reset") if e["target"] == name]
    assert resets and resets[-1]["actor_kind"] == "cli"
    assert T.run_dtm("user", "reset-mfa", "--data-dir", srv.data_dir, "--username", "nobody",
                     check=False).returncode == 1
