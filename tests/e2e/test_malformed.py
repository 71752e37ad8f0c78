"""Malformed bodies (T2.3; CONTRACT §5): 400 problem with the position ("line", "col") and
errors[0].code "syntax" / "utf8" / "xml_dtd"; nothing stored; XXE and entity expansion refused."""

import json
import time

import pytest

import dtmtest as T


def post_raw(server, system, body, ct):
    return server.ingest(system, None, data=body, headers={"Content-Type": ct})


def bad_request(r, code, line=None, col=None):
    p = T.assert_problem(r, 400)
    assert "line" in p and "col" in p, f"400 problem without line/col: {p}"
    assert isinstance(p["line"], int) and p["line"] >= 1, p
    assert isinstance(p["col"], int) and p["col"] >= 1, p
    assert p.get("errors"), f"400 problem without errors[]: {p}"
    assert p["errors"][0]["code"] == code, p
    if line is not None:
        assert p["line"] == line, f"expected line {line}, got {p['line']}: {p}"
    if col is not None:
        assert p["col"] == col, f"expected col {col}, got {p['col']}: {p}"
    return p


# ---- JSON / NDJSON --------------------------------------------------------------------------


def test_json_syntax_error_position(server, src):
    body = b'[\n  {"txn_id": "A1", "service_code": "SV01"},\n  {"txn_id": "A2", "status": }\n]'
    p = bad_request(post_raw(server, src, body, "application/json"), "syntax", line=3)
    assert p["col"] <= len('  {"txn_id": "A2", "status": }') + 1, p
    assert server.record(src, "A1").status_code == 404


def test_json_truncated(server, src):
    rec = T.txn()
    body = json.dumps([rec]).encode()[:-5]
    bad_request(post_raw(server, src, body, "application/json"), "syntax", line=1)
    assert server.record(src, rec["txn_id"]).status_code == 404


def test_json_trailing_garbage(server, src):
    rec = T.txn()
    body = json.dumps(rec).encode() + b" x"
    bad_request(post_raw(server, src, body, "application/json"), "syntax", line=1)
    assert server.record(src, rec["txn_id"]).status_code == 404


def test_json_invalid_utf8_position(server, src):
    # '\xff' is byte 13 of line 2 (line 1 is "[").
    body = b'[\n{"txn_id":"T\xff1","service_code":"SV01"}\n]'
    bad_request(post_raw(server, src, body, "application/json"), "utf8", line=2, col=13)


@pytest.mark.parametrize("seq", [b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82",
                                 b"\x80"])
def test_invalid_utf8_forms(server, src, seq):
    # overlong '/', UTF-16 surrogate, above U+10FFFF, truncated sequence, lone continuation
    rec = T.txn()
    body = json.dumps(rec).encode().replace(b'"HN"', b'"H' + seq + b'N"')
    assert seq in body
    bad_request(post_raw(server, src, body, "application/json"), "utf8", line=1)
    assert server.record(src, rec["txn_id"]).status_code == 404


def test_ndjson_error_line(server, src):
    recs = [T.txn(), T.txn()]
    body = T.body_ndjson(recs) + b'{"txn_id": "X", oops}\n' + T.body_ndjson([T.txn()])
    bad_request(post_raw(server, src, body, "application/x-ndjson"), "syntax", line=3)
    for rec in recs:
        assert server.record(src, rec["txn_id"]).status_code == 404, \
            "records before a syntax error were stored"


def test_ndjson_invalid_utf8_line(server, src):
    body = T.body_ndjson([T.txn(), T.txn()]) + b'{"txn_id":"\xfe"}\n'
    bad_request(post_raw(server, src, body, "application/x-ndjson"), "utf8", line=3, col=12)


def test_deep_nesting_does_not_crash(server, src):
    body = b"[" * 200_000 + b"]" * 200_000
    r = post_raw(server, src, body, "application/json")
    assert r.status_code in (400, 413, 422), (r.status_code, r.text[:300])
    assert server.get("/healthz").status_code == 200


# ---- CSV ------------------------------------------------------------------------------------


def test_csv_unterminated_quote(server, src):
    rec = T.txn()
    body = T.body_csv([rec, T.txn()]).decode()
    lines = body.split("\r\n")
    lines[2] = lines[2].replace(",", ',"', 1)  # opens a quote that never closes
    body = "\r\n".join(lines).encode()
    p = bad_request(post_raw(server, src, body, "text/csv"), "syntax")
    assert p["line"] >= 3, p
    assert server.record(src, rec["txn_id"]).status_code == 404


def test_csv_garbage_after_closing_quote(server, src):
    header = "txn_id,service_code,status,started_at\r\n"
    body = (header + '"T-1"x,SV01,success,2026-11-20T10:00:00+07:00\r\n').encode()
    bad_request(post_raw(server, src, body, "text/csv"), "syntax", line=2)


def test_csv_invalid_utf8(server, src):
    body = T.body_csv([T.txn()]).replace(b",HN,", b",H\xffN,")
    assert b"\xff" in body
    bad_request(post_raw(server, src, body, "text/csv"), "utf8", line=2)


# ---- XML ------------------------------------------------------------------------------------


def test_xml_syntax_error(server, src):
    rec = T.txn()
    body = T.body_xml([rec]).replace(b"</region_code>", b"</regio_code>")
    bad_request(post_raw(server, src, body, "application/xml"), "syntax", line=3)
    assert server.record(src, rec["txn_id"]).status_code == 404


def test_xml_invalid_utf8(server, src):
    body = T.body_xml([T.txn()]).replace(b">HN<", b">H\xffN<")
    assert b"\xff" in body
    bad_request(post_raw(server, src, body, "application/xml"), "utf8", line=3)


def test_xml_xxe_refused(server, src):
    tid = T.uid("XXE")
    body = ('<?xml version="1.0"?>\n'
            '<!DOCTYPE records [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
            '<records><record><txn_id>' + tid + '</txn_id><service_code>SV01</service_code>'
            '<status>success</status><started_at>2026-11-20T10:00:00+07:00</started_at>'
            '<error_reason>&x;</error_reason></record></records>\n').encode()
    r = post_raw(server, src, body, "application/xml")
    assert b"root:" not in r.content
    bad_request(r, "xml_dtd", line=2)
    assert server.record(src, tid).status_code == 404


def test_xml_billion_laughs_refused_fast(server, src):
    ents = ['<!ENTITY lol "lol">', '<!ENTITY lol1 "' + "&lol;" * 10 + '">']
    for i in range(2, 10):
        ents.append(f'<!ENTITY lol{i} "' + f"&lol{i - 1};" * 10 + '">')
    body = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n' + "\n".join(ents) + "\n]>\n"
            "<records><record><txn_id>&lol9;</txn_id></record></records>\n").encode()
    t0 = time.monotonic()
    r = post_raw(server, src, body, "application/xml")
    assert time.monotonic() - t0 < 5, "entity expansion took too long"
    bad_request(r, "xml_dtd", line=2)
    assert server.get("/healthz").status_code == 200


def test_xml_internal_doctype_without_entities_refused(server, src):
    body = (b'<?xml version="1.0"?>\n<!DOCTYPE records>\n'
            + T.body_xml([T.txn()]).split(b"\n", 1)[1])
    bad_request(post_raw(server, src, body, "application/xml"), "xml_dtd", line=2)


def test_xml_wrong_root(server, src):
    body = b'<?xml version="1.0"?>\n<rows><row><txn_id>T</txn_id></row></rows>\n'
    r = post_raw(server, src, body, "application/xml")
    assert r.status_code in (400, 422), (r.status_code, r.text[:300])
