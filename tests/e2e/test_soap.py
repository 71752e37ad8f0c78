"""SOAP (CONTRACT §5, issue 8 item 1): a real SOAP client — Debian's python3-zeep — loads the WSDL
from the running server and calls every operation under SOAP 1.1 and 1.2 with both credentials
(X-API-Key and a WS-Security UsernameToken). Records sent by SOAP are the same records as REST's
(readable by REST, counted in statistics alike, idempotency honoured); faults carry the REST
problem's machine code, localised message and record errors; bad credentials, hostile XML
(billion laughs, external entities, deep nesting) are refused. The client examples of
docs/clients (python_zeep.py and the raw envelopes of SOAP-java-dotnet.md) run here, so they
cannot rot; the generated XSDs are checked by xmllint."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree
from zeep import Client
from zeep.exceptions import Fault
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

import dtmtest as T
import peoplelib as P

NS = {"d": "urn:dtm:soap"}
ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "clients" / "SOAP-java-dotnet.md"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"


def session(lang=None, key=None):
    s = T.new_session()
    if lang:
        s.headers["Accept-Language"] = lang
    if key:
        s.headers["X-API-Key"] = key
    return s


def client(server, system=None, version="1.1", token=True, lang=None, password=None):
    """A zeep client of the server's WSDL: the UsernameToken (token=True) or the X-API-Key
    header carries system's key; returns the service proxy of the SOAP version."""
    wsse = None
    key = None
    if system is not None and token:
        wsse = UsernameToken(system.code, password or system.api_key)
    elif system is not None:
        key = password or system.api_key
    c = Client(server.url("/soap?wsdl"), wsse=wsse,
               transport=Transport(session=session(lang, key)))
    return c.bind("DtmService", "DtmSoap12" if version == "1.2" else "DtmSoap11")


def rec(**kw):
    """A transactions record for zeep (response_ms an int, the rest text)."""
    r = T.txn(**kw)
    r.pop("citizen_id", None)
    return r


def fault_problem(f):
    """The <problem> of a zeep Fault's detail as a dict (errors: a list of dicts)."""
    p = f.detail.find(".//d:problem", NS)
    assert p is not None, etree.tostring(f.detail)
    out = {etree.QName(c).localname: c.text for c in p if etree.QName(c).localname != "errors"}
    out["errors"] = [{etree.QName(c).localname: c.text for c in e}
                     for e in p.iterfind("d:errors/d:error", NS)]
    out["status"] = int(out["status"])
    return out


def test_wsdl_describes_every_dataset_and_operation(server):
    r = server.get("/soap", params={"wsdl": ""})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/xml"), r.text[:300]
    doc = etree.fromstring(r.content)
    wsdl = "http://schemas.xmlsoap.org/wsdl/"
    ops = {o.get("name") for o in doc.iterfind(f"{{{wsdl}}}portType/{{{wsdl}}}operation")}
    assert ops == {"SubmitRecords", "GetBatchStatus", "QueryStats", "Ping"}
    schemas = {s.get("targetNamespace") for s in doc.iter("{http://www.w3.org/2001/XMLSchema}schema")}
    for code in ("transactions", "service_stats", "connection_logs", "security_events",
                 "training_stats", "inspections", "documents"):
        assert f"urn:dtm:dataset:{code}" in schemas
    # the dictionary's constraints are in the schema: required, enum values, lengths, patterns
    tx = server.get("/soap", params={"xsd": "transactions"}).text
    assert re.search(r'name="service_code" minOccurs="1"', tx)
    assert re.search(r'name="system_code" minOccurs="0"', tx)  # defaults to the sender
    assert '<xs:enumeration value="kiosk"/>' in tx and '<xs:maxLength value="64"/>' in tx
    assert '<xs:pattern value="[0-9]{12}"/>' in tx and 'base="xs:long"' in tx
    # zeep builds typed operations from it
    svc = Client(server.url("/soap?wsdl"), transport=Transport(session=session()))
    sub = svc.get_element("{urn:dtm:soap}SubmitRecords")
    assert [e[0] for e in sub.type.elements][:2] == ["dataset", "records"]


