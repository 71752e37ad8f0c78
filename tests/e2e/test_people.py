"""People (CONTRACT §3; issue 5 item 1): sign-in with an HttpOnly, Secure, SameSite=Strict
session cookie, CSRF tokens on every state-changing request made with it, idle timeouts,
progressive delay and lockout after failed logins (the same 401 whether the name exists or
not), roles against routes, the user API and `dtm user …`, the password policy, and the audit
entries of all of it. Real HTTPS clients (requests) and the real CLI.

The module's server locks a name after 3 failures; the idle timeout is tried on a server of
its own with a 2 s idle timeout.
"""

import hashlib
import json
import time

import pytest

import dtmtest as T
import peoplelib as P

CONF = """
[session]
lockout_after = 3
lockout_minutes = 1
ip_lockout_after = 1000
"""

pytestmark = pytest.mark.owns_server


@pytest.fixture(scope="module")
def srv(dtm_bin, tmp_path_factory):
    if T.EXTERNAL_URL:
        pytest.skip("needs a server with its own [session] settings")
    s = P.start_server(tmp_path_factory, CONF)
    try:
        yield s
    finally:
        rc = s.stop()
        assert rc == 0, f"dtm serve exited with {rc}; log:\n{s.log_tail()}"


@pytest.fixture(scope="module")
def people(srv):
    """One person per role (created with `dtm user add`)."""
    out = {}
    for role in ("analyst", "operator", "auditor"):
        name = f"{role}.one"
        out[role] = (name, P.add_user(srv, name, role))
    return out


def person(srv, people, role):
    p = P.Person(srv, *people[role])
    p.login_ok()
    return p


def test_login_sets_a_hardened_cookie(srv, people):
    p = P.Person(srv, *people["analyst"])
    r = p.login()
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["username"] == "analyst.one" and body["role"] == "analyst"
    assert body["mfa_enrolled"] is False and len(body["csrf_token"]) >= 20
    sc = r.headers["Set-Cookie"]
    attrs = [a.strip().lower() for a in sc.split(";")]
    name, _, value = sc.split(";")[0].partition("=")
    assert name == "dtm_session" and len(value) >= 43
    for a in ("httponly", "secure", "samesite=strict", "path=/"):
        assert a in attrs, sc
    # who is signed in
    r = p.get("/api/v1/session")
    assert r.status_code == 200 and r.json()["username"] == "analyst.one"
    # the session id is stored only as its hash
    con = T.open_db(srv.data_dir)
    try:
        rows = con.execute("SELECT id_hash, username FROM sessions").fetchall()
    finally:
        con.close()
    hashes = {bytes(h) for h, _ in rows}
    assert hashlib.sha256(value.encode()).digest() in hashes
    assert value.encode() not in T.store_bytes(srv.data_dir)
    # the password is never logged
    assert people["analyst"][1] not in srv.log_text()


def test_no_session_is_401_and_plain_http_cookie_is_refused_without_token(srv):
    for path in ("/api/v1/session", "/api/v1/users", "/api/v1/audit"):
        r = srv.get(path)
        T.assert_problem(r, 401)
    r = srv.get("/api/v1/session", headers={"Cookie": "dtm_session=" + "A" * 43})
    T.assert_problem(r, 401)


def test_same_401_for_unknown_user_and_wrong_password(srv, people):
    name = people["operator"][0]
    a = P.Person(srv, name, "wrong password here").login()
    b = P.Person(srv, "nobody.here", "wrong password here").login()
    for r in (a, b):
        body = T.assert_problem(r, 401)
        assert body["type"] == "urn:dtm:problem:login_failed"
    ja, jb = a.json(), b.json()
    for k in ("type", "title", "detail", "status"):
        assert ja[k] == jb[k]
    assert ja["detail"] == "The user name or password is wrong."
    assert "Set-Cookie" not in a.headers and "Set-Cookie" not in b.headers
    # in Vietnamese (the default) too
    r = P.Person(srv, "nobody.else", "wrong password here", lang="vi").login()
    assert T.assert_problem(r, 401)["detail"] == "Tên người dùng hoặc mật khẩu không đúng."


