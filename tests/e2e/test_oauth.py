"""OAuth 2.0 client credentials (T2.4, CONTRACT §3, RFC 6749 §4.4): POST /oauth/token issues
short-lived ES256 JWTs (libjwt) with a kid, GET /oauth/jwks.json publishes the keys that verify
them, `Authorization: Bearer` authenticates a connected system like X-API-Key, scopes narrow what
a token may do, `dtm key rotate-signing` changes the signing key without breaking tokens already
issued.

The tokens are checked by a real, independent verifier: Python's `jwt` (python3-jwt) with the
JWK set fetched over HTTP. Attacks are built by hand: a flipped signature, alg "none", HS256
signed with the public key (algorithm confusion), a key of our own under a known kid.
"""

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import dtmtest as T

FORM = "application/x-www-form-urlencoded"


# ---------------------------------------------------------------------------------------------
# helpers


def token_request(srv, data, auth=None, headers=None):
    return srv.post("/oauth/token", data=data, auth=auth, headers=headers or {})


def get_token(srv, system, scope=None, basic=False):
    data = {"grant_type": "client_credentials"}
    auth = None
    if basic:
        auth = (system.client_id, system.client_secret)
    else:
        data.update(client_id=system.client_id, client_secret=system.client_secret)
    if scope is not None:
        data["scope"] = scope
    r = token_request(srv, data, auth=auth)
    assert r.status_code == 200, r.text
    return r.json()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def parts(token):
    h, p, s = token.split(".")
    pad = lambda x: x + "=" * (-len(x) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(h))),
            json.loads(base64.urlsafe_b64decode(pad(p))), s)


def jwks(srv):
    r = srv.get("/oauth/jwks.json")
    assert r.status_code == 200, r.text
    return r.json()


def verify(srv, token, **kw):
    """Verifies like an outside system: the JWK set over HTTP, ES256 only."""
    client = jwt.PyJWKClient(srv.url("/oauth/jwks.json"), cache_keys=False)
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["ES256"], issuer="dtm",
                      options={"require": ["exp", "iat", "nbf", "iss", "sub", "jti"]}, **kw)


def heartbeat(srv, headers):
    return srv.post("/api/v1/heartbeat", headers={**headers, "Accept-Language": "en"})


def ingest(srv, headers, records, dataset="transactions"):
    return srv.post(f"/api/v1/ingest/{dataset}", json=records,
                    headers={**headers, "Accept-Language": "en"})


def audit_entries(srv, action):
    p = T.run_dtm("audit", "list", "--data-dir", srv.data_dir, "--format", "json",
                  "--action", action)
    return json.loads(p.stdout)


def svc_stats(code):
    return {"period_type": "day", "period_start": "2026-11-20", "service_code": "SV01",
            "total": 10, "success": 9, "failed": 1, "system_code": code}


@pytest.fixture(scope="module")
def systems(sys_factory):
    src = sys_factory.add(role="source")
    consumer = sys_factory.add(role="consumer")
    T.run_dtm("grant", "add", "--data-dir", sys_factory.srv.data_dir, "--system", consumer.code,
              "--dataset", "transactions")
    return src, consumer


# ---------------------------------------------------------------------------------------------
# issuing


def test_token_with_form_credentials(server, systems):
    src, _ = systems
    r = token_request(server, {"grant_type": "client_credentials", "client_id": src.client_id,
                               "client_secret": src.client_secret})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers.get("Cache-Control") == "no-store"
    assert r.headers.get("Pragma") == "no-cache"
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "ingest read"
    assert body["access_token"].count(".") == 2


def test_token_with_basic_auth(server, systems):
    src, _ = systems
    body = get_token(server, src, basic=True)
    assert body["token_type"] == "Bearer" and body["access_token"]
    # RFC 6749 §2.3.1: id and secret are form-encoded before base64 (nothing to encode here,
    # but the header is built by hand to be sure of what is sent)
    cred = base64.b64encode(f"{src.client_id}:{src.client_secret}".encode()).decode()
    r = server.post("/oauth/token", data={"grant_type": "client_credentials"},
                    headers={"Authorization": f"Basic {cred}"})
    assert r.status_code == 200, r.text