def test_xsds_are_valid_schemas_and_records_validate(server, tmp_path):
    xsd = tmp_path / "transactions.xsd"
    xsd.write_bytes(server.get("/soap", params={"xsd": "transactions"}).content)
    good = tmp_path / "good.xml"
    good.write_text('<d:record xmlns:d="urn:dtm:dataset:transactions"><d:txn_id>X1</d:txn_id>'
                    '<d:service_code>S</d:service_code><d:status>success</d:status>'
                    '<d:started_at>2026-11-20T10:00:00+07:00</d:started_at></d:record>')
    bad = tmp_path / "bad.xml"
    bad.write_text('<d:record xmlns:d="urn:dtm:dataset:transactions"><d:txn_id>X1</d:txn_id>'
                   '<d:service_code>S</d:service_code><d:status>lost</d:status>'
                   '<d:started_at>2026-11-20T10:00:00+07:00</d:started_at></d:record>')
    ok = subprocess.run(["xmllint", "--noout", "--schema", str(xsd), str(good)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    no = subprocess.run(["xmllint", "--noout", "--schema", str(xsd), str(bad)],
                        capture_output=True, text=True)
    assert no.returncode != 0 and "status" in no.stderr
    for code in ("service_stats", "connection_logs", "security_events", "training_stats",
                 "inspections", "documents"):
        f = tmp_path / f"{code}.xsd"
        f.write_bytes(server.get("/soap", params={"xsd": code}).content)
        p = subprocess.run(["xmllint", "--noout", "--schema", str(f), str(f)],
                           capture_output=True, text=True)
        assert "failed to compile" not in p.stderr and "parser error" not in p.stderr, p.stderr


@pytest.mark.parametrize("version,token", [("1.1", True), ("1.1", False), ("1.2", True),
                                           ("1.2", False)])
def test_submit_both_versions_both_credentials(server, src, version, token):
    svc = client(server, src, version, token)
    assert svc.Ping().systemCode == src.code
    recs = [rec(service_code="SOAPV"), rec(service_code="SOAPV", status="failed",
                                           error_code="E1")]
    a = svc.SubmitRecords(dataset="transactions", records={"transactions": recs})
    assert (a.accepted, a.duplicates, a.rejected) == (2, 0, 0) and a.receipt.startswith("r")
    # stored like REST's: readable by REST, and the receipt is REST's
    got = server.record(src, recs[1]["txn_id"])
    assert got.status_code == 200 and got.json()["record"]["error_code"] == "E1", got.text
    assert server.receipt(src, a.receipt).status_code == 200
    # the same records again are duplicates
    again = svc.SubmitRecords(dataset="transactions", records={"transactions": recs})
    assert (again.accepted, again.duplicates) == (0, 2)


def test_invalid_records_fault_with_field_errors_localised(server, src):
    bad = rec(status="lost")
    good = rec()
    a = client(server, src).SubmitRecords(dataset="transactions",
                                          records={"transactions": [good, bad]})
    assert (a.accepted, a.rejected) == (1, 1)
    (e,) = a.errors.error
    assert (e.index, e.field, e.code) == (1, "status", "enum")
    for version in ("1.1", "1.2"):
        for lang, word in ((None, "phải là một trong"), ("en", "must be one of")):
            svc = client(server, src, version, lang=lang)
            with pytest.raises(Fault) as fi:
                svc.SubmitRecords(dataset="transactions", records={"transactions": [bad]})
            p = fault_problem(fi.value)
            assert (p["code"], p["status"]) == ("validation", 422)
            (err,) = p["errors"]
            assert (err["index"], err["field"], err["code"]) == ("0", "status", "enum")
            assert word in err["message"], err
            # the same code and message as the REST problem
            rest = server.ingest(src, [bad], headers={"Accept-Language": lang or "vi"})
            assert T.assert_problem(rest, 422)["errors"][0]["message"] == err["message"]
            if version == "1.2":
                assert fi.value.code.endswith("Sender")
                assert [q.localname for q in fi.value.subcodes] == ["validation"]
            else:
                assert fi.value.code.endswith("Client")


def test_bad_credentials_are_faults_and_count_as_failed_authentications(server, src):
    other = server.add_system()
    cases = [
        client(server, src, "1.1", token=True, password="dtm_wrong_key"),
        client(server, src, "1.2", token=False, password="dtm_wrong_key"),
        # a right key under another system's name
        Client(server.url("/soap?wsdl"), wsse=UsernameToken(other.code, src.api_key),
               transport=Transport(session=session())).service,
        client(server),  # no credential at all
    ]
    for svc in cases:
        with pytest.raises(Fault) as fi:
            svc.Ping()
        p = fault_problem(fi.value)
        assert p["status"] == 401 and p["code"] in ("unauthenticated",), p
        assert "khóa API" in fi.value.message  # Vietnamese by default
    # the raw answer: HTTP 500 with a SOAP fault (SOAP 1.1 §6.2), the status in the detail
    env = _envelope("1.1", "<dtm:Ping/>", token=(src.code, "dtm_nope"))
    r = server.post("/soap", data=env, headers={"Content-Type": "text/xml; charset=utf-8",
                                                "SOAPAction": '""'})
    assert r.status_code == 500 and r.headers["Content-Type"].startswith("text/xml")
    assert b"<faultcode>soap:Client</faultcode>" in r.content
    # a source may send; a consumer may not (the REST rule, answered as a fault)
    consumer = server.add_system(role="consumer")
    with pytest.raises(Fault) as fi:
        client(server, consumer).SubmitRecords(dataset="transactions",
                                               records={"transactions": [rec()]})
    assert fault_problem(fi.value)["status"] == 403


def test_a_revoked_key_in_a_usernametoken_is_audited_like_rest(server):
    s = server.add_system()
    assert client(server, s).Ping().status == "ok"
    T.run_dtm("key", "revoke", "--data-dir", server.data_dir, "--id", s.key_id)
    with pytest.raises(Fault) as fi:
        client(server, s, "1.2", lang="en").Ping()
    assert fault_problem(fi.value)["status"] == 401
    assert "X-API-Key header, or a WS-Security UsernameToken" in fi.value.message
    rows = P.audit_actions(server, "auth.key_rejected",
                           until=lambda rows: any(x["actor"] == s.code for x in rows))
    mine = [x for x in rows if x["actor"] == s.code]
    assert mine and mine[-1]["target"] == s.key_id and mine[-1]["detail"]["reason"] == "revoked"
    assert mine[-1]["detail"]["route"] == "soap"
    assert s.api_key not in server.log_text()  # never a key in the log


def test_batch_status_of_a_rest_batch_and_ownership(server, src):
    body = "\n".join(json.dumps(rec()) for _ in range(3)) + "\n"
    r = server.post("/api/v1/batches", params={"dataset": "transactions"}, data=body,
                    headers={**src.headers, "Content-Type": "application/x-ndjson"})
    assert r.status_code == 202, r.text
    bid = r.json()["id"]
    svc = client(server, src, "1.2")
    done = T.wait_for(lambda: svc.GetBatchStatus(id=bid).status in ("done", "failed"), 20)
    assert done
    st = svc.GetBatchStatus(id=bid)
    assert (st.id, st.dataset, st.status, st.total, st.accepted) == (bid, "transactions", "done",
                                                                    3, 3)
    assert st.systemCode == src.code and st.finishedAt is not None
    with pytest.raises(Fault) as fi:
        client(server, server.add_system()).GetBatchStatus(id=bid)
    p = fault_problem(fi.value)
    assert (p["status"], p["code"]) == (404, "batch_not_found")


def test_stats_count_soap_records_like_rest_ones(server, src):
    svc = T.uid("SV").replace("-", "")[:12]
    a = client(server, src).SubmitRecords(
        dataset="transactions",
        records={"transactions": [rec(service_code=svc, response_ms=100) for _ in range(3)]})
    assert a.accepted == 3
    T.assert_ok(server.ingest(src, [T.txn(service_code=svc, response_ms=400) for _ in range(2)]))
    q = {"metrics": "count,avg:response_ms", "group_by": "service_code",
         "where": f"service_code:eq:{svc}"}
    rest = server.get("/api/v1/stats/transactions", params=q, headers=src.headers).json()
    assert rest["rows"] == [[svc, 5, 220]], rest
    for version in ("1.1", "1.2"):
        s = client(server, src, version).QueryStats(
            dataset="transactions", metrics=q["metrics"], groupBy="service_code",
            where=[q["where"]])
        assert list(s.columns.column) == rest["columns"]
        assert [list(row.v) for row in s.rows.row] == [[svc, "5", "220"]]
    with pytest.raises(Fault) as fi:
        client(server, src).QueryStats(dataset="transactions", metrics="median:response_ms")
    p = fault_problem(fi.value)
    assert (p["status"], p["code"]) == (400, "bad_parameter") and "metrics" in p["detail"]
    with pytest.raises(Fault) as fi:
        client(server, src).QueryStats(dataset="nope", metrics="count")
    assert fault_problem(fi.value)["code"] == "unknown_dataset"


def test_idempotency_key_replays_the_first_answer(server, src):
    key = T.uid("IK")
    recs = [rec(), rec()]
    first = client(server, src).SubmitRecords(dataset="transactions",
                                              records={"transactions": recs}, idempotencyKey=key)
    second = client(server, src, "1.2", token=False).SubmitRecords(
        dataset="transactions", records={"transactions": recs}, idempotencyKey=key)
    assert first.accepted == 2 and not first.replayed
    assert second.replayed and (second.accepted, second.receipt) == (2, first.receipt)
    with pytest.raises(Fault) as fi:
        client(server, src).SubmitRecords(dataset="transactions",
                                          records={"transactions": [rec()]}, idempotencyKey=key)
    assert fault_problem(fi.value)["code"] == "idempotency_key_reused"


def test_custom_dataset_defined_by_put_is_in_the_wsdl_and_accepts_records(server):
    admin = P.Person(server, server.admin["admin_username"], server.admin["admin_password"])
    admin.login_ok()
    P.enrol(admin)
    code = "soap_permits"
    d = server.get("/api/v1/datasets/transactions").json()
    d.update(code=code, version=1, title={"vi": "Giấy phép", "en": "Permits"})
    r = admin.req("PUT", f"/api/v1/datasets/{code}", json=d)
    assert r.status_code == 201, r.text
    s = server.add_system()
    svc = client(server, s, "1.2")  # a fresh WSDL, with the new dataset in it
    assert f"urn:dtm:dataset:{code}" in server.get("/soap", params={"wsdl": ""}).text
    a = svc.SubmitRecords(dataset=code, records={code: [rec(), rec()]})
    assert (a.accepted, a.rejected) == (2, 0)
    st = server.get(f"/api/v1/stats/{code}", headers=s.headers, params={"metrics": "count"})
    assert st.json()["rows"][0][-1] == 2, st.text
    # records of another dataset's element are refused with a fault naming it
    with pytest.raises(Fault) as fi:
        svc.SubmitRecords(dataset=code, records={"transactions": [rec()]})
    assert fault_problem(fi.value)["code"] == "malformed"


def _envelope(version, body, token=None, header_extra=""):
    ns = ("http://www.w3.org/2003/05/soap-envelope" if version == "1.2"
          else "http://schemas.xmlsoap.org/soap/envelope/")
    sec = ""
    if token:
        sec = (f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>'
               f"<wsse:Username>{token[0]}</wsse:Username><wsse:Password>{token[1]}"
               "</wsse:Password></wsse:UsernameToken></wsse:Security>")
    return (f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{ns}" xmlns:dtm="urn:dtm:soap">'
            f"<soap:Header>{sec}{header_extra}</soap:Header><soap:Body>{body}</soap:Body>"
            "</soap:Envelope>").encode()


def _post(server, env, version="1.1", **h):
    ct = "application/soap+xml; charset=utf-8" if version == "1.2" else "text/xml; charset=utf-8"
    headers = {"Content-Type": ct, **h}
    if version == "1.1":
        headers.setdefault("SOAPAction", '"urn:dtm:soap/Ping"')
    return server.post("/soap", data=env, headers=headers)


def _fault_code(r):
    assert r.status_code == 500, r.text[:300]
    doc = etree.fromstring(r.content)
    return doc.findtext(".//d:problem/d:code", namespaces=NS)


def test_hostile_xml_is_refused_and_nothing_is_fetched(server, src):
    lol = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
           + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                     for i in range(1, 10))
           + ']><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
           'xmlns:dtm="urn:dtm:soap"><soap:Body><dtm:Ping>&lol9;</dtm:Ping></soap:Body>'
           "</soap:Envelope>")
    r = _post(server, lol.encode(), **{"X-API-Key": src.api_key})
    assert _fault_code(r) == "xml_dtd"
    # an external entity pointing at a listener of ours: refused, and never fetched
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(4)
        ls.setblocking(False)
        port = ls.getsockname()[1]
        for version in ("1.1", "1.2"):
            xxe = (f'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM '
                   f'"http://127.0.0.1:{port}/x">]>').encode() + _envelope(
                version, "<dtm:Ping>&x;</dtm:Ping>").split(b"?>", 1)[1]
            r = _post(server, xxe, version, **{"X-API-Key": src.api_key})
            assert _fault_code(r) == "xml_dtd"
        with pytest.raises(BlockingIOError):
            ls.accept()
    # nesting past the bound
    deep = "<a>" * 100 + "</a>" * 100
    r = _post(server, _envelope("1.1", f"<dtm:Ping>{deep}</dtm:Ping>"),
              **{"X-API-Key": src.api_key})
    assert _fault_code(r) == "too_deep"
    # not XML, wrong version, an unknown mustUnderstand header, an unknown operation
    assert _fault_code(_post(server, b"<soap:Envelope", **{"X-API-Key": src.api_key})) == \
        "malformed"
    assert _fault_code(_post(server, _envelope("1.2", "<dtm:Ping/>"),
                             **{"X-API-Key": src.api_key})) == "version_mismatch"
    must = '<x:Tx xmlns:x="urn:x" soap:mustUnderstand="1"/>'
    assert _fault_code(_post(server, _envelope("1.1", "<dtm:Ping/>", header_extra=must),
                             **{"X-API-Key": src.api_key})) == "must_understand"
    assert _fault_code(_post(server, _envelope("1.1", "<dtm:Shutdown/>"), SOAPAction='""',
                             **{"X-API-Key": src.api_key})) == "unknown_operation"
    # SOAP 1.1 needs the SOAPAction header, naming the body's operation when not empty
    assert _fault_code(_post(server, _envelope("1.1", "<dtm:Ping/>"),
                             SOAPAction='"urn:dtm:soap/QueryStats"',
                             **{"X-API-Key": src.api_key})) == "soap_action"
    # another content type: a fault too (415 in its detail)
    r = server.post("/soap", data=b"{}", headers={"Content-Type": "application/json",
                                                  "X-API-Key": src.api_key})
    assert _fault_code(r) == "unsupported_media_type"
    # the server is fine afterwards
    assert client(server, src).Ping().status == "ok"


