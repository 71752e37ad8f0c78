"""POST /api/v1/ingest/{dataset} (CONTRACT §5): every content type, every status code,
validation, partial acceptance, atomic mode, system_code defaulting, receipts and record
lookup."""

import json

import pytest

import dtmtest as T

FORMATS = ["json", "ndjson", "xml", "csv"]


def lookup_ok(server, system, txn_id, sys_code=None):
    r = server.record(system, txn_id, sys_code)
    assert r.status_code == 200, f"record {txn_id} not found: {r.status_code} {r.text[:300]}"
    return r.json()


# ---- 200 with every content type ------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_ingest_each_format(server, src, fmt):
    recs = [T.txn(), T.txn(channel="mobile", response_ms=12),
            T.txn(status="failed", error_code="E42", error_reason="Hết thời gian chờ, thử lại",
                  channel="kiosk")]
    ct, body = T.encode(fmt, recs)
    r = server.ingest(src, None, data=body, headers={"Content-Type": ct})
    b = T.assert_ok(r)
    assert T.counts(b) == (3, 0, 0, 0), b
    assert b["errors"] == []
    assert isinstance(b["receipt"], str) and b["receipt"]
    for rec in recs:
        got = lookup_ok(server, src, rec["txn_id"])
        T.assert_same_record(rec, got["record"])
        assert got["record"]["system_code"] == src.code, "system_code must default to the caller"
        assert got["revision"] == 1
        assert got["receipt"] == b["receipt"]


def test_ingest_single_object(server, src):
    rec = T.txn()
    b = T.assert_ok(server.ingest(src, rec))
    assert T.counts(b) == (1, 0, 0, 0)
    lookup_ok(server, src, rec["txn_id"])


def test_ingest_json_with_charset_parameter(server, src):
    rec = T.txn()
    r = server.ingest(src, None, data=T.body_json([rec]),
                      headers={"Content-Type": "application/json; charset=utf-8"})
    assert T.counts(T.assert_ok(r)) == (1, 0, 0, 0)


def test_ingest_csv_lf_line_endings_and_quoted_fields(server, src):
    recs = [T.txn(status="failed", error_code="E1", error_reason='Lỗi "kết nối", mã 7'),
            T.txn(error_reason="dòng một\ndòng hai", status="failed", error_code="E2")]
    body = T.body_csv(recs, lineterminator="\n")
    r = server.ingest(src, None, data=body, headers={"Content-Type": "text/csv"})
    assert T.counts(T.assert_ok(r)) == (2, 0, 0, 0)
    for rec in recs:
        got = lookup_ok(server, src, rec["txn_id"])["record"]
        assert got["error_reason"] == rec["error_reason"]


def test_ingest_explicit_own_system_code(server, src):
    rec = T.txn(system_code=src.code)
    assert T.counts(T.assert_ok(server.ingest(src, [rec]))) == (1, 0, 0, 0)
    got = lookup_ok(server, src, rec["txn_id"], sys_code=src.code)
    assert got["record"]["system_code"] == src.code


def test_ingest_other_dataset(server, src):
    ok = {"period_type": "month", "period_start": "2026-10-01", "service_code": T.uid("SV"),
          "total": 100, "success": 90, "failed": 10, "avg_response_ms": 700, "active_users": 40}
    bad = dict(ok, service_code=T.uid("SV"), success=95)  # success + failed > total
    b = T.assert_ok(server.ingest(src, [ok, bad], dataset="service_stats"))
    assert T.counts(b) == (1, 0, 0, 1), b
    assert [e["index"] for e in b["errors"]] == [1], b


# ---- validation: 200 partial, 422, atomic --------------------------------------------------


def test_partial_acceptance_reports_each_error(server, src):
    good = T.txn()
    recs = [good,
            T.txn(channel="fax"),                        # enum
            T.txn(status="failed"),                      # failed requires error_code
            T.txn(classification="secret"),              # S4
            T.txn(favourite_colour="blue"),              # unknown field
            T.txn(service_code=None),                    # required
            T.txn(citizen_id="12345"),                   # pattern
            T.txn(response_ms="fast")]                   # type
    b = T.assert_ok(server.ingest(src, recs))
    assert T.counts(b) == (1, 0, 0, 7), b
    T.check_error_items(b["errors"])
    by_index = {}
    for e in b["errors"]:
        by_index.setdefault(e["index"], []).append(e)
    assert sorted(by_index) == [1, 2, 3, 4, 5, 6, 7], b["errors"]
    assert any(e["field"] == "channel" for e in by_index[1]), by_index[1]
    assert any(e["field"] == "error_code" for e in by_index[2]), by_index[2]
    assert any(e["code"] == "secret" for e in by_index[3]), by_index[3]
    assert any(e["code"] == "unknown_field" and e["field"] == "favourite_colour"
               for e in by_index[4]), by_index[4]
    assert any(e["field"] == "service_code" and e["code"] == "required"
               for e in by_index[5]), by_index[5]
    assert any(e["field"] == "citizen_id" for e in by_index[6]), by_index[6]
    assert any(e["field"] == "response_ms" for e in by_index[7]), by_index[7]
    for e in b["errors"]:
        assert e["message"].strip(), e
    lookup_ok(server, src, good["txn_id"])
    for rec in recs[1:]:
        if "txn_id" in rec:
            assert server.record(src, rec["txn_id"]).status_code == 404, rec