def test_jwt_verified_from_jwks_by_python(server, systems):
    src, _ = systems
    token = get_token(server, src)["access_token"]
    header, _, _ = parts(token)
    assert header["alg"] == "ES256"
    assert header["kid"]
    keys = jwks(server)["keys"]
    mine = [k for k in keys if k["kid"] == header["kid"]]
    assert len(mine) == 1, keys
    k = mine[0]
    assert (k["kty"], k["crv"], k["use"], k["alg"]) == ("EC", "P-256", "sig", "ES256")
    assert len(base64.urlsafe_b64decode(k["x"] + "==")) == 32
    assert "d" not in k, "the JWK set must not carry the private key"
    claims = verify(server, token)
    assert claims["iss"] == "dtm"
    assert claims["sub"] == src.client_id
    assert claims["system"] == src.code
    assert claims["role"] == "source"
    assert claims["scope"] == "ingest read"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] <= time.time() + 5
    assert claims["jti"]
    # PyJWK directly from the set, the other way round
    pk = jwt.PyJWK(k)
    assert jwt.decode(token, pk.key, algorithms=["ES256"])["sub"] == src.client_id


def test_jwks_is_public_and_cacheable(server):
    r = requests.get(server.url("/oauth/jwks.json"), timeout=10)
    assert r.status_code == 200
    cc = r.headers.get("Cache-Control", "")
    assert "public" in cc and "max-age=" in cc and "no-store" not in cc, cc
    assert r.json()["keys"]


def test_each_token_is_distinct(server, systems):
    src, _ = systems
    a, b = get_token(server, src)["access_token"], get_token(server, src)["access_token"]
    assert a != b
    assert parts(a)[1]["jti"] != parts(b)[1]["jti"]


# ---------------------------------------------------------------------------------------------
# using a token