def test_failed_authentications_are_rate_limited_with_retry_after(own_server):
    """The same failed-authentication bucket as REST keys (key guessing): past it, a fault with
    status 429, retryAfter in the detail and the Retry-After header."""
    srv = own_server(start=False)
    with open(srv.data_dir / "dtm.conf", "a") as f:
        f.write("\n[ratelimit]\nenabled = true\nip_rate = 1\nip_burst = 3\n")
    s = srv.add_system()
    srv.start(https=False)
    svc = client(srv, s, password="dtm_wrong")
    seen = []
    for _ in range(6):
        with pytest.raises(Fault) as fi:
            svc.Ping()
        seen.append(fault_problem(fi.value))
    assert [p["status"] for p in seen[:3]] == [401] * 3, seen
    last = seen[-1]
    assert (last["status"], last["code"]) == (429, "rate_limited") and int(last["retryAfter"]) > 0
    # while over the limit even the right key is not checked, exactly as with X-API-Key
    r = _post(srv, _envelope("1.1", "<dtm:Ping/>", token=(s.code, s.api_key)))
    assert r.status_code == 500 and int(r.headers["Retry-After"]) > 0
    assert _fault_code(r) == "rate_limited"


def test_body_and_record_limits_are_rest_limits(own_server):
    """[ingest] max_body bounds an envelope (413 in the fault) and max_records a SubmitRecords
    (413 too_many_records), as for REST."""
    srv = own_server(start=False, https=False)
    with open(srv.data_dir / "dtm.conf", "a") as f:
        f.write("\n[ingest]\nmax_body = 8192\nmax_records = 3\n")
    s = srv.add_system()
    srv.start(https=False)
    big = _envelope("1.2", "<dtm:Ping>" + "x" * 9000 + "</dtm:Ping>")
    r = _post(srv, big, "1.2", **{"X-API-Key": s.api_key})
    assert _fault_code(r) == "too_large"
    assert etree.fromstring(r.content).findtext(".//d:problem/d:status", namespaces=NS) == "413"
    with pytest.raises(Fault) as fi:
        client(srv, s).SubmitRecords(dataset="transactions",
                                     records={"transactions": [rec() for _ in range(4)]})
    p = fault_problem(fi.value)
    assert (p["status"], p["code"]) == (413, "too_many_records")
    a = client(srv, s).SubmitRecords(dataset="transactions",
                                     records={"transactions": [rec() for _ in range(3)]})
    assert a.accepted == 3


