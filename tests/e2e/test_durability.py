"""Durability (CONTRACT §5: "a 2xx means every accepted record is durably stored: a crash right
after the answer loses none of them").

Several cycles of: client threads post batches of unique records; the server is killed with
SIGKILL at a random moment (0.3–2 s into the load); it is restarted on the same data dir; then
- every record of every request that got a 200 is there (record table and receipts API),
- every request sent (acknowledged or not) is all-or-nothing: no batch is half-written,
- the database passes `PRAGMA integrity_check` and every stored row is whole JSON.

Env: DTM_DURABILITY_CYCLES (default 5), DTM_DURABILITY_SEED (default random, printed).
"""

import os
import random
import threading
import time

import pytest
import requests

import dtmtest as T

pytestmark = [pytest.mark.owns_server, pytest.mark.slow]

CYCLES = int(os.environ.get("DTM_DURABILITY_CYCLES", "5"))
THREADS = 4
BATCH = 40


def stored_ids(data_dir, prefix):
    """txn_id → number of rows, for the rows whose txn_id starts with prefix; also checks the
    integrity of the database and that each row is whole JSON with the required fields."""
    if not T.pgcluster.enabled():  # SQLite's file check (PostgreSQL keeps its own files)
        con = T.open_db(data_dir)
        try:
            (ok,) = con.execute("PRAGMA integrity_check").fetchone()
            assert ok == "ok", f"integrity_check: {ok}"
        finally:
            con.close()
    rows = T.stored_containing(data_dir, prefix)  # json.loads raises on a torn row
    ids = {}
    for rec in rows:
        for f in ("txn_id", "service_code", "status", "started_at", "system_code"):
            assert f in rec, f"stored row without {f}: {rec}"
        ids[rec["txn_id"]] = ids.get(rec["txn_id"], 0) + 1
    return ids


def test_kill9_loses_no_acknowledged_record(own_server):
    seed = int(os.environ.get("DTM_DURABILITY_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    print(f"durability seed {seed}")
    srv = own_server(https=False)
    src = srv.add_system()
    prefix = "DUR" + T.uid("")[1:9]
    acked = []       # (cycle, receipt, [txn_id])
    attempted = []   # [txn_id] of every request sent
    unexpected = []  # answers that are neither 200 nor a dead connection
    lock = threading.Lock()
    t_start = time.monotonic()
    stats = []

    for cycle in range(CYCLES):
        stop = threading.Event()
        url = srv.url("/api/v1/ingest/transactions")

        def worker(t, cycle=cycle, stop=stop, url=url):
            s = T.new_session()
            seq = 0
            while not stop.is_set():
                ids = [f"{prefix}-{cycle}-{t}-{seq}-{i}" for i in range(BATCH)]
                seq += 1
                body = [T.txn(txn_id=x) for x in ids]
                with lock:
                    attempted.append(ids)
                try:
                    r = s.post(url, json=body, headers=src.headers, timeout=20)
                except requests.RequestException:
                    break  # the server is gone
                if r.status_code == 200:
                    b = r.json()
                    if b.get("accepted") != BATCH:
                        with lock:
                            unexpected.append((r.status_code, r.text[:300]))
                    with lock:
                        acked.append((cycle, b["receipt"], ids))
                else:
                    with lock:
                        unexpected.append((r.status_code, r.text[:300]))
            s.close()

        threads = [threading.Thread(target=worker, args=(t,), daemon=True)
                   for t in range(THREADS)]
        for th in threads:
            th.start()
        time.sleep(rnd.uniform(0.3, 2.0))
        srv.kill9()
        stop.set()
        for th in threads:
            th.join(30)
            assert not th.is_alive(), "a client thread hung after the kill"

        srv.start()  # same data dir, same port
        n_acked = sum(1 for a in acked if a[0] == cycle)
        stats.append(n_acked)

        # 1. the database: every acknowledged record present once, every batch all-or-nothing
        ids = stored_ids(srv.data_dir, prefix)
        missing = [x for _, _, batch in acked for x in batch if x not in ids]
        assert not missing, (f"cycle {cycle}: {len(missing)} acknowledged records lost after "
                             f"kill -9, e.g. {missing[:5]} (seed {seed})")
        dup_rows = {x: n for x, n in ids.items() if n > 1}
        assert not dup_rows, f"records stored more than once: {list(dup_rows)[:5]}"
        half = []
        for batch in attempted:
            present = sum(1 for x in batch if x in ids)
            if present not in (0, len(batch)):
                half.append((batch[0], present))
        assert not half, f"cycle {cycle}: half-written requests (first id, present): {half[:5]}"

        # 2. the API: receipts of this cycle's acknowledged requests (a sample if many)
        mine = [a for a in acked if a[0] == cycle]
        for _, rid, batch in rnd.sample(mine, min(len(mine), 60)):
            r = srv.receipt(src, rid)
            assert r.status_code == 200, f"receipt {rid} lost: {r.status_code} {r.text[:200]}"
            rc = r.json()
            assert rc["accepted"] == BATCH, rc
            assert sorted(x["txn_id"] for x in rc["records"]) == sorted(batch)
            x = rnd.choice(batch)
            assert srv.record(src, x).status_code == 200, f"record {x} lost"

    assert not unexpected, f"answers other than 200 under load: {unexpected[:5]}"
    assert sum(stats) > 0, "no request was acknowledged at all"
    print(f"acknowledged requests per cycle: {stats}, total {sum(stats) * BATCH} records; "
          f"{len(attempted)} requests sent; {time.monotonic() - t_start:.1f} s")
    assert srv.stop() == 0
    # after a clean stop too
    ids = stored_ids(srv.data_dir, prefix)
    assert all(x in ids for _, _, batch in acked for x in batch)
