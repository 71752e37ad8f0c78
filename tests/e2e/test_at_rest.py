"""Encryption at rest (T4.2, issue 5 item 6): record content, history and batch spool files are
sealed with AES-256-GCM under data keys wrapped by the master key, and `dtm key rotate-master`
replaces the master key while the server runs.

The test of the issue: after ingesting records with known marker values (realtime JSON, a batch
upload, `dtm import` of a file and of standard input, an update that keeps history, a rejected
batch row, an Idempotency-Key answer), no file of the data dir — the database, its -wal and -shm,
the rollups' file, spool files of a queued batch — holds any non-dimension field value or
personal value in clear (`grep -a`, as `strings | grep` would); nor does the server log. The
records still read back through the API, before and after a restart and a master-key rotation,
and the old master key no longer unwraps any data key.
"""

import gzip
import random
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import dtmtest as T


def marker(tag):
    """A value that cannot appear in a data dir by chance: letters and digits, 16+ characters."""
    return f"ZQ{tag}" + "".join(random.choices("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=14))


def digits(n):
    return str(random.randrange(10 ** (n - 1), 10 ** n))


class Markers:
    """Records whose non-dimension fields carry markers; remembers every marker sent."""

    def __init__(self, code):
        self.code = code
        self.values = []  # (what, text) never to be found in clear
        self.sent = {}    # txn_id → record as sent

    def record(self, tag, **over):
        txn_id = "T-" + marker(tag)
        reason = "reason " + marker(tag + "R")
        business = digits(10)
        citizen = digits(12)
        amount = digits(9)
        r = T.txn(txn_id=txn_id, system_code=self.code, status="failed", error_code="E42",
                  error_reason=reason, business_id=business, citizen_id=citizen,
                  amount=f"{amount}.37", **over)
        self.values += [("txn_id", txn_id), ("error_reason", reason.split()[1]),
                        ("business_id", business), ("citizen_id", citizen),
                        ("citizen_id middle", citizen[4:10]), ("amount", amount)]
        self.sent[txn_id] = r
        return r


def grep_clear(root, values):
    """{value: [files]} for the values found in clear in any file under root (grep -a: binary
    files searched as text, the way `strings | grep` finds them)."""
    hits = {}
    roots = [str(root)] + T.store_dirs(root)  # PostgreSQL: its files (tables, WAL)
    # one pass over the files for all the values (on PostgreSQL they include the cluster's WAL,
    # tens of MB): grep -o prints each match with its file (-Z: NUL after the name); a value
    # inside a longer one that matched at the same place is found in that match
    with tempfile.NamedTemporaryFile("w", suffix=".patterns") as f:
        f.write("".join(v + "\n" for _, v in values))
        f.flush()
        p = subprocess.run(["grep", "-r", "-a", "-o", "-Z", "-F", "-f", f.name, "--", *roots],
                           capture_output=True)
    assert p.returncode in (0, 1), p.stderr
    found = {}
    for line in p.stdout.split(b"\n"):
        path, sep, match = line.partition(b"\0")
        if sep:
            found.setdefault(match.decode("utf-8", "replace"), set()).add(path.decode())
    for what, v in values:
        files = sorted({x for m, paths in found.items() if v in m for x in paths})
        if files:
            hits[f"{what}={v}"] = files
    return hits


def files_of(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


def read_back(srv, system, m, txn_id, **expect):
    r = srv.record(system, txn_id, sys_code=m.code)
    assert r.status_code == 200, r.text
    body = r.json()
    rec = body["record"]
    sent = dict(m.sent[txn_id], **expect)
    for f in ("txn_id", "error_reason", "business_id"):
        assert rec[f] == sent[f], (f, rec, sent)
    assert rec["citizen_id"] == T.masked_partial(sent["citizen_id"])
    assert float(rec["amount"]) == float(sent["amount"])
    return body


def upload(srv, system, body, ctype="application/x-ndjson", headers=None):
    h = dict(system.headers)
    h["Content-Type"] = ctype
    h.update(headers or {})
    r = srv.post("/api/v1/batches", params={"dataset": "transactions"}, data=body, headers=h,
                 timeout=120)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def wait_batch(srv, system, bid, timeout=120):
    def done():
        b = srv.get(f"/api/v1/batches/{bid}", headers=system.headers).json()
        return b if b.get("status") in ("done", "failed", "cancelled") else None
    b = T.wait_for(done, timeout=timeout, interval=0.1)
    assert b, f"batch {bid} did not finish"
    return b


def kek_ids(data_dir):
    con = T.open_db(data_dir)
    try:
        return {k for (k,) in con.execute("SELECT kek_id FROM data_keys")}
    finally:
        con.close()


def test_markers_never_in_clear_and_master_rotation(own_server, tmp_path):
    srv = own_server(https=False)
    data = srv.data_dir
    s = srv.add_system()
    m = Markers(s.code)

    # realtime JSON, then an update of the first record (its old version goes to history)
    first = [m.record("RT") for _ in range(5)]
    T.assert_ok(srv.ingest(s, first))
    old_reason = first[0]["error_reason"]
    upd = dict(first[0], error_reason="reason " + marker("UP"))
    m.values.append(("updated error_reason", upd["error_reason"].split()[1]))
    body = T.assert_ok(srv.ingest(s, upd))
    assert body["updated"] == 1, body
    m.sent[upd["txn_id"]] = upd

    # an Idempotency-Key request (its answer is kept for replay)
    idem = [m.record("ID")]
    T.assert_ok(srv.ingest(s, idem, headers={"Idempotency-Key": marker("IK")}))

    # a batch upload (gzip) with a rejected row carrying markers in non-dimension fields
    batch = [m.record("BA") for _ in range(20)]
    bad = m.record("BX", channel="not-a-channel")
    del m.sent[bad["txn_id"]]  # not stored; its values must not be kept in clear either
    bid = upload(srv, s, gzip.compress(T.body_ndjson(batch + [bad])),
                 headers={"Content-Encoding": "gzip"})
    b = wait_batch(srv, s, bid)
    assert (b["status"], b["accepted"], b["rejected"]) == ("done", 20, 1), b

    # `dtm import` of a file (outside the data dir) and of standard input (spooled)
    imp = [m.record("IM") for _ in range(10)]
    f = tmp_path / "import.ndjson"
    f.write_bytes(T.body_ndjson(imp))
    T.run_dtm("import", "--data-dir", str(data), "--dataset", "transactions", str(f))
    piped = [m.record("PI") for _ in range(10)]
    T.run_dtm("import", "--data-dir", str(data), "--dataset", "transactions", "-",
              input=T.body_ndjson(piped).decode())
    f.unlink()

    # everything reads back through the API, history included
    for r in first[1:] + idem + batch + imp + piped:
        read_back(srv, s, m, r["txn_id"])
    h = read_back(srv, s, m, upd["txn_id"])
    assert [v["record"]["error_reason"] for v in h["history"]] == [old_reason]
    # the statistics scan opens records too (a question no cube answers)
    st = srv.get("/api/v1/stats/transactions", headers=s.headers,
                 params={"metrics": "count,sum:amount", "group_by": "error_code", "plan": "scan",
                         "where": f"system_code:eq:{s.code}"})
    assert st.status_code == 200, st.text
    assert st.json()["rows"][0][1] == 1 + 5 + 20 + 10 + 10, st.json()

    # while running, after the server's own WAL checkpoints: nothing in clear
    time.sleep(1.0)
    assert grep_clear(data, m.values) == {}, files_of(data)
    # the control: the same search finds a value that is stored in clear (a dimension)
    assert grep_clear(data, [("system_code", s.code)])

    # a batch still queued on disk (behind a larger one) is sealed too; kill -9 leaves it there
    big = [T.txn(system_code=s.code) for _ in range(20000)]
    upload(srv, s, T.body_ndjson(big))
    queued = [m.record("SP") for _ in range(5)]
    qid = upload(srv, s, T.body_ndjson(queued))
    srv.kill9()
    spooled = list((data / "batches").glob("*.data"))
    assert spooled, "no batch left in the spool"
    assert grep_clear(data, m.values) == {}
    srv.start(https=False)
    b = wait_batch(srv, s, qid, timeout=240)
    assert (b["status"], b["accepted"]) == ("done", 5), b
    for r in queued:
        read_back(srv, s, m, r["txn_id"])

    # stopped cleanly: the files at rest, and the log of every run
    assert srv.stop() == 0
    assert grep_clear(data, m.values) == {}, files_of(data)
    log = srv.log_text()
    leaked = [v for _, v in m.values if v in log]
    assert not leaked, f"values in the server log: {leaked}"

    # ---- master-key rotation on a running server
    srv.start(https=False)
    old_key = (data / "master.key").read_bytes()
    old_kek = T.master_kek(data / "master.key")
    assert kek_ids(data) == {T.kek_id(old_kek)}
    out = T.parse_kv(T.run_dtm("key", "rotate-master", "--data-dir", str(data)).stdout)
    new_kek = T.master_kek(data / "master.key")
    assert new_kek != old_kek
    assert out["kek_id"] == T.kek_id(new_kek) and out["previous_kek_id"] == T.kek_id(old_kek)
    assert int(out["data_keys_rewrapped"]) >= 1
    assert not (data / "master.key.next").exists()
    assert (data / "master.key").stat().st_mode & 0o777 == 0o600
    assert kek_ids(data) == {T.kek_id(new_kek)}

    # old and new records read on the server that kept running
    for r in first[1:] + batch + imp:
        read_back(srv, s, m, r["txn_id"])
    after = [m.record("AF") for _ in range(5)]
    T.assert_ok(srv.ingest(s, after))
    for r in after:
        read_back(srv, s, m, r["txn_id"])

    # the old master key unwraps no data key any more; the new one unwraps them all
    con = T.open_db(data)
    try:
        rows = con.execute("SELECT id, wrapped FROM data_keys").fetchall()
    finally:
        con.close()
    for kid, wrapped in rows:
        aad = b"dtm data key v1" + int(kid).to_bytes(4, "big")
        with pytest.raises(InvalidTag):
            AESGCM(old_kek).decrypt(bytes(wrapped[:12]), bytes(wrapped[12:]), aad)
        AESGCM(new_kek).decrypt(bytes(wrapped[:12]), bytes(wrapped[12:]), aad)
    # the records opened with the new key, from the files alone
    stored = {r["txn_id"] for r in T.stored_contents(data, "transactions")}
    assert set(m.sent) <= stored

    # a restart after the rotation; hashes, masks and the audit chain did not change
    assert srv.stop() == 0
    srv.start(https=False)
    for r in first[1:] + after + queued:
        read_back(srv, s, m, r["txn_id"])
    dup = T.assert_ok(srv.ingest(s, after[0]))
    assert dup["duplicates"] == 1, dup  # same key hash and content hash as before the rotation
    v = T.run_dtm("audit", "verify", "--data-dir", str(data))
    assert "intact" in v.stdout, v.stdout
    con = T.open_db(data)
    try:
        (n,) = con.execute("SELECT count(*) FROM audit_log WHERE action='key.master_rotated'"
                           ).fetchone()
        (nk,) = con.execute("SELECT count(*) FROM audit_log WHERE action='key.data_key_created'"
                            ).fetchone()
        (ndk,) = con.execute("SELECT count(*) FROM data_keys").fetchone()
    finally:
        con.close()
    assert n == 1
    assert nk == ndk >= 1  # every data key made is on the audit trail

    # the old key file given back as master.key: nothing opens with it
    assert srv.stop() == 0
    assert grep_clear(data, m.values) == {}
    keep = (data / "master.key").read_bytes()
    (data / "master.key").write_bytes(old_key)
    try:
        srv.start(https=False)
        r = srv.record(s, after[1]["txn_id"], sys_code=s.code)
        assert r.status_code >= 500, r.text
        assert after[1]["error_reason"] not in r.text
        srv.stop()
    finally:
        (data / "master.key").write_bytes(keep)


def test_legacy_plain_content_reads_and_blobs_do_not_move(own_server):
    """A record stored before T4.2 (plain JSON) still reads; a sealed blob copied to another
    record's row does not open there (the key hash is its associated data)."""
    srv = own_server(https=False)
    s = srv.add_system()
    a, b, c = (T.txn(system_code=s.code, error_reason="r" + marker(t)) for t in "ABC")
    T.assert_ok(srv.ingest(s, [a, b, c]))
    assert srv.stop() == 0
    con = (T.open_db(srv.data_dir) if T.pgcluster.enabled() else
           __import__("sqlite3").connect(str(srv.data_dir / "dtm.db")))
    try:
        keys = T.data_keys(srv.data_dir, con)
        rows = {}
        for rid, content, kh in con.execute("SELECT id, content, key_hash FROM records"):
            text = T.open_sealed(keys, content, kh).decode()
            for r in (a, b, c):
                if r["txn_id"] in text:
                    rows[r["txn_id"]] = (rid, bytes(content), text)
        assert len(rows) == 3
        assert all(v[1][:1] == b"\x01" for v in rows.values())  # sealed
        # a: back to plain JSON, as a data dir made before T4.2 holds it
        con.execute("UPDATE records SET content=? WHERE id=?",
                    (rows[a["txn_id"]][2].encode(), rows[a["txn_id"]][0]))
        # c: b's sealed blob
        con.execute("UPDATE records SET content=? WHERE id=?",
                    (rows[b["txn_id"]][1], rows[c["txn_id"]][0]))
        con.commit()
    finally:
        con.close()
    srv.start(https=False)
    ra = srv.record(s, a["txn_id"], sys_code=s.code)
    assert ra.status_code == 200 and ra.json()["record"]["error_reason"] == a["error_reason"]
    rb = srv.record(s, b["txn_id"], sys_code=s.code)
    assert rb.status_code == 200 and rb.json()["record"]["error_reason"] == b["error_reason"]
    rc = srv.record(s, c["txn_id"], sys_code=s.code)
    assert rc.status_code >= 500, rc.text
    assert b["error_reason"] not in rc.text