def test_usernametoken_failures_feed_the_early_warning_rules(own_server):
    """T4.1: failed UsernameTokens count as failed authentications, as wrong X-API-Keys do."""
    from alert_sinks import WebhookSink, append_conf, channels_conf, wait_until
    hook = WebhookSink()
    try:
        srv = own_server(start=False, https=False)
        append_conf(srv.data_dir, "\n[ratelimit]\nenabled = false\n\n[warning]\n"
                    "ip_failures = 6\nip_window = 60\n\n"
                    + channels_conf(hook=hook, secret="whk-soap-warning-key-0123456789"))
        s = srv.add_system()
        srv.start(https=False)
        for i in range(8):
            r = _post(srv, _envelope("1.1", "<dtm:Ping/>", token=(s.code, f"dtm_guess{i:04d}")))
            assert _fault_code(r) == "unauthenticated"

        def brute():
            return [json.loads(b)["alert"] for _, _, b, _ in hook.received()
                    if json.loads(b)["alert"]["rule"] == "auth.brute_force_ip"]
        got = wait_until(brute, timeout=15)
        assert got and got[0]["key"] == "127.0.0.1", srv.log_tail()
    finally:
        hook.close()


def _doc_envelopes():
    text = DOC.read_text()
    out = {}
    for name, xml in re.findall(r"<!-- envelope: (\w+) -->\s*```xml\n(.*?)```", text, re.S):
        out[name] = xml
    assert set(out) == {"soap11", "soap12"}, out.keys()
    return out


