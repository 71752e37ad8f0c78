"""A batch whose chunk fails to commit loses nothing (issue 9, found by the two-node benchmark).
Two chunks are in flight at once: while chunk k commits, chunk k+1 is already queued. When the
store refuses chunk k's commit, chunk k+1 must not commit either — its progress would skip chunk
k's rows and the batch could end "done" without them. The batch pauses and resumes from the
progress last committed, and ends with every row stored.

The store is made to refuse by another connection holding its write lock for longer than the
server waits (SQLite's busy timeout; PostgreSQL's lock timeout), released as soon as the server
logs the failed commit."""

import json
import subprocess
import sqlite3
import time

import pytest

import dtmtest as T

pytestmark = [pytest.mark.owns_server,
              pytest.mark.skipif(bool(T.EXTERNAL_URL), reason="needs its own data dir")]


class WriteLock:
    """Another connection holding the store's write lock until release()."""

    def __init__(self, data_dir):
        if T.pgcluster.enabled():
            self.psql = subprocess.Popen(
                ["psql", T.pgcluster.dsn_of(data_dir), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.psql.stdin.write("BEGIN; LOCK TABLE batches IN EXCLUSIVE MODE; "
                                  "SELECT 'locked';\n")
            self.psql.stdin.flush()
            assert self.psql.stdout.readline().strip() == "locked"
            self.con = None
        else:
            self.con = sqlite3.connect(str(data_dir / "dtm.db"), timeout=30,
                                       isolation_level=None)
            self.con.execute("BEGIN EXCLUSIVE")

    def release(self):
        if self.con is not None:
            self.con.execute("ROLLBACK")
            self.con.close()
        else:
            self.psql.communicate("ROLLBACK;\n", timeout=30)


def chunk_failed(srv, rows=500):
    """Whether the server logged a failed group commit with a batch chunk's rows in it."""
    for line in srv.log_text().splitlines():
        if '"group commit failed' not in line:
            continue
        try:
            if json.loads(line).get("records", 0) >= rows:
                return True
        except ValueError:
            pass
    return False


def test_a_failed_chunk_commit_loses_no_row(own_server):
    srv = own_server(https=False, start=False)
    with open(srv.data_dir / "dtm.conf", "a") as f:
        f.write("\n[ingest]\nbatch_chunk = 500\n")
    srv.start(https=False)
    src = srv.add_system()
    n = 40000  # 80 chunks: the lock is taken while it runs
    rows = [T.txn(txn_id=f"BF-{i:06d}", system_code=src.code) for i in range(n)]
    body = "".join(json.dumps(r) + "\n" for r in rows)
    r = srv.post("/api/v1/batches", params={"dataset": "transactions"}, data=body,
                 headers={**src.headers, "Content-Type": "application/x-ndjson"}, timeout=60)
    assert r.status_code == 202, r.text
    bid = r.json()["id"]

    def status():
        return srv.get(f"/api/v1/batches/{bid}", headers=src.headers).json()

    assert T.wait_for(lambda: status()["accepted"] > 0, timeout=60, interval=0.02)
    lock = WriteLock(srv.data_dir)
    try:
        assert status()["status"] == "running", "the batch ended before the lock: make it longer"
        # a chunk's commit fails after the server's wait; the next one is queued by then.
        # On SQLite every write waits for the lock, so the first group to fail may hold only
        # connection logs or last-seen times: wait for the one with a chunk's records
        assert T.wait_for(lambda: chunk_failed(srv), timeout=60), srv.log_tail()
    finally:
        lock.release()

    assert T.wait_for(lambda: status()["status"] in ("done", "failed"), timeout=90, interval=0.2)
    b = status()
    assert b["status"] == "done", b
    assert (b["total"], b["accepted"], b["duplicates"], b["rejected"]) == (n, n, 0, 0), b
    st = srv.get("/api/v1/stats/transactions", headers=src.headers,
                 params={"metrics": "count", "plan": "scan"})
    assert st.json()["rows"][0][0] == n, st.text
    # the log is written out every 200 ms
    assert T.wait_for(lambda: "batch paused" in srv.log_text(), timeout=10), srv.log_tail()
    assert srv.stop() == 0
