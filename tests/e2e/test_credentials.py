"""Connected systems and their credentials for administrators (T2.4, issue 5): registering a
system over the API, listing, rotating and revoking its API keys, rotating and revoking its
OAuth client secret — and the same for the OAuth client from the command line. A rotated
client secret ends the old secret and every token issued under it at once; a revoked client
gets no token and its tokens are refused. Secrets appear once, in the answer, never in a list
or the audit trail."""

import json

import pytest

import dtmtest as T
import peoplelib as P


@pytest.fixture
def admin(own_server):
    srv = own_server()
    a = P.Person(srv, srv.admin["admin_username"], srv.admin["admin_password"])
    a.login_ok()
    P.enrol(a)  # admin actions need MFA
    a.srv = srv
    return a


def token(srv, client_id, secret):
    return srv.post("/oauth/token", data={"grant_type": "client_credentials",
                                          "client_id": client_id, "client_secret": secret})


def heartbeat(srv, headers):
    return srv.post("/api/v1/heartbeat", json={}, headers=headers)


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def test_register_rotate_revoke_over_the_api(admin):
    srv = admin.srv
    code = T.system_code()
    r = admin.post("/api/v1/systems", json={"code": code, "name": "Cổng DVC tỉnh",
                                            "org": "UBND", "role": "source"})
    assert r.status_code == 201, r.text
    assert r.headers["Cache-Control"] == "no-store"
    c = r.json()
    assert c["system_code"] == code and c["client_id"] == code
    assert c["api_key"].startswith("dtm_") and c["client_secret"].startswith("dtmcs_")
    key1 = {"X-API-Key": c["api_key"]}
    assert heartbeat(srv, key1).status_code in (200, 202, 204)
    t1 = token(srv, code, c["client_secret"])
    assert t1.status_code == 200, t1.text
    t1 = t1.json()["access_token"]
    assert heartbeat(srv, bearer(t1)).status_code in (200, 202, 204)

    # refusals name what is wrong
    assert admin.post("/api/v1/systems", json={"code": code, "name": "again"}).status_code == 409
    assert T.assert_problem(admin.post("/api/v1/systems", json={"code": "bad code",
                                                                "name": "x"}), 400)
    assert T.assert_problem(admin.post("/api/v1/systems", json={"code": T.system_code(),
                                                                "name": "x",
                                                                "parent": code}), 422)
    assert T.assert_problem(admin.post("/api/v1/systems", json={"code": T.system_code(),
                                                                "name": "x",
                                                                "role": "root"}), 400)
    # the list: the key and the client, no secret
    r = admin.get(f"/api/v1/systems/{code}/keys")
    assert r.status_code == 200, r.text
    ks = r.json()
    assert [k["id"] for k in ks["keys"]] == [c["key_id"]] and ks["keys"][0]["status"] == "active"
    assert ks["oauth_client"]["status"] == "active"
    assert c["api_key"] not in r.text and c["client_secret"] not in r.text
    assert admin.get("/api/v1/systems/NOPE/keys").status_code == 404

    # a new API key with no grace: the old one stops at once, the new one works
    r = admin.post(f"/api/v1/systems/{code}/keys", json={"grace_seconds": 0})
    assert r.status_code == 201, r.text
    k2 = r.json()
    key2 = {"X-API-Key": k2["api_key"]}
    assert heartbeat(srv, key1).status_code == 401
    assert heartbeat(srv, key2).status_code in (200, 202, 204)
    T.assert_problem(admin.post(f"/api/v1/systems/{code}/keys", json={"grace_seconds": -1}), 400)
    # revoke it: 401 at once; again or under another system: 404
    assert admin.req("DELETE", f"/api/v1/systems/{code}/keys/{k2['key_id']}").status_code == 204
    assert heartbeat(srv, key2).status_code == 401
    assert admin.req("DELETE", f"/api/v1/systems/{code}/keys/{k2['key_id']}").status_code == 404
    other = srv.add_system()
    assert admin.req("DELETE",
                     f"/api/v1/systems/{code}/keys/{other.key_id}").status_code == 404
    assert heartbeat(srv, other.headers).status_code in (200, 202, 204)
    statuses = {k["id"]: k["status"] for k in admin.get(f"/api/v1/systems/{code}/keys").json()[
        "keys"]}
    assert statuses == {c["key_id"]: "expired", k2["key_id"]: "revoked"}

    # a new client secret: the old secret and the token issued under it end now
    r = admin.post(f"/api/v1/systems/{code}/client-secret")
    assert r.status_code == 200, r.text
    s2 = r.json()["client_secret"]
    assert heartbeat(srv, bearer(t1)).status_code == 401
    assert token(srv, code, c["client_secret"]).status_code == 401
    t2 = token(srv, code, s2)
    assert t2.status_code == 200, t2.text
    t2 = t2.json()["access_token"]
    assert heartbeat(srv, bearer(t2)).status_code in (200, 202, 204)

    # revoke the client: no token, the live one refused; a rotation brings it back
    assert admin.req("DELETE", f"/api/v1/systems/{code}/client").status_code == 204
    assert heartbeat(srv, bearer(t2)).status_code == 401
    assert token(srv, code, s2).status_code == 401
    assert admin.req("DELETE", f"/api/v1/systems/{code}/client").status_code == 404
    s3 = admin.post(f"/api/v1/systems/{code}/client-secret").json()["client_secret"]
    assert token(srv, code, s3).status_code == 200

    # every change on the audit trail, by the admin, with no secret in it
    rows = P.audit_actions(srv, None, until=lambda rows: any(
        x["action"] == "oauth_client.rotated" and x["target"] == code for x in rows[-3:]))
    mine = [x for x in rows if x["target"] == code and x["actor"] == admin.username]
    assert [x["action"] for x in mine] == [
        "system.created", "key.rotated", "key.revoked", "oauth_client.rotated",
        "oauth_client.revoked", "oauth_client.rotated"], mine
    text = json.dumps(rows)
    for secret in (c["api_key"], c["client_secret"], k2["api_key"], s2, s3):
        assert secret not in text


