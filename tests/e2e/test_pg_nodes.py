"""Several nodes sharing one PostgreSQL database (issue 9 item 3): two `dtm serve` processes on
different ports and one data dir (the deployment docs/SCALING.md describes: the data dir — its
master key, configuration and batch spool — on storage both nodes mount; the store in
PostgreSQL) give the same answers as one node. Concurrent ingest of the same keys through both
nodes stores each record once and acknowledges it as new exactly once; the rollups equal a scan
of the records; each batch is run by exactly one node; a scheduled backup is made once; an
Idempotency-Key used through node A replays through node B. Runs with DTM_TEST_STORE=postgresql."""

import json
import random
import re
import threading

import pytest

import dtmtest as T
import pgcluster

pytestmark = pytest.mark.skipif(not pgcluster.enabled(),
                                reason="several nodes share a PostgreSQL store: needs "
                                "DTM_TEST_STORE=postgresql")

KEYS = 300
CHUNK = 25


@pytest.fixture
def nodes(own_server, tmp_path):
    data = tmp_path / "data"
    T.dtm_init(str(data))
    # a backup is due at once: both nodes look for it 2 s after they start
    conf = data / "dtm.conf"
    text, n = re.subn(r"(?ms)(^\[backup\]$.*?^schedule_hours = )\d+$", r"\g<1>1",
                      conf.read_text())
    assert n == 1
    conf.write_text(text)
    a = own_server(data_dir=data, https=False, start=False)
    b = own_server(data_dir=data, https=False, start=False)
    b.log_path = tmp_path / "node-b.log"
    a.start(https=False)
    b.start(https=False)
    yield a, b
    for s in (a, b):
        if s.proc is not None:
            assert s.stop() == 0, s.log_tail()


def test_same_keys_through_two_nodes(nodes):
    a, b = nodes
    s = a.add_system()
    recs = [T.txn(txn_id=f"NODE-{T.uid('K')}-{i}", system_code=s.code, amount=str(100 + i))
            for i in range(KEYS)]
    answers, errors = [], []
    lock = threading.Lock()

    def client(node, seed):
        order = recs[:]
        random.Random(seed).shuffle(order)
        sess = T.new_session()
        for i in range(0, len(order), CHUNK):
            r = sess.post(node.url("/api/v1/ingest/transactions"), json=order[i:i + CHUNK],
                          headers=s.headers, timeout=60)
            with lock:
                (answers if r.status_code == 200 else errors).append(
                    r.json() if r.status_code == 200 else f"{r.status_code} {r.text[:200]}")
        sess.close()

    threads = [threading.Thread(target=client, args=(node, k))
               for k, node in enumerate((a, b, a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    accepted = sum(T.counts(x)[0] for x in answers)
    duplicates = sum(T.counts(x)[1] for x in answers)
    # each record new exactly once, a duplicate the three other times
    assert (accepted, duplicates) == (KEYS, 3 * KEYS)
    # stored once, revision 1, readable through either node
    for rec in recs[::17]:
        for node in (a, b):
            got = node.record(s, rec["txn_id"]).json()
            assert got["revision"] == 1 and got["history"] == [], got
    # exact rollups: the planner's answer equals a scan of the records, on both nodes
    params = {"metrics": "count,sum:amount", "group_by": "status",
              "system_code": s.code}

    def stats(node, plan=None):
        p = dict(params, **({"plan": plan} if plan else {}))
        r = node.get("/api/v1/stats/transactions", params=p, headers=s.headers)
        assert r.status_code == 200, r.text
        return r.json()["rows"]

    scan = stats(a, "scan")
    assert sum(int(r[1]) for r in scan) == KEYS
    assert T.wait_for(lambda: stats(a) == scan and stats(b) == scan, timeout=20), \
        (scan, stats(a), stats(b))


def test_idempotency_key_across_nodes(nodes):
    a, b = nodes
    s = a.add_system()
    key = T.uid("idem")
    rec = T.txn(system_code=s.code)
    r1 = a.ingest(s, [rec], headers={"Idempotency-Key": key})
    b1 = T.assert_ok(r1)
    assert T.counts(b1)[0] == 1
    r2 = b.ingest(s, [rec], headers={"Idempotency-Key": key})
    assert r2.status_code == 200, r2.text
    assert r2.headers.get("Idempotency-Replayed") == "true", dict(r2.headers)
    assert r2.json() == b1
    # another body under the key is refused by the other node too
    T.assert_problem(b.ingest(s, [T.txn(system_code=s.code)], headers={"Idempotency-Key": key}),
                     409)
    got = b.record(s, rec["txn_id"]).json()
    assert got["revision"] == 1 and got["history"] == []


def test_each_batch_run_by_one_node(nodes):
    a, b = nodes
    s = a.add_system()
    h = dict(s.headers)
    h["Content-Type"] = "application/x-ndjson"
    ids, rows = [], {}
    for k in range(4):
        node = (a, b)[k % 2]
        recs = [T.txn(system_code=s.code) for _ in range(1500)]
        r = node.post("/api/v1/batches", params={"dataset": "transactions"},
                      data=T.body_ndjson(recs), headers=h, timeout=120)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
        rows[ids[-1]] = recs

    def done(bid):
        x = a.get(f"/api/v1/batches/{bid}", headers=s.headers).json()
        return x if x.get("status") in ("done", "failed", "cancelled") else None
    for bid in ids:
        x = T.wait_for(lambda: done(bid), timeout=240, interval=0.2)
        assert x and (x["status"], x["accepted"], x["duplicates"]) == ("done", 1500, 0), x
    for bid in ids:
        for rec in rows[bid][::300]:
            assert b.record(s, rec["txn_id"]).json()["revision"] == 1
    # each batch ended on exactly one node, and was started only there (the logs read whole
    # once the nodes stopped)
    assert a.stop() == 0 and b.stop() == 0
    logs = {n: [json.loads(line) for line in n.log_text().splitlines()
                if line.startswith("{")] for n in (a, b)}
    for bid in ids:
        ended = [n for n in (a, b) for e in logs[n]
                 if e.get("msg") == "batch ended" and e.get("batch") == bid]
        started = [n for n in (a, b) for e in logs[n]
                   if e.get("msg") == "batch started" and e.get("batch") == bid]
        assert len(ended) == 1 and started == ended, (bid, len(ended), len(started))


def test_scheduled_backup_made_once(nodes):
    a, b = nodes
    found = T.wait_for(lambda: list((a.data_dir / "backups").glob("dtm-*.dtmb"))
                       if (a.data_dir / "backups").exists() else None, timeout=60)
    assert found, a.log_tail() + b.log_tail()
    made = lambda: sum("scheduled backup made" in n.log_text() for n in (a, b))  # noqa: E731
    assert T.wait_for(made, timeout=60) == 1
    # both nodes have looked (2 s after their start) and the claim went to one: no second
    # backup follows (a second would come within seconds of the first)
    con = T.open_db(a.data_dir)
    assert T.wait_for(lambda: con.execute(
        "SELECT count(*) FROM backup_runs WHERE status='ok'").fetchone()[0] >= 1, timeout=10)
    a.stop()  # a stopped node's thread never backs up again: only b could make a second one
    b.stop()
    runs = con.execute("SELECT count(*) FROM backup_runs WHERE status='ok'").fetchone()[0]
    assert runs == 1, runs
    assert len(list((a.data_dir / "backups").glob("dtm-*.dtmb"))) == 1
    assert made() == 1
