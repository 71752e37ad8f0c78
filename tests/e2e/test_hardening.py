"""Hardened inputs (issue 5 item 9, T2.3) against the real binary with real clients: XML with no
network, no DTD and no entities (XXE over file:// and http://, parameter entities, billion
laughs → 400 and nothing fetched); JSON nesting and size limits; header size and count limits
(431 / 414); strict content types (415 naming the accepted types); security headers on every
answer (HSTS on HTTPS only, CSP, nosniff, Referrer-Policy, X-Frame-Options); TLS 1.2+ with AEAD
suites only, checked with `openssl s_client`; SQL-injection strings in every parameter, path
segment and string field, stored and returned verbatim and harmless."""

import csv
import io
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
import requests

import dtmtest as T

INGEST = "/api/v1/ingest/transactions"
RECORDS = "/api/v1/datasets/transactions/records"


def post_raw(server, system, body, ct, path=INGEST, **kw):
    h = dict(system.headers)
    if ct is not None:
        h["Content-Type"] = ct
    return server.post(path, data=body, headers=h, **kw)


def error_code(p):
    return (p.get("errors") or [{}])[0].get("code")


class Listener:
    """A TCP listener on a free loopback port that counts the connections made to it (an
    external entity or DTD fetched over http:// would show up here)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            c.close()

    def close(self):
        self.stop = True
        self.t.join(2)
        self.sock.close()


@pytest.fixture
def listener():
    li = Listener()
    yield li
    li.close()


def record_xml(tid, extra=""):
    return ("<records><record><txn_id>" + tid + "</txn_id><service_code>SV01</service_code>"
            "<status>success</status><started_at>2026-11-20T10:00:00+07:00</started_at>"
            + extra + "</record></records>\n")


# ---- XML: no network, no DTD, no entity expansion ----------------------------------------------


def xxe_payloads(port):
    url = f"http://127.0.0.1:{port}/xxe"
    return {
        "file": '<!DOCTYPE records [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        "http": f'<!DOCTYPE records [<!ENTITY x SYSTEM "{url}">]>',
        "parameter": f'<!DOCTYPE records [<!ENTITY % p SYSTEM "{url}"> %p;]>',
        "external_dtd": f'<!DOCTYPE records SYSTEM "{url}">',
        "public_dtd": f'<!DOCTYPE records PUBLIC "-//X//EN" "{url}">',
    }


@pytest.mark.parametrize("kind", ["file", "http", "parameter", "external_dtd", "public_dtd"])
@pytest.mark.parametrize("ct", ["application/xml", "text/xml"])
def test_xxe_rejected_400_and_nothing_fetched(server, src, listener, kind, ct):
    tid = T.uid("XXE")
    doctype = xxe_payloads(listener.port)[kind]
    body = ('<?xml version="1.0"?>\n' + doctype + "\n"
            + record_xml(tid, "<error_reason>&x;</error_reason>" if kind in ("file", "http")
                         else "")).encode()
    r = post_raw(server, src, body, ct)
    if ct == "text/xml" and r.status_code == 415:
        pytest.skip("text/xml is not an accepted ingest type")
    p = T.assert_problem(r, 400)
    assert error_code(p) == "xml_dtd", p
    assert p["line"] == 2, p
    assert b"root:" not in r.content
    time.sleep(0.3)
    assert listener.hits == 0, "the server fetched an external entity or DTD"
    assert server.record(src, tid).status_code == 404


def test_doctype_hidden_behind_bom_comment_and_pi_rejected(server, src, listener):
    tid = T.uid("XXE")
    body = ("\ufeff<?xml version='1.0'?>\n<!-- a comment -->\n<?pi x?>\n"
            f'<!doctype records [<!ENTITY x SYSTEM "http://127.0.0.1:{listener.port}/">]>\n'
            + record_xml(tid, "<error_reason>&x;</error_reason>")).encode()
    p = T.assert_problem(post_raw(server, src, body, "application/xml"), 400)
    assert error_code(p) == "xml_dtd", p
    time.sleep(0.3)
    assert listener.hits == 0
    assert server.record(src, tid).status_code == 404


def test_billion_laughs_rejected_fast(server, src):
    ents = ['<!ENTITY lol "lol">']
    for i in range(1, 10):
        prev = "lol" if i == 1 else f"lol{i - 1}"
        ents.append(f'<!ENTITY lol{i} "' + f"&{prev};" * 10 + '">')
    tid = T.uid("LOL")
    body = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n' + "\n".join(ents) + "\n]>\n"
            + record_xml(tid, "<error_reason>&lol9;</error_reason>")).encode()
    t0 = time.monotonic()
    r = post_raw(server, src, body, "application/xml")
    assert time.monotonic() - t0 < 3, "the entities were expanded"
    p = T.assert_problem(r, 400)
    assert error_code(p) == "xml_dtd", p
    assert b"lollollol" not in r.content
    assert server.get("/healthz").status_code == 200
    assert server.record(src, tid).status_code == 404


def test_undeclared_entity_not_resolved(server, src):
    # no DOCTYPE at all: an entity reference is an error, not an empty string or a lookup
    tid = T.uid("ENT")
    body = record_xml(tid, "<error_reason>&xxe;</error_reason>").encode()
    T.assert_problem(post_raw(server, src, body, "application/xml"), 400)
    assert server.record(src, tid).status_code == 404


def test_xinclude_not_processed(server, src):
    tid = T.uid("XI")
    body = ('<records xmlns:xi="http://www.w3.org/2001/XInclude"><record><txn_id>' + tid
            + '</txn_id><service_code>SV01</service_code><status>success</status>'
            '<started_at>2026-11-20T10:00:00+07:00</started_at><error_reason>'
            '<xi:include href="file:///etc/passwd" parse="text"/></error_reason>'
            '</record></records>').encode()
    r = post_raw(server, src, body, "application/xml")
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert b"root:" not in r.content
    assert server.record(src, tid).status_code == 404


def test_xxe_in_a_batch_file_fails_without_fetching(server, src, listener):
    tid = T.uid("XXEB")
    body = ('<?xml version="1.0"?>\n' + xxe_payloads(listener.port)["http"] + "\n"
            + record_xml(tid, "<error_reason>&x;</error_reason>")).encode()
    r = post_raw(server, src, body, "application/xml", path="/api/v1/batches",
                 params={"dataset": "transactions"})
    assert r.status_code == 202, (r.status_code, r.text[:300])
    bid = r.json()["id"]
    b = T.wait_for(lambda: (lambda x: x if x["status"] in ("done", "failed", "cancelled")
                            else None)(server.get(f"/api/v1/batches/{bid}",
                                                  headers=src.headers).json()), timeout=60)
    assert b["status"] == "failed" and b["accepted"] == 0, b
    assert "DOCTYPE" in json.dumps(b), b
    assert listener.hits == 0
    assert server.record(src, tid).status_code == 404


# ---- JSON nesting and size limits --------------------------------------------------------------


@pytest.mark.parametrize("body,code", [
    (b"[" * 200000, "not_an_object"),
    (b"[" * 200000 + b"]" * 200000, "not_an_object"),
    (b'{"txn_id":' + b'{"a":' * 100000 + b"1" + b"}" * 100000 + b"}", "nested_value"),
    (b'[{"txn_id":' + b"[" * 100000 + b"]" * 100000 + b"}]", "nested_value"),
])
def test_json_deep_nesting_400_fast(server, src, body, code):
    t0 = time.monotonic()
    r = post_raw(server, src, body, "application/json")
    assert time.monotonic() - t0 < 3
    p = T.assert_problem(r, 400)
    assert error_code(p) == code, p
    assert server.get("/healthz").status_code == 200


def test_ndjson_deep_nesting_400(server, src):
    body = b'{"txn_id":' + b"[" * 100000 + b"\n"
    p = T.assert_problem(post_raw(server, src, body, "application/x-ndjson"), 400)
    assert error_code(p) == "nested_value", p


def test_json_body_over_limit_413_names_the_limit(server, src):
    body = b'[{"txn_id":"' + b"x" * (32 << 20) + b'"}]'
    r = post_raw(server, src, body, "application/json")
    p = T.assert_problem(r, 413)
    assert "33554432" in p["detail"], p
    assert server.get("/healthz").status_code == 200


def test_json_huge_string_field_is_a_validation_error_not_a_crash(server, src):
    rec = T.txn(error_reason="é" * 400000)
    r = server.ingest(src, [rec])
    assert r.status_code == 422, (r.status_code, r.text[:300])
    assert "error_reason" in r.text
    assert server.record(src, rec["txn_id"]).status_code == 404


# ---- header limits -----------------------------------------------------------------------------


def raw_http(server, request: bytes, timeout=5):
    host, port = server.base_url.split("://", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        try:
            s.sendall(request)
        except OSError:
            pass
        out = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        except OSError:
            pass
    return out


def status_of(resp: bytes):
    line = resp.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[1].isdigit() else 0


def test_huge_header_431(server):
    resp = raw_http(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000
                    + b"\r\nConnection: close\r\n\r\n")
    assert status_of(resp) == 431, resp[:200]
    assert server.get("/healthz").status_code == 200


def test_too_many_headers_431_problem(server, src):
    h = dict(src.headers)
    for i in range(80):
        h[f"X-H{i}"] = "1"
    r = server.get("/api/v1/systems", headers=h)
    p = T.assert_problem(r, 431)
    assert "64" in p["detail"], p
    assert r.headers.get("X-Request-Id")
    assert r.headers.get("Content-Security-Policy")
    # many more: past the connection's memory, libmicrohttpd's own 431
    resp = raw_http(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                    + b"".join(b"X-H%d: 1\r\n" % i for i in range(1000))
                    + b"Connection: close\r\n\r\n")
    assert status_of(resp) == 431, resp[:200]
    # a normal number of headers still passes
    h = dict(src.headers)
    for i in range(40):
        h[f"X-H{i}"] = "1"
    assert server.get("/api/v1/systems", headers=h).status_code == 200


def test_huge_request_line_414(server):
    resp = raw_http(server, b"GET /healthz?" + b"a" * 20000
                    + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(resp) in (414, 431), resp[:200]
    assert server.get("/healthz").status_code == 200


# ---- strict content types ----------------------------------------------------------------------


@pytest.mark.parametrize("ct", [None, "", "text/plain", "application/x-www-form-urlencoded",
                                "multipart/form-data; boundary=x", "application/json; charset=latin1",
                                "application/jsonx", "json"])
def test_ingest_wrong_or_missing_content_type_415(server, src, ct):
    rec = T.txn()
    h = dict(src.headers)
    if ct is not None:
        h["Content-Type"] = ct
    # requests would add its own type with json=; send the raw bytes
    r = requests.post(server.url(INGEST), data=T.body_json([rec]), headers=h, timeout=30)
    if ct is None:
        assert "Content-Type" not in r.request.headers
    p = T.assert_problem(r, 415)
    for t in ("application/json", "application/x-ndjson", "application/xml", "text/csv"):
        assert t in p["detail"], p
    assert server.record(src, rec["txn_id"]).status_code == 404


@pytest.mark.parametrize("ct", ["application/json", "application/json; charset=utf-8",
                                "Application/JSON; Charset=\"UTF-8\""])
def test_ingest_json_content_types_accepted(server, src, ct):
    rec = T.txn()
    r = post_raw(server, src, T.body_json([rec]), ct)
    assert r.status_code == 200, (r.status_code, r.text[:300])


@pytest.mark.parametrize("ct", [None, "text/plain", "application/xml",
                                "application/json; charset=iso-8859-1"])
def test_heartbeat_body_wrong_content_type_415(server, src, ct):
    h = dict(src.headers)
    if ct:
        h["Content-Type"] = ct
    r = requests.post(server.url("/api/v1/heartbeat"), data=b'{"note":"x"}', headers=h,
                      timeout=30)
    p = T.assert_problem(r, 415)
    assert "application/json" in p["detail"], p


def test_heartbeat_json_or_no_body_accepted(server, src):
    assert server.post("/api/v1/heartbeat", headers=src.headers).status_code == 200
    r = server.post("/api/v1/heartbeat", headers=src.headers, json={"note": "x"})
    assert r.status_code == 200, r.text[:300]


def test_batch_wrong_content_type_415(server, src):
    r = post_raw(server, src, b"a,b\n1,2\n", "text/plain", path="/api/v1/batches",
                 params={"dataset": "transactions"})
    p = T.assert_problem(r, 415)
    assert "text/csv" in p["detail"], p


def test_415_and_431_problems_in_vietnamese_and_english(server, src):
    h = {**src.headers, "Content-Type": "text/plain"}
    r = requests.post(server.url("/api/v1/heartbeat"), data=b"x", headers=h, timeout=30)
    p = T.assert_problem(r, 415)
    assert r.headers.get("Content-Language") == "vi"
    assert "Tài nguyên này" in p["detail"] and "application/json" in p["detail"], p
    r = requests.post(server.url("/api/v1/heartbeat"), data=b"x", timeout=30,
                      headers={**h, "Accept-Language": "en"})
    p = T.assert_problem(r, 415)
    assert p["detail"].startswith("This resource reads a body of type application/json"), p
    many = {f"X-H{i}": "1" for i in range(70)}
    p = T.assert_problem(server.get("/healthz", headers=many), 431)
    assert "64" in p["detail"] and "header" in p["detail"], p
    p = T.assert_problem(server.get("/healthz", headers={**many, "Accept-Language": "en"}), 431)
    assert p["detail"] == "A request may carry at most 64 header fields.", p


# ---- security headers --------------------------------------------------------------------------

API_CSP = "default-src 'none'"


def check_security_headers(r, https):
    h = r.headers
    where = f"{r.request.method} {r.url} → {r.status_code}"
    assert h.get("X-Content-Type-Options") == "nosniff", where
    csp = h.get("Content-Security-Policy", "")
    assert API_CSP in csp and "frame-ancestors 'none'" in csp, (where, csp)
    assert h.get("X-Frame-Options") == "DENY", where
    assert h.get("Referrer-Policy") == "no-referrer", where
    hsts = h.get("Strict-Transport-Security")
    if https:
        assert hsts and "max-age=" in hsts, (where, hsts)
        assert int(hsts.split("max-age=")[1].split(";")[0]) >= 15552000, hsts
    else:
        assert hsts is None, f"HSTS over plain HTTP: {where}"


def answers(base, src):
    s = T.new_session()
    key = src.headers
    rec = T.txn()
    return [
        s.get(base + "/healthz"),
        s.get(base + "/readyz"),
        s.get(base + "/api/v1/datasets"),
        s.get(base + "/nope"),
        s.delete(base + "/healthz"),
        s.get(base + "/api/v1/systems"),  # 401
        s.post(base + INGEST, json=[rec], headers=key),
        s.post(base + INGEST, data=b"[{", headers={**key, "Content-Type": "application/json"}),
        s.post(base + INGEST, data=b"x", headers={**key, "Content-Type": "text/plain"}),
        s.get(base + RECORDS, params={"format": "csv", "limit": 2}, headers=key),
        s.get(base + "/api/v1/stats/transactions", params={"metrics": "count"}, headers=key),
        s.get(base + "/api/v1/stats/transactions", params={"metrics": "nope"}, headers=key),
        s.head(base + "/healthz"),
    ]


def test_security_headers_on_every_http_answer(server, src):
    rs = answers(server.base_url, src)
    assert {r.status_code for r in rs} >= {200, 400, 401, 404, 405, 415}, [r.status_code for r in rs]
    for r in rs:
        check_security_headers(r, https=False)


def test_security_headers_and_hsts_on_every_https_answer(needs_https, src):
    rs = answers(needs_https.https_url, src)
    assert {r.status_code for r in rs} >= {200, 400, 401, 404, 405, 415}
    for r in rs:
        check_security_headers(r, https=True)


def test_security_headers_with_curl_over_https(needs_https):
    code, _, headers, rc, err = T.curl(needs_https.https_url + "/api/v1/datasets")
    assert (code, rc) == (200, 0), err
    low = headers.lower()
    for h in ("strict-transport-security: max-age=", "content-security-policy: default-src 'none'",
              "x-content-type-options: nosniff", "x-frame-options: deny",
              "referrer-policy: no-referrer"):
        assert h in low, (h, headers)


# ---- TLS: 1.2+ with strong AEAD suites only (openssl s_client) --------------------------------


def s_client(server, *args):
    host, port = server.https_url.split("://", 1)[1].rsplit(":", 1)
    p = subprocess.run(["openssl", "s_client", "-connect", f"{host}:{port}", "-servername",
                        "localhost", *args], input=b"", capture_output=True, timeout=20)
    out = (p.stdout + p.stderr).decode(errors="replace")
    ok = p.returncode == 0 and "Cipher is (NONE)" not in out and "Cipher is " in out
    return ok, out


@pytest.fixture
def openssl(needs_https):
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not installed")
    return needs_https


@pytest.mark.parametrize("ver,proto", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_openssl_tls12_and_tls13_work(openssl, ver, proto):
    ok, out = s_client(openssl, ver)
    assert ok, out[-1500:]
    assert f"Protocol  : {proto}" in out or f"New, {proto}" in out, out[-1500:]


@pytest.mark.parametrize("ver", ["-tls1", "-tls1_1"])
def test_openssl_tls10_and_tls11_refused(openssl, ver):
    # the client's security level lowered so that the refusal is the server's
    ok, out = s_client(openssl, ver, "-cipher", "DEFAULT:@SECLEVEL=0")
    assert not ok, f"{ver} accepted:\n{out[-1500:]}"


@pytest.mark.parametrize("cipher", [
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES128-SHA",
    "AES128-SHA", "AES256-GCM-SHA384", "DES-CBC3-SHA", "ECDHE-ECDSA-DES-CBC3-SHA", "RC4-SHA",
    "ECDHE-ECDSA-NULL-SHA", "AECDH-AES128-SHA", "ADH-AES128-GCM-SHA256", "PSK-AES128-CBC-SHA",
    "ECDHE-ECDSA-CAMELLIA128-SHA256", "DHE-RSA-AES128-SHA",
])
def test_openssl_weak_tls12_suites_refused(openssl, cipher):
    ok, out = s_client(openssl, "-tls1_2", "-cipher", f"{cipher}:@SECLEVEL=0")
    assert not ok, f"weak suite {cipher} accepted:\n{out[-1500:]}"


@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-GCM-SHA256",
                                    "ECDHE-ECDSA-AES256-GCM-SHA384",
                                    "ECDHE-ECDSA-CHACHA20-POLY1305"])
def test_openssl_aead_tls12_suites_work(openssl, cipher):
    host, port = openssl.https_url.split("://", 1)[1].rsplit(":", 1)
    cert = subprocess.run(["openssl", "x509", "-in", str(openssl.data_dir / "tls.crt"), "-noout",
                           "-text"], capture_output=True, text=True).stdout
    if "id-ecPublicKey" not in cert:
        cipher = cipher.replace("ECDSA", "RSA")
    ok, out = s_client(openssl, "-tls1_2", "-cipher", cipher)
    assert ok, out[-1500:]
    assert cipher in out, out[-1500:]


# ---- SQL injection: stored and returned verbatim, harmless -------------------------------------

INJECTIONS = [
    "' OR 1=1 --",
    '"; DROP TABLE records; --',
    "%' AND 1=1",
    "x' UNION SELECT content FROM records --",
    "1; DELETE FROM api_keys",
    "') OR ('1'='1",
    "\\'; DROP TABLE systems; --",
    "’ OR ‘1’=‘1 “x” ＇ OR １=１ ʼ",
    "_%_ LIKE '%",
    "Robert'); DROP TABLE records;--",
]
STRING_FIELDS = {"txn_id": 64, "agency_code": 64, "service_code": 64, "error_code": 64,
                 "error_reason": 1000, "region_code": 32}


def tables(server):
    con = server.db()
    try:
        if T.pgcluster.enabled():  # PostgreSQL: its catalog
            return sorted(r[0] for r in con.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid=c.relnamespace "
                "WHERE n.nspname='public' AND c.relkind IN ('r','i','v','p') UNION ALL "
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
        return sorted(r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table','index','trigger','view')"))
    finally:
        con.close()


@pytest.fixture(scope="module")
def injected(server, sys_factory):
    """One record per injection string, the string (made unique) in every string field."""
    s = sys_factory.add()
    before = tables(server)
    mark = T.uid("SQLI")[-8:]
    recs = []
    for i, inj in enumerate(INJECTIONS):
        rec = T.txn(status="failed")
        for f, n in STRING_FIELDS.items():
            v = f"{inj}{mark}{i}"
            rec[f] = v[-n:] if len(v) > n else v
        recs.append(rec)
    idem = "';DROP/**/TABLE/**/records;--" + mark  # visible ASCII, as the header must be
    r = server.ingest(s, recs, headers={"Idempotency-Key": idem})
    b = T.assert_ok(r)
    assert T.counts(b) == (len(recs), 0, 0, 0), b
    # the same Idempotency-Key (an injection string itself) replays the first answer
    r2 = server.ingest(s, recs, headers={"Idempotency-Key": idem})
    assert r2.json() == b
    return {"sys": s, "recs": recs, "mark": mark, "tables": before}


def same_strings(sent, got):
    for f in STRING_FIELDS:
        assert got[f] == sent[f], f"{f}: sent {sent[f]!r}, got {got[f]!r}"


def test_sqli_fields_stored_and_read_back_verbatim(server, injected):
    s = injected["sys"]
    for rec in injected["recs"]:
        r = server.record(s, rec["txn_id"])
        assert r.status_code == 200, (rec["txn_id"], r.text[:300])
        same_strings(rec, r.json()["record"])
        stored = T.stored_by_txn(server.data_dir, rec["txn_id"]) or None
        if stored:  # plain content (the at-rest encryption may hide it)
            same_strings(rec, stored[0])


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv", "xml"])
def test_sqli_fields_exported_verbatim(server, injected, fmt):
    s = injected["sys"]
    r = server.get(RECORDS, params={"format": fmt, "limit": 1000}, headers=s.headers)
    assert r.status_code == 200, r.text[:300]
    if fmt == "json":
        got = r.json()["records"]
    elif fmt == "ndjson":
        got = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    elif fmt == "csv":
        got = list(csv.DictReader(io.StringIO(r.text)))
    else:
        got = [{c.tag: (c.text or "") for c in rec} for rec in ET.fromstring(r.content)]
    by_id = {g["txn_id"]: g for g in got}
    for rec in injected["recs"]:
        assert rec["txn_id"] in by_id, (rec["txn_id"], list(by_id)[:5])
        same_strings(rec, by_id[rec["txn_id"]])
    assert len(got) == len(injected["recs"])


def test_sqli_in_where_filters_exactly(server, injected):
    s = injected["sys"]
    for rec in injected["recs"]:
        for f in ("service_code", "agency_code", "error_code", "region_code"):
            r = server.get(RECORDS, params={"where": f"{f}:eq:{rec[f]}"}, headers=s.headers)
            assert r.status_code == 200, r.text[:300]
            assert [g["txn_id"] for g in r.json()["records"]] == [rec["txn_id"]], (f, rec[f])
        r = server.get("/api/v1/stats/transactions", headers=s.headers,
                       params={"metrics": "count", "group_by": "service_code",
                               "where": f"service_code:in:{rec['service_code']}|x' OR '1'='1"})
        assert r.status_code == 200, r.text[:300]
        assert r.json()["rows"] == [[rec["service_code"], 1]], r.json()


@pytest.mark.parametrize("inj", INJECTIONS)
def test_sqli_in_every_query_parameter_refused_or_harmless(server, injected, inj):
    s = injected["sys"]
    h = s.headers
    st = "/api/v1/stats/transactions"
    bad = [
        (st, {"metrics": inj}), (st, {"metrics": "count", "group_by": inj}),
        (st, {"metrics": "count", "interval": inj}), (st, {"metrics": "count", "from": inj}),
        (st, {"metrics": "count", "to": inj}), (st, {"metrics": "count", "where": inj}),
        (st, {"metrics": "count", "where": f"{inj}:eq:x"}), (st, {"metrics": f"sum:{inj}"}),
        (st, {"metrics": "count", "format": inj}), (st, {"metrics": "count", "plan": inj}),
        (RECORDS, {"format": inj}), (RECORDS, {"limit": inj}), (RECORDS, {"after": inj}),
        (RECORDS, {"from": inj}), (RECORDS, {"where": inj}), ("/api/v1/batches", {"limit": inj}),
    ]
    for path, params in bad:
        r = server.get(path, params=params, headers=h)
        p = T.assert_problem(r, 400)
        assert p.get("detail"), p
    # values that are merely data: answered, nothing found
    ok = [
        (st, {"metrics": "count", "where": f"service_code:eq:{inj}"}),
        (RECORDS, {"where": f"service_code:in:{inj}|{inj}"}),
        ("/api/v1/datasets/transactions/record", {"txn_id": inj}),
    ]
    for path, params in ok:
        r = server.get(path, params=params, headers=h)
        assert r.status_code in (200, 404), (path, params, r.status_code, r.text[:300])
        if r.status_code == 200 and "rows" in r.json():
            assert r.json()["rows"] in ([[0]], []), r.json()
        if r.status_code == 200 and "records" in r.json():
            assert r.json()["records"] == [], r.json()
    # ingest and batch parameters
    r = server.ingest(s, [T.txn()], params={"mode": inj})
    T.assert_problem(r, 400)
    r = server.ingest(s, [T.txn()], params={"atomic": inj})
    T.assert_problem(r, 400)
    for params in ({"dataset": inj}, {"dataset": "transactions", "priority": inj},
                   {"dataset": "transactions", "mode": inj}):
        r = post_raw(server, s, b"{}", "application/json", path="/api/v1/batches", params=params)
        assert r.status_code in (400, 404), (params, r.status_code, r.text[:300])


@pytest.mark.parametrize("inj", INJECTIONS)
def test_sqli_in_path_segments_404(server, injected, inj):
    s = injected["sys"]
    seg = urllib.parse.quote(inj, safe="")
    for path in (f"/api/v1/systems/{seg}", f"/api/v1/batches/{seg}",
                 f"/api/v1/batches/{seg}/errors", f"/api/v1/receipts/{seg}",
                 f"/api/v1/datasets/{seg}", f"/api/v1/datasets/{seg}/records",
                 f"/api/v1/datasets/{seg}/record", f"/api/v1/stats/{seg}"):
        r = server.get(path, headers=s.headers)
        assert r.status_code in (403, 404), (path, r.status_code, r.text[:300])
        assert r.headers["Content-Type"].startswith(T.PROBLEM_CT)
    r = server.request("DELETE", f"/api/v1/batches/{seg}", headers=s.headers)
    assert r.status_code in (403, 404), r.text[:300]
    r = server.ingest(s, [T.txn()], dataset=seg)
    assert r.status_code == 404, r.text[:300]


def test_sqli_left_the_database_intact(server, injected):
    # after every injection test of the module: same tables, the records all there, once
    assert set(injected["tables"]) <= set(tables(server))
    s = injected["sys"]
    r = server.get("/api/v1/stats/transactions", params={"metrics": "count"}, headers=s.headers)
    assert r.status_code == 200 and r.json()["rows"] == [[len(INJECTIONS)]], r.text[:300]
    con = server.db()
    try:
        n = con.execute("SELECT count(*) FROM records").fetchone()[0]
        keys = con.execute("SELECT count(*) FROM api_keys").fetchone()[0]
        systems = con.execute("SELECT count(*) FROM systems").fetchone()[0]
    finally:
        con.close()
    assert n >= len(INJECTIONS) and keys >= 1 and systems >= 1
    assert server.get("/healthz").status_code == 200
    assert server.get("/readyz").status_code == 200