def test_raw_envelopes_of_the_java_dotnet_note(server, src):
    env = _doc_envelopes()
    ids = {}
    for name, xml in env.items():
        ids[name] = T.uid("RAW")
        body = (xml.replace("{{DTM_SYSTEM}}", src.code).replace("{{DTM_API_KEY}}", src.api_key)
                .replace("{{TXN_ID}}", ids[name])).encode()
        if name == "soap11":
            r = server.post("/soap", data=body, headers={
                "Content-Type": "text/xml; charset=utf-8",
                "SOAPAction": '"urn:dtm:soap/SubmitRecords"'})
        else:
            r = server.post("/soap", data=body, headers={
                "Content-Type": "application/soap+xml; charset=utf-8",
                "X-API-Key": src.api_key})
        assert r.status_code == 200, r.text
        doc = etree.fromstring(r.content)
        assert doc.findtext(".//d:SubmitRecordsResponse/d:accepted", namespaces=NS) == "1"
        assert server.record(src, ids[name]).status_code == 200


def test_python_zeep_example_runs(server, src):
    env = {**os.environ, "DTM_URL": server.base_url, "DTM_SYSTEM": src.code,
           "DTM_API_KEY": src.api_key, "NO_PROXY": "*"}
    p = subprocess.run([sys.executable, str(ROOT / "docs" / "clients" / "python_zeep.py")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "accepted=1" in p.stdout and "refused: status enum" in p.stdout, p.stdout
    assert "row: ['ZEEP01'," in p.stdout and "batch: " in p.stdout, p.stdout