def test_all_invalid_is_422(server, src):
    recs = [T.txn(status="bogus"), T.txn(classification="secret")]
    body = T.assert_problem(server.ingest(src, recs), 422)
    T.check_error_items(body["errors"])
    assert sorted({e["index"] for e in body["errors"]}) == [0, 1], body
    assert any(e["code"] == "secret" and e["index"] == 1 for e in body["errors"]), body
    for rec in recs:
        assert server.record(src, rec["txn_id"]).status_code == 404


def test_single_invalid_object_is_422(server, src):
    body = T.assert_problem(server.ingest(src, T.txn(finished_at="yesterday")), 422)
    assert body["errors"][0]["index"] == 0
    assert body["errors"][0]["field"] == "finished_at"


def test_finished_before_started_rejected(server, src):
    rec = T.txn(started_at="2026-11-20T10:00:05+07:00", finished_at="2026-11-20T10:00:01+07:00")
    body = T.assert_problem(server.ingest(src, [rec]), 422)
    assert body["errors"], body


def test_atomic_rejects_everything(server, src):
    good, bad = T.txn(), T.txn(priority="whenever")
    body = T.assert_problem(server.ingest(src, [good, bad], params={"atomic": "true"}), 422)
    assert any(e["index"] == 1 and e["field"] == "priority" for e in body["errors"]), body
    assert server.record(src, good["txn_id"]).status_code == 404, \
        "atomic=true stored a record of a rejected request"


def test_atomic_all_valid_is_200(server, src):
    recs = [T.txn(), T.txn()]
    b = T.assert_ok(server.ingest(src, recs, params={"atomic": "true"}))
    assert T.counts(b) == (2, 0, 0, 0)


# ---- 404, 415 -------------------------------------------------------------------------------


def test_unknown_dataset_404(server, src):
    T.assert_problem(server.ingest(src, [T.txn()], dataset="no_such_dataset"), 404)


@pytest.mark.parametrize("ct", ["text/plain", "application/octet-stream",
                                "application/x-www-form-urlencoded", None])
def test_unsupported_content_type_415(server, src, ct):
    headers = {"Content-Type": ct} if ct else {}
    r = server.ingest(src, None, data=T.body_json([T.txn()]), headers=headers)
    if ct is None:
        assert "Content-Type" not in r.request.headers
    T.assert_problem(r, 415)


# ---- receipts and record lookup -------------------------------------------------------------


def test_receipt(server, src, sys_factory):
    recs = [T.txn(), T.txn(channel="bogus")]
    b = T.assert_ok(server.ingest(src, recs))
    r = server.receipt(src, b["receipt"])
    assert r.status_code == 200, r.text
    rc = r.json()
    for k in ("id", "dataset", "system_code", "received_at", "accepted", "duplicates", "updated",
              "rejected", "records"):
        assert k in rc, f"receipt without {k}: {rc}"
    assert rc["id"] == b["receipt"]
    assert rc["dataset"] == "transactions"
    assert rc["system_code"] == src.code
    assert (rc["accepted"], rc["duplicates"], rc["updated"], rc["rejected"]) == (1, 0, 0, 1)
    assert len(rc["records"]) == 1
    T.assert_same_record(recs[0], rc["records"][0])
    other = sys_factory.add()
    T.assert_problem(server.receipt(other, b["receipt"]), 404)
    T.assert_problem(server.receipt(src, "no-such-receipt"), 404)


def test_record_lookup_unknown_404(server, src):
    T.assert_problem(server.record(src, "never-sent-" + T.uid()), 404)


def test_record_lookup_shape(server, src):
    rec = T.txn()
    T.assert_ok(server.ingest(src, [rec]))
    got = lookup_ok(server, src, rec["txn_id"])
    for k in ("record", "revision", "receipt", "history"):
        assert k in got, got
    assert got["history"] == []


def test_vietnamese_text_round_trip(server, src):
    rec = T.txn(status="failed", error_code="E9",
                error_reason="Không kết nối được CSDL quốc gia về dân cư — ưu tiên xử lý")
    T.assert_ok(server.ingest(src, [rec]))
    got = lookup_ok(server, src, rec["txn_id"])["record"]
    assert got["error_reason"] == rec["error_reason"]


def test_response_is_json_utf8(server, src):
    r = server.ingest(src, [T.txn(channel="fax")])
    assert r.status_code == 422
    r.content.decode("utf-8")
    json.loads(r.content)