def test_login_input_is_checked(srv):
    url = srv.https_url + "/api/v1/session"
    s = T.new_session()
    s.headers["Accept-Language"] = "en"
    r = s.post(url, data="username=a&password=b",
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    T.assert_problem(r, 415)
    r = s.post(url, data="{not json", headers={"Content-Type": "application/json"})
    T.assert_problem(r, 400)
    body = T.assert_problem(s.post(url, json={"username": "a"}), 400)
    assert "password" in body["detail"]
    body = T.assert_problem(s.post(url, json={"username": ["a"], "password": "b"}), 400)
    assert "'username'" in body["detail"]
    T.assert_problem(s.post(url, json={"username": "a", "password": "x" * 20000}), 413)
    # SQL in the name is only a name that does not exist
    r = s.post(url, json={"username": "admin' OR '1'='1", "password": "' OR 1=1 --"})
    assert T.assert_problem(r, 401)["type"] == "urn:dtm:problem:login_failed"


def failures_until_locked(srv, username, password):
    """Fails 3 times, honouring the progressive delay (429 + Retry-After in between)."""
    p = P.Person(srv, username, password)
    seen_delay = False
    fails = 0
    while fails < 3:
        r = p.login()
        if r.status_code == 429:
            body = T.assert_problem(r, 429)
            assert body["type"] == "urn:dtm:problem:login_delayed", body
            seen_delay = True
            time.sleep(int(r.headers["Retry-After"]))
            continue
        T.assert_problem(r, 401)
        fails += 1
        if fails < 3:
            # at once again: too soon
            r = p.login()
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text
            seen_delay = True
            time.sleep(int(r.headers["Retry-After"]))
    assert seen_delay
    return p


def test_progressive_delay_then_lockout(srv):
    name = "locked.user"
    good = P.add_user(srv, name, "analyst")
    failures_until_locked(srv, name, "not the password")
    # now locked, even with the right password
    r = P.Person(srv, name, good).login()
    body = T.assert_problem(r, 429)
    assert body["type"] == "urn:dtm:problem:login_locked"
    assert int(r.headers["Retry-After"]) > 30
    # an unknown name goes through exactly the same
    failures_until_locked(srv, "ghost.user", "not the password")
    r = P.Person(srv, "ghost.user", "anything at all").login()
    assert T.assert_problem(r, 429)["type"] == "urn:dtm:problem:login_locked"
    # audited: failures (the existing name only, by name) and the lockouts
    def both(rows):
        return (any(e["actor"] == name and e["detail"]["reason"] == "wrong_password"
                    for e in rows) and
                any(e["actor"] == "-" and e["detail"]["reason"] == "unknown_user" for e in rows))
    fails = P.audit_actions(srv, "login.failed", until=both)
    assert both(fails)
    locks = P.audit_actions(srv, "login.locked",
                            until=lambda rows: any(e["target"] == name for e in rows))
    assert any(e["target"] == name for e in locks)
    assert sum(e["target"] == "" for e in locks) >= 1  # the unknown name's
    assert all("not the password" not in json.dumps(e) for e in fails)


def test_csrf_required_with_the_cookie(srv, people):
    p = person(srv, people, "auditor")
    # missing, then wrong token: 403, nothing done
    r = p.req("DELETE", "/api/v1/session", csrf=False)
    assert T.assert_problem(r, 403)["type"] == "urn:dtm:problem:csrf"
    r = p.req("DELETE", "/api/v1/session", csrf=False, headers={"X-CSRF-Token": "x" * 22})
    assert T.assert_problem(r, 403)["type"] == "urn:dtm:problem:csrf"
    r = p.post("/api/v1/session/password", csrf=False,
               json={"current_password": p.password, "new_password": "a brand new password"})
    assert T.assert_problem(r, 403)["type"] == "urn:dtm:problem:csrf"
    assert p.get("/api/v1/session").status_code == 200
    # with it: signed out; the cookie no longer works
    r = p.req("DELETE", "/api/v1/session")
    assert r.status_code == 204, r.text
    T.assert_problem(p.get("/api/v1/session"), 401)
    assert P.audit_actions(srv, "logout")


def test_idle_timeout(dtm_bin, tmp_path_factory):
    srv = P.start_server(tmp_path_factory,
                         "\n[session]\nidle_timeout = 2\nabsolute_timeout = 6\n", name="idle")
    try:
        p = P.Person(srv, "idle.person", P.add_user(srv, "idle.person", "operator"))
        p.login_ok()
        for _ in range(3):  # activity keeps it alive past the idle timeout
            time.sleep(1.2)
            assert p.get("/api/v1/session").status_code == 200
        time.sleep(3)
        r = p.get("/api/v1/session")
        T.assert_problem(r, 401)

        def idle(rows):
            return any(e["detail"].get("reason") == "idle_timeout" for e in rows)
        assert idle(P.audit_actions(srv, "session.expired", until=idle))
        # the session row is gone
        time.sleep(0.5)
        con = T.open_db(srv.data_dir)
        try:
            assert con.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
        finally:
            con.close()
        # however active, a session ends absolute_timeout after sign-in
        p.login_ok()
        t0 = time.monotonic()
        while (r := p.get("/api/v1/session")).status_code == 200:
            assert time.monotonic() - t0 < 7, "still signed in past the absolute timeout"
            time.sleep(0.5)
        T.assert_problem(r, 401)
        assert time.monotonic() - t0 > 5

        def absolute(rows):
            return any(e["detail"].get("reason") == "absolute_timeout" for e in rows)
        assert absolute(P.audit_actions(srv, "session.expired", until=absolute))
    finally:
        assert srv.stop() == 0


def test_roles_against_routes(srv, people, sys_factory):
    src = sys_factory.add()
    T.assert_ok(srv.ingest(src, [T.txn()]))
    r = srv.post("/api/v1/batches", params={"dataset": "transactions"},
                 data=json.dumps(T.txn()) + "\n",
                 headers={**src.headers, "Content-Type": "application/x-ndjson"})
    assert r.status_code == 202, r.text
    batch = f"/api/v1/batches/{r.json()['id']}"
    stats = "/api/v1/stats/transactions?group_by=status"
    records = "/api/v1/datasets/transactions/records"
    want = {
        "analyst": {stats: 200, records: 200, "/api/v1/systems": 200, "/api/v1/audit": 403,
                    "/api/v1/users": 403, batch: 403},
        "operator": {stats: 200, records: 403, "/api/v1/systems": 200, "/api/v1/audit": 403,
                     "/api/v1/users": 403, batch: 200, "/api/v1/batches": 200},
        "auditor": {stats: 403, records: 200, "/api/v1/systems": 200, "/api/v1/audit": 200,
                    "/api/v1/users": 403, batch: 403},
    }
    for role, routes in want.items():
        p = person(srv, people, role)
        for path, status in routes.items():
            r = p.get(path)
            assert r.status_code == status, (role, path, r.status_code, r.text[:300])
    # operators see every system's batches
    ops = person(srv, people, "operator")
    listed = {b["id"] for b in ops.get("/api/v1/batches").json()["batches"]}
    assert batch.rsplit("/", 1)[1] in listed
    # no credentials: 401; connected systems keep their routes and stay out of people's
    for path in (stats, records, "/api/v1/audit", "/api/v1/users"):
        T.assert_problem(srv.get(path), 401)
    assert srv.get(stats, headers=src.headers).status_code == 200
    assert srv.get(records, headers=src.headers).status_code == 200
    for path in ("/api/v1/audit", "/api/v1/users", "/api/v1/session"):
        T.assert_problem(srv.get(path, headers=src.headers), 403)


@pytest.fixture(scope="module")
def sys_factory(srv):
    from conftest import SystemFactory
    return SystemFactory(srv)


def test_confidential_records_to_admins_and_auditors_only(srv, people, sys_factory):
    src = sys_factory.add()
    pub, conf = T.txn(), T.txn(classification="confidential")
    T.assert_ok(srv.ingest(src, [pub, conf]))
    url = "/api/v1/datasets/transactions/records"
    got = {}
    for role in ("analyst", "auditor"):
        r = person(srv, people, role).get(url, params={"limit": 10000})
        assert r.status_code == 200, r.text
        got[role] = {x["txn_id"] for x in r.json()["records"]}
    assert pub["txn_id"] in got["analyst"] and conf["txn_id"] not in got["analyst"]
    assert {pub["txn_id"], conf["txn_id"]} <= got["auditor"]
    def by_auditor(rows):
        return any(e["actor_kind"] == "user" and e["actor"] == "auditor.one" for e in rows)
    assert by_auditor(P.audit_actions(srv, "export.records", until=by_auditor))


def test_password_policy_and_change(srv):
    name = "policy.person"  # 13 characters: long enough to be tried as a password
    pw = P.add_user(srv, name, "analyst")
    p = P.Person(srv, name, pw)
    p.login_ok()
    cases = [("short pw", "12"), (name, "user name"), ("password1234", "common"),
             ("x" * 1025, "1024")]
    for new, words in cases:
        r = p.post("/api/v1/session/password",
                   json={"current_password": pw, "new_password": new})
        body = T.assert_problem(r, 400)
        assert body["type"] == "urn:dtm:problem:password_policy", body
        assert words in body["detail"], body
    r = p.post("/api/v1/session/password",
               json={"current_password": "wrong one!!!!", "new_password": "a much better one"})
    T.assert_problem(r, 403)
    r = p.post("/api/v1/session/password",
               json={"current_password": pw, "new_password": "a much better one"})
    assert r.status_code == 204, r.text
    assert p.get("/api/v1/session").status_code == 200  # this session goes on
    T.assert_problem(P.Person(srv, name, pw).login(), 401)
    time.sleep(1.1)  # the failed login's delay
    P.Person(srv, name, "a much better one").login_ok()
    assert "a much better one" not in srv.log_text()
    assert P.audit_actions(srv, "user.password_changed")


def test_user_cli(srv):
    p = T.run_dtm("user", "add", "--data-dir", srv.data_dir, "--username", "cli.person",
                  "--role", "operator")
    kv = T.parse_kv(p.stdout)
    assert kv["username"] == "cli.person" and len(kv["password"]) >= 12
    person_ = P.Person(srv, "cli.person", kv["password"])
    person_.login_ok()
    # duplicate, bad role, bad name
    assert T.run_dtm("user", "add", "--data-dir", srv.data_dir, "--username", "cli.person",
                     "--role", "operator", check=False).returncode == 1
    assert T.run_dtm("user", "add", "--data-dir", srv.data_dir, "--username", "x",
                     "--role", "king", check=False).returncode == 2
    assert T.run_dtm("user", "add", "--data-dir", srv.data_dir, "--username", "Bad Name",
                     "--role", "analyst", check=False).returncode == 2
    rows = json.loads(T.run_dtm("user", "list", "--data-dir", srv.data_dir, "--json").stdout)
    assert {"username": "cli.person", "role": "operator"}.items() <= \
        next(r for r in rows if r["username"] == "cli.person").items()
    assert "password" not in json.dumps(rows)
    # passwd: a new password; the old one and the open session stop working
    kv2 = T.parse_kv(T.run_dtm("user", "passwd", "--data-dir", srv.data_dir, "--username",
                               "cli.person").stdout)
    assert kv2["password"] != kv["password"]
    T.assert_problem(person_.get("/api/v1/session"), 401)
    T.assert_problem(P.Person(srv, "cli.person", kv["password"]).login(), 401)
    time.sleep(1.1)  # the failed login's delay
    person_ = P.Person(srv, "cli.person", kv2["password"])
    person_.login_ok()
    # disable: sessions end, login refused with the same 401; enable again
    T.run_dtm("user", "disable", "--data-dir", srv.data_dir, "--username", "cli.person")
    T.assert_problem(person_.get("/api/v1/session"), 401)
    body = T.assert_problem(person_.login(), 401)
    assert body["type"] == "urn:dtm:problem:login_failed"
    T.run_dtm("user", "enable", "--data-dir", srv.data_dir, "--username", "cli.person")
    time.sleep(1.1)  # the failed login's delay
    person_.login_ok()
    assert T.run_dtm("user", "disable", "--data-dir", srv.data_dir, "--username", "nobody",
                     check=False).returncode == 1
    actions = {e["action"] for e in P.audit_actions(srv)
               if e["target"] == "cli.person" and e["actor_kind"] == "cli"}
    # (the CLI commits its entries with its changes: nothing to wait for)
    assert {"user.created", "user.password_reset", "user.disabled", "user.enabled"} <= actions
    # in `dtm help`
    assert "user" in T.run_dtm("help").stdout


def test_user_api_and_audit_api(srv, people):
    admin = P.Person(srv, srv.admin["admin_username"], srv.admin["admin_password"])
    admin.login_ok()
    body = T.assert_problem(admin.get("/api/v1/users"), 403)
    assert body["type"] == "urn:dtm:problem:mfa_required"
    P.enrol(admin)
    r = admin.get("/api/v1/users")
    assert r.status_code == 200, r.text
    assert any(u["username"] == "admin" and u["mfa_enrolled"] for u in r.json()["users"])
    # create
    r = admin.post("/api/v1/users", json={"username": "api.person", "role": "operator"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["role"] == "operator" and len(made["password"]) >= 12
    assert made["password"] not in srv.log_text()
    T.assert_problem(admin.post("/api/v1/users", json={"username": "api.person",
                                                       "role": "operator"}), 409)
    T.assert_problem(admin.post("/api/v1/users", json={"username": "x", "role": "root"}), 400)
    T.assert_problem(admin.post("/api/v1/users", json={"username": "A B", "role": "analyst"}),
                     400)
    # CSRF applies to admins too
    r = admin.post("/api/v1/users", csrf=False, json={"username": "csrf.x", "role": "analyst"})
    assert T.assert_problem(r, 403)["type"] == "urn:dtm:problem:csrf"
    other = P.Person(srv, "api.person", made["password"])
    other.login_ok()
    # change role, then disable: the person's session ends
    r = admin.req("PATCH", "/api/v1/users/api.person", json={"role": "analyst"})
    assert r.status_code == 200 and r.json()["role"] == "analyst", r.text
    assert other.get("/api/v1/session").json()["role"] == "analyst"
    r = admin.req("PATCH", "/api/v1/users/api.person", json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    T.assert_problem(other.get("/api/v1/session"), 401)
    T.assert_problem(admin.req("PATCH", "/api/v1/users/admin", json={"disabled": True}), 409)
    T.assert_problem(admin.req("PATCH", "/api/v1/users/nobody", json={"role": "analyst"}), 404)
    # delete
    assert admin.req("DELETE", "/api/v1/users/api.person").status_code == 204
    T.assert_problem(admin.req("DELETE", "/api/v1/users/admin"), 409)
    assert all(u["username"] != "api.person" for u in admin.get("/api/v1/users").json()["users"])
    # the audit trail: JSON with filters, CSV export; auditors and admins only
    auditor = person(srv, people, "auditor")
    r = auditor.get("/api/v1/audit", params={"actor": "admin", "action": "user.created"})
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    assert [e["target"] for e in entries] == ["api.person"]
    r = auditor.get("/api/v1/audit", params={"format": "csv", "action": "user.deleted"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    lines = r.text.strip().splitlines()
    assert lines[0].startswith("seq,at,actor_kind,actor,action") and "api.person" in lines[1]
    r = auditor.get("/api/v1/audit", params={"from": "2020-01-01", "to": "2020-01-02"})
    assert r.json()["entries"] == []
    T.assert_problem(auditor.get("/api/v1/audit", params={"from": "yesterday"}), 400)
    assert admin.get("/api/v1/audit").status_code == 200
    want = {"login.succeeded", "mfa.enrolled", "user.created", "user.changed", "user.deleted",
            "audit.exported"}

    def admin_did(rows):
        return want <= {e["action"] for e in rows if e["actor"] == "admin"}
    assert admin_did(P.audit_actions(srv, until=admin_did))


def test_a_persons_live_stream_is_reopened_to_check_the_session(tmp_path_factory):
    """GET /api/v1/live authenticates a person once, when it opens: it ends after [session]
    live_stream_max s (the browser opens it again, the session checked again), so a signed-out
    tab is not fed for long; a system's stream runs on."""
    import time
    srv = P.start_server(tmp_path_factory, "\n[session]\nlive_stream_max = 2\n", name="livemax")
    try:
        p = P.Person(srv, "live.viewer", P.add_user(srv, "live.viewer", "analyst"))
        p.login_ok()
        t0 = time.monotonic()
        with p.get("/api/v1/live", stream=True, timeout=15) as r:
            assert r.status_code == 200
            events = sum(1 for line in r.iter_lines() if line.startswith(b"data:"))
        took = time.monotonic() - t0
        assert 1.5 <= took <= 6 and events >= 1, (took, events)
        # signed out: the next opening is refused
        assert p.req("DELETE", "/api/v1/session").status_code in (200, 204)
        assert p.get("/api/v1/live", stream=True, timeout=5).status_code == 401
        # a system's stream is not cut
        s = srv.add_system()
        t0 = time.monotonic()
        with srv.session.get(srv.base_url + "/api/v1/live", headers=s.headers, stream=True,
                             timeout=15) as r:
            n = 0
            for line in r.iter_lines():
                n += line.startswith(b"data:")
                if time.monotonic() - t0 > 4:
                    break
        assert time.monotonic() - t0 > 4 and n >= 3
    finally:
        srv.stop()