def test_only_admins(admin):
    srv = admin.srv
    pw = P.add_user(srv, "ana.ops", "operator")
    op = P.Person(srv, "ana.ops", pw)
    op.login_ok()
    s = srv.add_system()
    assert op.post("/api/v1/systems", json={"code": T.system_code(), "name": "x"}).status_code \
        == 403
    assert op.get(f"/api/v1/systems/{s.code}/keys").status_code == 403
    assert op.post(f"/api/v1/systems/{s.code}/client-secret").status_code == 403
    assert srv.post(f"/api/v1/systems/{s.code}/client-secret", headers=s.headers).status_code \
        == 403
    # a cookie without the CSRF token changes nothing
    assert admin.post(f"/api/v1/systems/{s.code}/client-secret", csrf=False).status_code == 403
    assert token(srv, s.client_id, s.client_secret).status_code == 200


def test_client_rotation_from_the_command_line(own_server):
    srv = own_server(https=False)
    s = srv.add_system()
    t1 = token(srv, s.client_id, s.client_secret).json()["access_token"]
    out = json.loads(T.run_dtm("key", "rotate-client", "--system", s.code, "--data-dir",
                               str(srv.data_dir), "--json").stdout)
    assert out["client_id"] == s.code and out["client_secret"].startswith("dtmcs_")
    assert heartbeat(srv, bearer(t1)).status_code == 401
    assert token(srv, s.client_id, s.client_secret).status_code == 401
    assert token(srv, s.client_id, out["client_secret"]).status_code == 200
    T.run_dtm("key", "revoke-client", "--system", s.code, "--data-dir", str(srv.data_dir))
    assert token(srv, s.client_id, out["client_secret"]).status_code == 401
    p = T.run_dtm("key", "revoke-client", "--system", s.code, "--data-dir", str(srv.data_dir),
                  check=False)
    assert p.returncode == 1 and "no live OAuth client" in p.stderr
    p = T.run_dtm("key", "rotate-client", "--system", "NOPE", "--data-dir", str(srv.data_dir),
                  check=False)
    assert p.returncode == 1 and "no system with code NOPE" in p.stderr


def jti_of(tok):
    import base64
    body = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["jti"]


