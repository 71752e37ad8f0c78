"""A PostgreSQL outage under load (issue 9 item 4): the database is stopped (`pg_ctl stop -m
fast`) while client threads keep ingesting, then started again. Every request is answered —
2xx only for records that are stored (each acknowledged key is read back afterwards), else 503
with Retry-After and a problem; /readyz is 503 while the database is away and 200 after; the
node reconnects by itself, without a restart. Runs with DTM_TEST_STORE=postgresql."""

import threading
import time

import pytest
import requests

import dtmtest as T
import pgcluster

pytestmark = pytest.mark.skipif(not pgcluster.enabled(),
                                reason="PostgreSQL backend: needs DTM_TEST_STORE=postgresql")

CLIENTS = 4
BATCH = 5000


def test_outage_under_load(own_server):
    srv = own_server()
    sys_ = srv.add_system()
    acked, refused, other, stop = [], [], [], threading.Event()
    lock = threading.Lock()

    def client():
        s = T.new_session()
        while not stop.is_set():
            rec = T.txn()
            try:
                r = s.post(srv.url("/api/v1/ingest/transactions"), json=rec,
                           headers=sys_.headers, timeout=30)
            except requests.RequestException as e:
                with lock:
                    other.append(repr(e))
                continue
            with lock:
                if 200 <= r.status_code < 300:
                    acked.append(rec["txn_id"])
                elif r.status_code == 503:
                    refused.append(r)
                else:
                    other.append(f"{r.status_code} {r.text[:200]}")
            if r.status_code == 503:
                time.sleep(0.05)
        s.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        assert T.wait_for(lambda: len(acked) >= 20, timeout=30), "no ingest before the outage"
        before = len(acked)
        # a batch running into the outage pauses and resumes after it
        h = dict(sys_.headers)
        h["Content-Type"] = "application/x-ndjson"
        batch = [T.txn(txn_id=T.uid("OB")) for _ in range(BATCH)]
        r = srv.post("/api/v1/batches", params={"dataset": "transactions"},
                     data=T.body_ndjson(batch), headers=h, timeout=120)
        assert r.status_code == 202, r.text
        bid = r.json()["id"]
        pgcluster.CLUSTER.stop_server()
        try:
            # the node notices: /readyz fails and ingest is refused with 503 + Retry-After
            assert T.wait_for(lambda: srv.get("/readyz", timeout=30).status_code == 503,
                              timeout=30), "readyz stayed 200 with the database stopped"
            n = len(refused)
            assert T.wait_for(lambda: len(refused) > n + 5, timeout=30), \
                "ingest was not refused while the database was stopped"
            time.sleep(1)
        finally:
            pgcluster.CLUSTER.start_server()
        # back by itself
        assert T.wait_for(lambda: srv.get("/readyz", timeout=30).status_code == 200,
                          timeout=60), "readyz did not come back after the database did"
        n = len(acked)
        assert T.wait_for(lambda: len(acked) > n + 20, timeout=60), \
            ("ingest did not succeed again after the database came back: "
             f"{len(acked) - n} acknowledged, {len(refused)} refused, other {other[-3:]}\n"
             + srv.log_tail(80))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    def done():
        x = srv.get(f"/api/v1/batches/{bid}", headers=sys_.headers).json()
        return x if x.get("status") in ("done", "failed", "cancelled") else None
    x = T.wait_for(done, timeout=240, interval=0.2)
    # every row stored once: new, or (a commit whose answer the outage cut off, redone on
    # resuming) a duplicate of itself
    assert x and x["status"] == "done" and x["accepted"] + x["duplicates"] == BATCH, x
    for rec in batch[::500]:
        assert srv.record(sys_, rec["txn_id"]).json()["revision"] == 1
    assert not other, other[:5]
    assert before >= 20 and refused
    for r in refused:
        assert r.headers.get("Retry-After", "").isdigit(), r.headers
        assert r.headers.get("Content-Type", "").startswith("application/problem+json"), r.headers
        assert r.json().get("status") == 503
    # every acknowledged record is stored, once
    for txn_id in acked:
        r = srv.record(sys_, txn_id)
        assert r.status_code == 200, (txn_id, r.status_code, r.text[:200])
    # the rollups agree with the records: a group whose rollup commit the outage cut off has
    # its cubes marked incomplete (then scanned), never silently short
    counts = {}
    for plan in ("scan", None):
        r = srv.get("/api/v1/stats/transactions", headers=sys_.headers,
                    params={"metrics": "count", **({"plan": plan} if plan else {})})
        assert r.status_code == 200, r.text
        counts[plan] = int(r.json()["rows"][0][0])
    assert counts["scan"] == counts[None] >= len(set(acked)) + BATCH, counts
    # the process is the same one, and still well
    assert srv.proc.poll() is None
    assert srv.get("/readyz").status_code == 200
    assert srv.stop() == 0, srv.log_tail()
