"""Records are stored by their data key (T1.4; CONTRACT §5): same key + identical content →
duplicate; same key + different content → update (accepted and updated), the older version kept
in the record's history."""

import time
from datetime import datetime

import dtmtest as T


def test_identical_resend_is_duplicate(server, src):
    recs = [T.txn(), T.txn()]
    b1 = T.assert_ok(server.ingest(src, recs))
    assert T.counts(b1) == (2, 0, 0, 0)
    b2 = T.assert_ok(server.ingest(src, recs))
    assert T.counts(b2) == (0, 2, 0, 0), b2
    assert b2["receipt"], "an all-duplicates answer still has a receipt"
    for rec in recs:
        got = server.record(src, rec["txn_id"]).json()
        assert got["revision"] == 1, got
        assert got["history"] == []
        assert got["receipt"] == b1["receipt"], "a duplicate must not replace the stored receipt"


def test_duplicate_regardless_of_field_order(server, src):
    rec = T.txn()
    T.assert_ok(server.ingest(src, rec))
    reordered = dict(reversed(list(rec.items())))
    assert list(reordered) != list(rec)
    b = T.assert_ok(server.ingest(src, reordered))
    assert T.counts(b) == (0, 1, 0, 0), b


def test_duplicate_across_formats(server, src):
    rec = T.txn()
    T.assert_ok(server.ingest(src, rec))
    for fmt in ("csv", "xml", "ndjson"):
        ct, body = T.encode(fmt, [rec])
        b = T.assert_ok(server.ingest(src, None, data=body, headers={"Content-Type": ct}))
        assert T.counts(b) == (0, 1, 0, 0), (fmt, b)


def test_duplicate_with_explicit_own_system_code(server, src):
    rec = T.txn()
    T.assert_ok(server.ingest(src, rec))
    b = T.assert_ok(server.ingest(src, dict(rec, system_code=src.code)))
    assert T.counts(b) == (0, 1, 0, 0), b


def test_update_keeps_history(server, src):
    v1 = T.txn(amount="150000")
    b1 = T.assert_ok(server.ingest(src, v1))
    time.sleep(0.01)
    v2 = dict(v1, amount="175000", status="failed", error_code="E7")
    b2 = T.assert_ok(server.ingest(src, v2))
    assert T.counts(b2) == (1, 0, 1, 0), b2
    got = server.record(src, v1["txn_id"]).json()
    assert got["revision"] == 2, got
    assert got["receipt"] == b2["receipt"]
    T.assert_same_record(v2, got["record"])
    assert len(got["history"]) == 1, got["history"]
    h = got["history"][0]
    for k in ("revision", "record", "receipt", "replaced_at"):
        assert k in h, h
    assert h["revision"] == 1
    assert h["receipt"] == b1["receipt"]
    T.assert_same_record(v1, h["record"])
    assert "error_code" not in h["record"]
    datetime.fromisoformat(h["replaced_at"].replace("Z", "+00:00"))  # RFC 3339

    # a third version; the second one joins the history
    v3 = dict(v2, amount="180000")
    b3 = T.assert_ok(server.ingest(src, v3))
    assert T.counts(b3) == (1, 0, 1, 0), b3
    got = server.record(src, v1["txn_id"]).json()
    assert got["revision"] == 3
    assert sorted(h["revision"] for h in got["history"]) == [1, 2]
    by_rev = {h["revision"]: h for h in got["history"]}
    T.assert_same_record(v2, by_rev[2]["record"])
    assert by_rev[2]["receipt"] == b2["receipt"]

    # resending the current content is a duplicate
    assert T.counts(T.assert_ok(server.ingest(src, v3))) == (0, 1, 0, 0)


def test_mixed_batch_counts(server, src):
    old = T.txn()
    same = T.txn()
    T.assert_ok(server.ingest(src, [old, same]))
    new = T.txn()
    changed = dict(old, response_ms=999)
    b = T.assert_ok(server.ingest(src, [new, same, changed, T.txn(channel="pigeon")]))
    assert T.counts(b) == (2, 1, 1, 1), b
    assert [e["index"] for e in b["errors"]] == [3], b
    rc = server.receipt(src, b["receipt"]).json()
    assert (rc["accepted"], rc["duplicates"], rc["updated"], rc["rejected"]) == (2, 1, 1, 1), rc
    # the receipt lists the records whose current version came with it: the new one and the
    # updated one (an old record, outside the range of ids the receipt created)
    assert sorted(r["txn_id"] for r in rc["records"]) == sorted([new["txn_id"], old["txn_id"]])
    # once a later request changes one of them, it is that request's record, no longer this one's
    T.assert_ok(server.ingest(src, dict(new, response_ms=1)))
    rc = server.receipt(src, b["receipt"]).json()
    assert [r["txn_id"] for r in rc["records"]] == [old["txn_id"]]


def test_update_with_masked_field_changed(server, src):
    v1 = T.txn()
    T.assert_ok(server.ingest(src, v1))
    v2 = dict(v1, citizen_id=T.citizen_id())
    b = T.assert_ok(server.ingest(src, v2))
    # only the masked form is compared; it changes unless first 4/last 2 happen to match
    if T.masked_partial(v1["citizen_id"]) != T.masked_partial(v2["citizen_id"]):
        assert T.counts(b) == (1, 0, 1, 0), b


def test_same_txn_id_different_systems_are_different_records(server, src, sys_factory):
    other = sys_factory.add()
    rec = T.txn()
    assert T.counts(T.assert_ok(server.ingest(src, rec))) == (1, 0, 0, 0)
    assert T.counts(T.assert_ok(server.ingest(other, rec))) == (1, 0, 0, 0)
    a = server.record(src, rec["txn_id"]).json()
    b = server.record(other, rec["txn_id"]).json()
    assert a["record"]["system_code"] == src.code
    assert b["record"]["system_code"] == other.code
    assert a["revision"] == b["revision"] == 1
