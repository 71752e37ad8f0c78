"""Idempotency-Key (CONTRACT §5): the same key from the same system within 24 h returns the first
answer again (same status and body, `Idempotency-Replayed: true`) and stores nothing twice; the
same key with a different body is 409."""

import dtmtest as T


def post(server, system, key, recs, **kw):
    return server.ingest(system, recs, headers={"Idempotency-Key": key}, **kw)


def test_replay_returns_first_answer(server, src):
    key = T.uid("idem")
    recs = [T.txn(), T.txn(), T.txn(channel="telepathy")]
    r1 = post(server, src, key, recs)
    b1 = T.assert_ok(r1)
    assert T.counts(b1) == (2, 0, 0, 1)
    assert r1.headers.get("Idempotency-Replayed") in (None, "false"), r1.headers
    r2 = post(server, src, key, recs)
    assert r2.status_code == 200, r2.text
    assert r2.headers.get("Idempotency-Replayed") == "true", dict(r2.headers)
    # Without the replay, the second request would count 2 duplicates; the first answer comes back.
    assert r2.json() == b1, (b1, r2.json())
    for rec in recs[:2]:
        got = server.record(src, rec["txn_id"]).json()
        assert got["revision"] == 1 and got["history"] == [], got
    # The same body without the key is an ordinary request again: duplicates.
    b3 = T.assert_ok(server.ingest(src, recs))
    assert T.counts(b3) == (0, 2, 0, 1), b3


def test_replay_of_a_422(server, src):
    key = T.uid("idem")
    recs = [T.txn(status="unknown")]
    r1 = post(server, src, key, recs)
    p1 = T.assert_problem(r1, 422)
    r2 = post(server, src, key, recs)
    assert r2.status_code == 422, r2.text
    assert r2.headers.get("Idempotency-Replayed") == "true", dict(r2.headers)
    assert r2.json() == p1


def test_same_key_different_body_is_409(server, src):
    key = T.uid("idem")
    rec = T.txn()
    T.assert_ok(post(server, src, key, [rec]))
    other = T.txn()
    T.assert_problem(post(server, src, key, [other]), 409)
    assert server.record(src, other["txn_id"]).status_code == 404, \
        "a 409 request stored its record"
    # and the original key still replays
    r = post(server, src, key, [rec])
    assert r.status_code == 200 and r.headers.get("Idempotency-Replayed") == "true"


def test_key_is_per_system(server, src, sys_factory):
    other = sys_factory.add()
    key = T.uid("idem")
    rec = T.txn()
    b1 = T.assert_ok(post(server, src, key, [rec]))
    r2 = post(server, other, key, [rec])
    b2 = T.assert_ok(r2)
    assert r2.headers.get("Idempotency-Replayed") in (None, "false"), \
        "another system's Idempotency-Key replayed this system's answer"
    assert b2["receipt"] != b1["receipt"]
    assert T.counts(b2) == (1, 0, 0, 0)


def test_replay_with_other_content_type_same_records(server, src):
    # The body differs byte-wise (CSV instead of JSON): that is a different body → 409.
    key = T.uid("idem")
    rec = T.txn()
    T.assert_ok(post(server, src, key, [rec]))
    ct, body = T.encode("csv", [rec])
    r = server.ingest(src, None, data=body,
                      headers={"Content-Type": ct, "Idempotency-Key": key})
    T.assert_problem(r, 409)


def test_concurrent_same_key_stores_once(server, src):
    import concurrent.futures as cf
    key = T.uid("idem")
    recs = [T.txn() for _ in range(50)]

    def one(_):
        s = T.new_session()
        try:
            return s.post(server.url("/api/v1/ingest/transactions"), json=recs, timeout=30,
                          headers={"X-API-Key": src.api_key, "Idempotency-Key": key})
        finally:
            s.close()

    with cf.ThreadPoolExecutor(8) as ex:
        rs = list(ex.map(one, range(8)))
    ok = [r for r in rs if r.status_code == 200]
    # Either the replayed first answer, or (while the first is still running) 409 — never a
    # second processing of the body.
    assert ok, [(r.status_code, r.text[:200]) for r in rs]
    for r in rs:
        assert r.status_code in (200, 409), (r.status_code, r.text[:300])
    bodies = {r.text for r in ok}
    receipts = {r.json()["receipt"] for r in ok}
    assert len(receipts) == 1, f"the same Idempotency-Key produced several receipts: {bodies}"
    assert all(T.counts(r.json()) == (50, 0, 0, 0) for r in ok), bodies
    rc = server.receipt(src, receipts.pop()).json()
    assert rc["accepted"] == 50