def test_bearer_ingests_and_reads_like_an_api_key(server, systems):
    src, _ = systems
    h = bearer(get_token(server, src)["access_token"])
    rec = T.txn()
    body = T.assert_ok(ingest(server, h, [rec]))
    assert body["accepted"] == 1
    r = server.get(f"/api/v1/receipts/{body['receipt']}", headers=h)
    assert r.status_code == 200, r.text
    r = server.get("/api/v1/datasets/transactions/record", params={"txn_id": rec["txn_id"]},
                   headers=h)
    assert r.status_code == 200, r.text
    r = server.get("/api/v1/stats/transactions", params={"metrics": "count"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["rows"][0][0] >= 1
    assert heartbeat(server, h).status_code == 200
    # stored under the token's system
    assert T.stored_by_txn(server.data_dir, rec["txn_id"])[0]["system_code"] == src.code


def test_consumer_token_reads_granted_dataset(server, systems):
    src, consumer = systems
    tok = get_token(server, consumer)
    assert tok["scope"] == "read"
    h = bearer(tok["access_token"])
    r = server.get("/api/v1/stats/transactions", params={"metrics": "count"}, headers=h)
    assert r.status_code == 200, r.text
    r = server.get("/api/v1/stats/service_stats", params={"metrics": "count"}, headers=h)
    assert r.status_code == 403, r.text  # not granted
    r = ingest(server, h, [T.txn()])
    assert r.status_code == 403, r.text


def test_no_or_garbage_bearer_is_401(server):
    for value in ["Bearer ", "Bearer abc", "Bearer a.b.c", "Bearer " + "A" * 5000,
                  "Bearer eyJhbGciOiJFUzI1NiJ9.e30.AAAA"]:
        r = heartbeat(server, {"Authorization": value})
        assert r.status_code == 401, (value[:40], r.text)


def test_tampered_signature_is_401(server, systems):
    src, _ = systems
    token = get_token(server, src)["access_token"]
    h, p, s = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    raw[10] ^= 0x01
    bad = f"{h}.{p}.{b64url(bytes(raw))}"
    r = heartbeat(server, bearer(bad))
    T.assert_problem(r, 401)
    assert "invalid_token" in r.headers.get("WWW-Authenticate", "")
    # a payload changed (another system) under the original signature
    _, claims, _ = parts(token)
    claims["system"] = "SOMEONE"
    assert heartbeat(server, bearer(f"{h}.{b64url_json(claims)}.{s}")).status_code == 401
    # the untouched token still works
    assert heartbeat(server, bearer(token)).status_code == 200


def test_alg_none_is_401(server, systems):
    src, _ = systems
    header, claims, _ = parts(get_token(server, src)["access_token"])
    for alg in ["none", "None", "NONE"]:
        h = dict(header, alg=alg)
        for sig in ["", "AAAA"]:
            tok = f"{b64url_json(h)}.{b64url_json(claims)}.{sig}"
            assert heartbeat(server, bearer(tok)).status_code == 401, (alg, sig)


def test_hs256_with_public_key_is_401(server, systems):
    """Algorithm confusion: HS256 keyed with the public key (as PEM, as the JWK's bytes)."""
    src, _ = systems
    token = get_token(server, src)["access_token"]
    header, claims, _ = parts(token)
    jwk = [k for k in jwks(server)["keys"] if k["kid"] == header["kid"]][0]
    pub = jwt.PyJWK(jwk).key
    pem = pub.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    der = pub.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    h = b64url_json(dict(header, alg="HS256"))
    p = b64url_json(claims)
    for key in [pem, pem.rstrip(b"\n"), der, json.dumps(jwk).encode()]:
        sig = hmac.new(key, f"{h}.{p}".encode(), hashlib.sha256).digest()
        r = heartbeat(server, bearer(f"{h}.{p}.{b64url(sig)}"))
        assert r.status_code == 401, r.text
    # a header naming alg twice (a parser that keeps the first sees ES256, one that keeps the
    # last sees HS256)
    h2 = b64url(('{"alg":"ES256","kid":"%s","alg":"HS256"}' % header["kid"]).encode())
    for key in [pem, pem.rstrip(b"\n")]:
        sig = hmac.new(key, f"{h2}.{p}".encode(), hashlib.sha256).digest()
        assert heartbeat(server, bearer(f"{h2}.{p}.{b64url(sig)}")).status_code == 401


def test_foreign_key_under_known_kid_is_401(server, systems):
    src, _ = systems
    header, claims, _ = parts(get_token(server, src)["access_token"])
    mine = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, mine, algorithm="ES256", headers={"kid": header["kid"]})
    assert heartbeat(server, bearer(forged)).status_code == 401
    forged = jwt.encode(claims, mine, algorithm="ES256", headers={"kid": "unknown-kid"})
    assert heartbeat(server, bearer(forged)).status_code == 401
    # and a token of ours with its kid removed
    nokid = {k: v for k, v in header.items() if k != "kid"}
    tok = get_token(server, src)["access_token"]
    _, p, s = tok.split(".")
    assert heartbeat(server, bearer(f"{b64url_json(nokid)}.{p}.{s}")).status_code == 401


# ---------------------------------------------------------------------------------------------
# errors of the token endpoint (RFC 6749 §5.2)


def test_wrong_secret_is_invalid_client_and_audited(server, systems):
    src, _ = systems
    before = len(audit_entries(server, "oauth.token_refused"))
    wrong = src.client_secret[:-1] + ("0" if src.client_secret[-1] != "0" else "1")
    r = token_request(server, {"grant_type": "client_credentials", "client_id": src.client_id,
                               "client_secret": wrong}, headers={"Accept-Language": "en"})
    assert r.status_code == 401, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"] == "invalid_client"
    assert r.json()["error_description"]
    assert r.headers.get("WWW-Authenticate", "").startswith("Basic")
    r = token_request(server, {"grant_type": "client_credentials"}, auth=(src.client_id, wrong))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = token_request(server, {"grant_type": "client_credentials", "client_id": "NOPE",
                               "client_secret": wrong})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"

    def refused():
        e = audit_entries(server, "oauth.token_refused")
        return e if len(e) >= before + 3 else None

    entries = T.wait_for(refused, timeout=10)
    assert entries, "failed token requests were not audited"
    reasons = {(e["actor"], e["detail"]["reason"]) for e in entries[before:]}
    assert (src.code, "wrong_secret") in reasons
    assert ("NOPE", "unknown_client") in reasons
    text = json.dumps(entries)
    assert wrong not in text and src.client_secret not in text


def test_issuance_audited_without_token_or_secret(server, systems):
    src, _ = systems
    tok = get_token(server, src)
    jti = parts(tok["access_token"])[1]["jti"]

    def issued():
        return [e for e in audit_entries(server, "oauth.token_issued")
                if e["detail"].get("jti") == jti]

    e = T.wait_for(issued, timeout=10)
    assert e, "issuance not audited"
    assert e[0]["actor"] == src.code and e[0]["detail"]["scope"] == "ingest read"
    assert e[0]["detail"]["kid"] == parts(tok["access_token"])[0]["kid"]
    # neither the token nor the secret is anywhere in the data dir or the server's log
    signature = tok["access_token"].split(".")[2]
    assert not T.files_containing(server.data_dir, signature.encode())
    assert not T.files_containing(server.data_dir, src.client_secret.encode())
    if server.log_path:
        log = server.log_text()
        assert signature not in log and src.client_secret not in log


def test_wrong_content_type(server, systems):
    src, _ = systems
    body = {"grant_type": "client_credentials", "client_id": src.client_id,
            "client_secret": src.client_secret}
    r = server.post("/oauth/token", json=body)
    assert r.status_code == 415, r.text
    # either the RFC 6749 §5.2 member or an RFC 9457 problem naming the type (the router's
    # strict content-type check may answer before the endpoint does)
    b = r.json()
    assert b.get("error") == "invalid_request" or "x-www-form-urlencoded" in b.get("detail", ""), b
    r = server.post("/oauth/token", data=json.dumps(body), headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = server.post("/oauth/token", data=b"", headers={})
    assert r.status_code in (400, 415)
    assert "access_token" not in r.text
    # with a charset parameter it is still the form type
    r = server.post("/oauth/token", data=body,
                    headers={"Content-Type": FORM + "; charset=UTF-8"})
    assert r.status_code == 200, r.text


def test_grant_type_and_request_errors(server, systems):
    src, _ = systems
    cred = {"client_id": src.client_id, "client_secret": src.client_secret}
    r = token_request(server, cred)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = token_request(server, {**cred, "grant_type": "password"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = server.post("/oauth/token", data="grant_type=client_credentials&grant_type=client_"
                    "credentials&client_id=" + src.client_id + "&client_secret=" +
                    src.client_secret, headers={"Content-Type": FORM})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert "grant_type" in r.json()["error_description"]
    # two client authentication methods at once
    r = token_request(server, {**cred, "grant_type": "client_credentials"},
                      auth=(src.client_id, src.client_secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    # the secret in the URL
    r = server.post("/oauth/token?client_secret=" + src.client_secret,
                    data={**cred, "grant_type": "client_credentials"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    # no client authentication at all
    r = token_request(server, {"grant_type": "client_credentials"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # broken percent-encoding
    r = server.post("/oauth/token", data="grant_type=client_credentials&client_id=%zz",
                    headers={"Content-Type": FORM})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    # descriptions in both languages
    vi = token_request(server, {**cred, "grant_type": "password"},
                       headers={"Accept-Language": "vi"}).json()["error_description"]
    en = token_request(server, {**cred, "grant_type": "password"},
                       headers={"Accept-Language": "en"}).json()["error_description"]
    assert vi != en


# ---------------------------------------------------------------------------------------------
# scopes


def test_invalid_scope(server, systems):
    src, consumer = systems
    for system, scope in [(consumer, "ingest"), (consumer, "read dataset:service_stats"),
                          (src, "write"), (src, "dataset:no_such_dataset"), (src, "read admin"),
                          (src, "dataset:" + "x" * 80)]:
        data = {"grant_type": "client_credentials", "client_id": system.client_id,
                "client_secret": system.client_secret, "scope": scope}
        r = token_request(server, data, headers={"Accept-Language": "en"})
        assert r.status_code == 400, (scope, r.text)
        assert r.json()["error"] == "invalid_scope", (scope, r.json())
        assert r.json()["error_description"]


def test_scope_narrowing_read_one_dataset(server, systems):
    src, _ = systems
    tok = get_token(server, src, scope="read dataset:service_stats")
    assert tok["scope"] == "read dataset:service_stats"
    h = bearer(tok["access_token"])
    # no ingest scope: cannot push data, of any dataset
    r = ingest(server, h, [svc_stats(src.code)], dataset="service_stats")
    T.assert_problem(r, 403)
    assert r.json()["type"].endswith("insufficient_scope")
    assert "insufficient_scope" in r.headers.get("WWW-Authenticate", "")
    assert ingest(server, h, [T.txn()]).status_code == 403
    # reads only the dataset it names
    r = server.get("/api/v1/stats/service_stats", params={"metrics": "count"}, headers=h)
    assert r.status_code == 200, r.text
    r = server.get("/api/v1/stats/transactions", params={"metrics": "count"}, headers=h)
    T.assert_problem(r, 403)
    r = server.get("/api/v1/datasets/transactions/records", headers=h)
    assert r.status_code == 403, r.text
    r = server.get("/api/v1/datasets/transactions/record", params={"txn_id": "x"}, headers=h)
    assert r.status_code == 403, r.text
    # the API key of the same system is not narrowed
    r = server.get("/api/v1/stats/transactions", params={"metrics": "count"},
                   headers=src.headers)
    assert r.status_code == 200, r.text


def test_scope_narrowing_ingest_one_dataset(server, systems):
    src, _ = systems
    tok = get_token(server, src, scope="ingest dataset:transactions")
    assert tok["scope"] == "ingest dataset:transactions"
    h = bearer(tok["access_token"])
    assert T.assert_ok(ingest(server, h, [T.txn()]))["accepted"] == 1
    r = ingest(server, h, [svc_stats(src.code)], dataset="service_stats")
    T.assert_problem(r, 403)
    r = server.post("/api/v1/batches", params={"dataset": "service_stats"},
                    data=T.body_ndjson([svc_stats(src.code)]),
                    headers={**h, "Content-Type": "application/x-ndjson"})
    assert r.status_code == 403, r.text
    # no read scope
    r = server.get("/api/v1/stats/transactions", params={"metrics": "count"}, headers=h)
    assert r.status_code == 403, r.text
    # datasets only: the role's actions, narrowed
    tok = get_token(server, src, scope="dataset:transactions")
    assert tok["scope"] == "ingest read dataset:transactions"


# ---------------------------------------------------------------------------------------------
# signing-key rotation


def test_key_rotation_keeps_old_tokens_valid(server, systems):
    src, _ = systems
    old = get_token(server, src)["access_token"]
    old_kid = parts(old)[0]["kid"]
    p = T.run_dtm("key", "rotate-signing", "--data-dir", server.data_dir, "--json")
    new_kid = json.loads(p.stdout)["kid"]
    assert new_kid and new_kid != old_kid
    new = get_token(server, src)["access_token"]
    assert parts(new)[0]["kid"] == new_kid
    kids = {k["kid"] for k in jwks(server)["keys"]}
    assert {old_kid, new_kid} <= kids
    # both verify, by us and by Python from the published set
    assert heartbeat(server, bearer(old)).status_code == 200
    assert heartbeat(server, bearer(new)).status_code == 200
    assert verify(server, old)["sub"] == src.client_id
    assert verify(server, new)["sub"] == src.client_id
    assert audit_entries(server, "signing_key.rotated")[-1]["target"] == new_kid
    created = audit_entries(server, "signing_key.created")  # the first one, made on first need
    assert len(created) == 1 and created[0]["actor_kind"] == "server", created
    # the private keys are sealed: no PEM private key in the database
    con = server.db()
    try:
        rows = con.execute("SELECT sealed, public_pem FROM signing_keys").fetchall()
    finally:
        con.close()
    assert len(rows) >= 2
    for sealed, pub in rows:
        assert b"PRIVATE KEY" not in bytes(sealed)
        assert "PUBLIC KEY" in pub


# ---------------------------------------------------------------------------------------------
# a server of its own: tokens that expire in a second, tiny rate limits


@pytest.fixture
def short(own_server):
    srv = own_server(start=False)
    with open(srv.data_dir / "dtm.conf", "a") as f:
        f.write("\n[oauth]\ntoken_ttl = 1\nleeway = 0\n\n[ratelimit]\nip_rate = 1\nip_burst = 5\n")
    srv.start(https=False)
    return srv


def test_expired_token_is_401(short):
    src = short.add_system()
    tok = get_token(short, src)
    assert tok["expires_in"] == 1
    h = bearer(tok["access_token"])
    deadline = time.time() + 3
    while time.time() < deadline:
        r = heartbeat(short, h)
        if r.status_code == 401:
            break
        assert r.status_code == 200, r.text
        time.sleep(0.2)
    r = heartbeat(short, h)
    T.assert_problem(r, 401)
    assert "invalid_token" in r.headers.get("WWW-Authenticate", "")
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(short, tok["access_token"])


def test_failed_client_authentication_is_rate_limited(short):
    src = short.add_system()
    assert heartbeat(short, src.headers).status_code == 200
    codes = []
    for _ in range(7):
        r = token_request(short, {"grant_type": "client_credentials",
                                  "client_id": src.client_id, "client_secret": "dtmcs_wrong"})
        codes.append(r.status_code)
    assert 401 in codes and codes[-1] == 429, codes
    # the failures were charged to the address's failed-authentication bucket: even a valid
    # API key from it is refused until the bucket refills (a plain IP limit would not do this)
    r = heartbeat(short, src.headers)
    assert r.status_code == 429, r.text
    assert r.headers.get("Retry-After")


# ---------------------------------------------------------------------------------------------
# grants over the API (administrators; the same store as `dtm grant`)


def test_grants_api_for_admins(server, systems, sys_factory):
    import peoplelib as P

    if not getattr(server, "admin", None):
        pytest.skip("needs the admin of `dtm init` (an owned server)")
    src, consumer = systems
    c2 = sys_factory.add(role="consumer")
    body = {"system": c2.code, "dataset": "service_stats"}
    # connected systems may not manage grants, with a key or a token; nobody anonymous
    assert server.get("/api/v1/grants", headers=src.headers).status_code == 403
    tok = bearer(get_token(server, src)["access_token"])
    assert server.post("/api/v1/grants", json=body, headers=tok).status_code == 403
    assert server.get("/api/v1/grants").status_code == 401
    # before the grant: the consumer cannot even ask for the dataset's scope
    data = {"grant_type": "client_credentials", "client_id": c2.client_id,
            "client_secret": c2.client_secret, "scope": "read dataset:service_stats"}
    assert token_request(server, data).json()["error"] == "invalid_scope"

    admin = P.Person(server, server.admin["admin_username"], server.admin["admin_password"])
    admin.login_ok()
    P.enrol(admin)  # admins act only with MFA
    r = admin.post("/api/v1/grants", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["created"] is True and r.json()["system"] == c2.code
    r = admin.post("/api/v1/grants", json=body)
    assert r.status_code == 200 and r.json()["created"] is False, r.text
    r = admin.get("/api/v1/grants", params={"system": c2.code})
    assert r.status_code == 200, r.text
    assert [(g["system"], g["dataset"]) for g in r.json()["grants"]] == [(c2.code,
                                                                          "service_stats")]
    assert any(g["system"] == consumer.code and g["dataset"] == "transactions"
               for g in admin.get("/api/v1/grants").json()["grants"])
    # the same store as the CLI
    listed = json.loads(T.run_dtm("grant", "list", "--data-dir", server.data_dir, "--system",
                                  c2.code, "--json").stdout)
    assert [g["dataset"] for g in listed] == ["service_stats"]
    # the grant works at once: a token for the dataset, and reading it
    tok = token_request(server, data)
    assert tok.status_code == 200, tok.text
    h = bearer(tok.json()["access_token"])
    r = server.get("/api/v1/stats/service_stats", params={"metrics": "count"}, headers=h)
    assert r.status_code == 200, r.text
    # bad requests name the member
    r = admin.post("/api/v1/grants", json={"system": "NO_SUCH", "dataset": "transactions"},
                   headers={"Accept-Language": "en"})
    assert r.status_code == 422 and "system" in r.json()["detail"], r.text
    r = admin.post("/api/v1/grants", json={"system": c2.code, "dataset": "nope"},
                   headers={"Accept-Language": "en"})
    assert r.status_code == 422 and "dataset" in r.json()["detail"], r.text
    r = admin.post("/api/v1/grants", json={"system": c2.code})
    T.assert_problem(r, 400)
    r = admin.post("/api/v1/grants", data="system=x", headers={"Content-Type": FORM})
    assert r.status_code == 415, r.text
    r = admin.get("/api/v1/grants", params={"system": "NO_SUCH"})
    T.assert_problem(r, 404)
    # revoke: 204, then 404; the token issued before stops reading at once
    r = admin.req("DELETE", f"/api/v1/grants/{c2.code}/service_stats")
    assert r.status_code == 204, r.text
    r = admin.req("DELETE", f"/api/v1/grants/{c2.code}/service_stats")
    T.assert_problem(r, 404)
    r = server.get("/api/v1/stats/service_stats", params={"metrics": "count"}, headers=h)
    assert r.status_code == 403, r.text
    # audited as the person who did it
    added = P.audit_actions(server, "grant.added")
    revoked = P.audit_actions(server, "grant.revoked")
    assert any(e["actor"] == server.admin["admin_username"] and e["actor_kind"] == "user" and
               e["target"] == c2.code and e["detail"]["dataset"] == "service_stats"
               for e in added), added
    assert any(e["actor"] == server.admin["admin_username"] and e["target"] == c2.code
               for e in revoked), revoked
