"""Authentication and authorisation of connected systems (T2.4; CONTRACT §3, §4): missing, wrong,
revoked and rotated keys; a source writing another system's code; an aggregator writing its
children's codes; key management while the server runs."""

import json

import pytest

import dtmtest as T


def test_missing_key_401(server):
    T.assert_problem(server.post("/api/v1/ingest/transactions", json=[T.txn()]), 401)


@pytest.mark.parametrize("key", ["", "not-a-key", "x" * 200, "dtm_" + "0" * 40])
def test_wrong_key_401(server, key):
    r = server.post("/api/v1/ingest/transactions", json=[T.txn()], headers={"X-API-Key": key})
    T.assert_problem(r, 401)


def test_receipt_and_record_need_key(server, src):
    b = T.assert_ok(server.ingest(src, [T.txn()]))
    T.assert_problem(server.get(f"/api/v1/receipts/{b['receipt']}"), 401)
    T.assert_problem(server.get("/api/v1/datasets/transactions/record",
                                params={"txn_id": "x"}), 401)
    T.assert_problem(server.post("/api/v1/heartbeat"), 401)


def test_revoked_key_stops_at_once(server, sys_factory):
    s = sys_factory.add()
    T.assert_ok(server.ingest(s, [T.txn()]))  # known and maybe cached by the server
    T.run_dtm("key", "revoke", "--data-dir", server.data_dir, "--id", s.key_id)
    rec = T.txn()
    T.assert_problem(server.ingest(s, [rec]), 401)
    T.assert_problem(server.get("/api/v1/datasets/transactions/record",
                                params={"txn_id": rec["txn_id"]}, headers=s.headers), 401)


def test_rotate_with_default_grace_keeps_old_key(server, sys_factory):
    s = sys_factory.add()
    T.assert_ok(server.ingest(s, [T.txn()]))
    p = T.run_dtm("key", "rotate", "--data-dir", server.data_dir, "--system", s.code, "--json")
    new = json.loads(p.stdout)
    T.assert_ok(server.ingest(s, [T.txn()]))  # old key, within the grace period
    rec = T.txn()
    r = server.post("/api/v1/ingest/transactions", json=[rec],
                    headers={"X-API-Key": new["api_key"]})
    T.assert_ok(r)
    # both keys act for the same system
    got = server.record(s, rec["txn_id"]).json()
    assert got["record"]["system_code"] == s.code
    # the new key can be revoked by its id; the old one stays valid
    T.run_dtm("key", "revoke", "--data-dir", server.data_dir, "--id", new["key_id"])
    T.assert_problem(server.post("/api/v1/ingest/transactions", json=[T.txn()],
                                 headers={"X-API-Key": new["api_key"]}), 401)
    T.assert_ok(server.ingest(s, [T.txn()]))


def test_rotate_with_zero_grace_invalidates_old_key(server, sys_factory):
    s = sys_factory.add()
    T.assert_ok(server.ingest(s, [T.txn()]))
    p = T.run_dtm("key", "rotate", "--data-dir", server.data_dir, "--system", s.code,
                  "--grace", "0")
    new = T.parse_kv(p.stdout)
    T.assert_problem(server.ingest(s, [T.txn()]), 401)
    T.assert_ok(server.post("/api/v1/ingest/transactions", json=[T.txn()],
                            headers={"X-API-Key": new["api_key"]}))


def test_system_added_while_serving_works_at_once(server):
    s = T.add_system(str(server.data_dir))
    T.assert_ok(server.ingest(s, [T.txn()]))
    p = T.run_dtm("system", "list", "--data-dir", server.data_dir, "--json")
    assert s.code in [x["code"] for x in json.loads(p.stdout)]


# ---- who may write which system_code ------------------------------------------------------


def test_source_cannot_write_other_systems_code(server, sys_factory):
    a, b = sys_factory.add(), sys_factory.add()
    rec = T.txn(system_code=b.code)
    T.assert_problem(server.ingest(a, [rec]), 403)
    assert server.record(b, rec["txn_id"]).status_code == 404, "a 403 request stored a record"
    assert server.record(a, rec["txn_id"], sys_code=b.code).status_code in (403, 404)


def test_source_mixed_batch_is_403_and_stores_nothing(server, sys_factory):
    a, b = sys_factory.add(), sys_factory.add()
    own, foreign = T.txn(), T.txn(system_code=b.code)
    T.assert_problem(server.ingest(a, [own, foreign]), 403)
    assert server.record(a, own["txn_id"]).status_code == 404, \
        "the own record of a 403 request was stored"
    assert server.record(b, foreign["txn_id"]).status_code == 404


def test_source_cannot_write_unregistered_code(server, src):
    rec = T.txn(system_code=T.system_code("NOPE"))
    T.assert_problem(server.ingest(src, [rec]), 403)


@pytest.mark.parametrize("fmt", ["csv", "xml", "ndjson"])
def test_source_foreign_code_in_other_formats(server, sys_factory, fmt):
    a, b = sys_factory.add(), sys_factory.add()
    ct, body = T.encode(fmt, [T.txn(system_code=b.code)])
    T.assert_problem(server.ingest(a, None, data=body, headers={"Content-Type": ct}), 403)


@pytest.fixture(scope="module")
def family(sys_factory):
    agg = sys_factory.add(role="aggregator")
    c1 = sys_factory.add(parent=agg.code)
    c2 = sys_factory.add(parent=agg.code)
    stranger = sys_factory.add()
    return agg, c1, c2, stranger


def test_aggregator_writes_for_children(server, family):
    agg, c1, c2, _ = family
    r1, r2, own = T.txn(system_code=c1.code), T.txn(system_code=c2.code), T.txn()
    b = T.assert_ok(server.ingest(agg, [r1, r2, own]))
    assert T.counts(b) == (3, 0, 0, 0), b
    got = server.record(c1, r1["txn_id"]).json()
    assert got["record"]["system_code"] == c1.code
    assert server.record(c2, r2["txn_id"]).json()["record"]["system_code"] == c2.code
    assert server.record(agg, own["txn_id"]).json()["record"]["system_code"] == agg.code
    # the aggregator's receipt lists what it sent
    rc = server.receipt(agg, b["receipt"])
    assert rc.status_code == 200, rc.text
    assert rc.json()["accepted"] == 3


def test_aggregator_cannot_write_unrelated_code(server, family):
    agg, c1, _, stranger = family
    rec = T.txn(system_code=stranger.code)
    T.assert_problem(server.ingest(agg, [rec]), 403)
    assert server.record(stranger, rec["txn_id"]).status_code == 404
    child_rec = T.txn(system_code=c1.code)
    T.assert_problem(server.ingest(agg, [child_rec, T.txn(system_code=stranger.code)]), 403)
    assert server.record(c1, child_rec["txn_id"]).status_code == 404, \
        "a 403 request stored its child record"


def test_child_cannot_write_parent_or_sibling(server, family):
    agg, c1, c2, _ = family
    T.assert_problem(server.ingest(c1, [T.txn(system_code=agg.code)]), 403)
    T.assert_problem(server.ingest(c1, [T.txn(system_code=c2.code)]), 403)


def test_consumer_cannot_push(server, sys_factory):
    c = sys_factory.add(role="consumer")
    T.assert_problem(server.ingest(c, [T.txn()]), 403)