def test_token_revocation(own_server):
    """RFC 7009: a client revokes one of its tokens (its other tokens live on); another client's
    token is not revoked though the answer is the same 200; an administrator revokes one by its
    jti from the command line."""
    srv = own_server(https=False)
    s, other = srv.add_system(), srv.add_system()
    t1, t2, t3 = (token(srv, s.client_id, s.client_secret).json()["access_token"]
                  for _ in range(3))
    revoke = {"client_id": s.client_id, "client_secret": s.client_secret}

    r = srv.post("/oauth/revoke", data=dict(revoke, token=t1, token_type_hint="access_token"))
    assert r.status_code == 200, r.text
    assert heartbeat(srv, bearer(t1)).status_code == 401
    assert heartbeat(srv, bearer(t2)).status_code in (200, 202, 204)
    # again, or a token that is none: 200 all the same
    assert srv.post("/oauth/revoke", data=dict(revoke, token=t1)).status_code == 200
    assert srv.post("/oauth/revoke", data=dict(revoke, token="not.a.token")).status_code == 200
    # another client cannot revoke it
    r = srv.post("/oauth/revoke", data={"client_id": other.client_id,
                                        "client_secret": other.client_secret, "token": t2})
    assert r.status_code == 200
    assert heartbeat(srv, bearer(t2)).status_code in (200, 202, 204)
    # the client must authenticate, and name a token
    assert srv.post("/oauth/revoke", data=dict(revoke, client_secret="dtmcs_wrong",
                                               token=t2)).status_code == 401
    assert srv.post("/oauth/revoke", data=revoke).status_code == 400
    assert srv.post("/oauth/revoke", json=dict(revoke, token=t2)).status_code == 415
    assert heartbeat(srv, bearer(t2)).status_code in (200, 202, 204)

    # an administrator, by jti
    out = json.loads(T.run_dtm("key", "revoke-token", "--jti", jti_of(t3), "--data-dir",
                               str(srv.data_dir), "--json").stdout)
    assert out == {"revoked_token": jti_of(t3)}
    assert heartbeat(srv, bearer(t3)).status_code == 401
    assert heartbeat(srv, bearer(t2)).status_code in (200, 202, 204)
    p = T.run_dtm("key", "revoke-token", "--jti", "x'; DROP", "--data-dir", str(srv.data_dir),
                  check=False)
    assert p.returncode == 2

    rows = P.audit_actions(srv, "oauth.token_revoked", until=lambda rows: len(rows) >= 2)
    assert sorted((x["detail"] or {}).get("jti", x["target"]) for x in rows) == \
        sorted([jti_of(t1), jti_of(t3)])
    for x in rows:
        assert t1 not in json.dumps(x) and t3 not in json.dumps(x)


def test_operator_sends_a_batch_for_a_system(own_server):
    """The dashboard's upload: an operator (session cookie + CSRF token) sends a file in a
    source system's name (?system=C); the batch is that system's, and the audit trail says who
    sent it. Analysts may not; the system must exist and be allowed to send."""
    srv = own_server()
    src = srv.add_system()
    cons = srv.add_system(role="consumer")
    op = P.Person(srv, "op.batch", P.add_user(srv, "op.batch", "operator"))
    op.login_ok()
    recs = [T.txn(system_code=src.code) for _ in range(5)]
    body = T.body_ndjson(recs)
    h = {"Content-Type": "application/x-ndjson"}
    r = op.post("/api/v1/batches", params={"dataset": "transactions", "system": src.code},
                data=body, headers=h)
    assert r.status_code == 202, r.text
    bid = r.json()["id"]
    b = T.wait_for(lambda: (lambda x: x if x["status"] in ("done", "failed") else None)(
        op.get(f"/api/v1/batches/{bid}").json()), timeout=60, interval=0.1)
    assert b and b["status"] == "done" and b["accepted"] == 5 and b["system_code"] == src.code, b
    assert srv.record(src, recs[0]["txn_id"]).status_code == 200
    rows = P.audit_actions(srv, "batch.uploaded")
    assert rows[-1]["actor"] == "op.batch" and rows[-1]["target"] == src.code
    assert rows[-1]["detail"]["batch"] == bid

    # refusals
    r = op.post("/api/v1/batches", params={"dataset": "transactions"}, data=body, headers=h)
    assert T.assert_problem(r, 400)
    r = op.post("/api/v1/batches", params={"dataset": "transactions", "system": cons.code},
                data=body, headers=h)
    assert T.assert_problem(r, 422)
    r = op.post("/api/v1/batches", params={"dataset": "transactions", "system": src.code},
                data=body, headers=h, csrf=False)
    assert r.status_code == 403
    an = P.Person(srv, "an.batch", P.add_user(srv, "an.batch", "analyst"))
    an.login_ok()
    r = an.post("/api/v1/batches", params={"dataset": "transactions", "system": src.code},
                data=body, headers=h)
    assert r.status_code == 403
