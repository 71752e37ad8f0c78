"""Backups, restores and the recovery drill (issue 10 items 1-2; CONTRACT §1 `dtm backup -o FILE`,
`dtm restore FILE`; issue 5 item 6: every backup encrypted under a key wrapped by the master key).

All against the real binary: `dtm backup` while `dtm serve` ingests from several threads, `dtm
restore` into a new data dir, a second `dtm serve` on it, counts and statistics compared with the
backup's manifest; damaged, truncated, foreign backups and non-empty targets refused with exit 1;
no marker value in clear in the backup file; `dtm backup verify`; `dtm drill`; the server's
scheduled backups."""

import json
import os
import re
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

import dtmtest as T
import pgcluster


pytestmark = pytest.mark.skipif(bool(T.EXTERNAL_URL),
                                reason="needs its own data dirs and servers")


def backup(data_dir, out, *extra, check=True):
    p = T.run_dtm("backup", "-o", str(out), "--data-dir", str(data_dir), "--json", *extra,
                  check=check, timeout=120)
    return p


def restore(out, new_dir, key=None, check=False):
    """`dtm restore`; on PostgreSQL into a new, empty database (T.run_dtm adds --store-dsn)."""
    args = ["restore", str(out), "--data-dir", str(new_dir), "--json"]
    if key is not None:
        args += ["--master-key", str(key)]
    return T.run_dtm(*args, check=check, timeout=120)


def has_store(data_dir):
    """The restored data dir holds its store: dtm.db, or on PostgreSQL a dtm.conf naming the
    database, which holds the schema."""
    if not pgcluster.enabled():
        return (Path(data_dir) / "dtm.db").exists()
    con = T.open_db(data_dir)
    return con.execute("SELECT count(*) FROM schema_version").fetchone()[0] >= 1


def one_sentence(p):
    """CONTRACT §1: the error is one clear sentence on stderr (log lines aside)."""
    lines = [l for l in p.stderr.splitlines() if l.startswith("dtm: ")]
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A data dir with a server and a source system, and a backup made of it (with marker values
    in a non-dimension field)."""
    root = tmp_path_factory.mktemp("bak")
    data = root / "data"
    T.dtm_init(str(data))
    srv = T.DtmServer(data, log_path=root / "serve.log")
    srv.start(https=False)
    s = srv.add_system()
    marker = "MARKER-" + T.uid("BK")
    recs = [T.txn(system_code=s.code, error_reason=f"{marker} {i}", citizen_id=T.citizen_id(),
                  amount="1500.25") for i in range(50)]
    T.assert_ok(srv.ingest(s, recs))
    out = root / "live.dtmb"
    m = json.loads(backup(data, out).stdout)
    yield {"root": root, "data": data, "srv": srv, "sys": s, "marker": marker, "file": out,
           "manifest": m, "records": recs}
    srv.stop()


def test_backup_under_ingest_restores_the_snapshot(tmp_path, own_server):
    """Backup while four threads ingest; the restored server holds exactly the snapshot: its
    counts are the manifest's, every record acknowledged before the backup started is there,
    nothing that was never sent is, and a statistic matches the restored records."""
    srv = own_server(https=False)
    s = srv.add_system()
    prefix = "BU" + T.uid("X")[2:8]
    acked = []  # (time acknowledged, txn_id)
    lock = threading.Lock()
    stop = threading.Event()
    sent = set()
    errors = []

    def ingest(n):
        sess = T.new_session()
        i = 0
        while not stop.is_set():
            batch = [T.txn(txn_id=f"{prefix}-{n}-{i}-{j}", system_code=s.code,
                           amount=str(10 + j)) for j in range(25)]
            i += 1
            with lock:
                sent.update(r["txn_id"] for r in batch)
            try:
                r = sess.post(srv.url("/api/v1/ingest/transactions"), json=batch,
                              headers=s.headers, timeout=30)
            except Exception as e:  # noqa: BLE001 — recorded and asserted below
                errors.append(repr(e))
                continue
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:200]}")
                continue
            now = time.monotonic()
            with lock:
                acked.extend((now, t["txn_id"]) for t in batch)

    threads = [threading.Thread(target=ingest, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        assert T.wait_for(lambda: len(acked) >= 500, timeout=20), "ingest did not start"
        started = time.monotonic()
        out = tmp_path / "under-load.dtmb"
        m = json.loads(backup(srv.data_dir, out).stdout)
        time.sleep(0.3)  # ingest goes on after the snapshot
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    before = {tid for (at, tid) in acked if at < started}
    assert len(before) >= 500
    n_snap = m["datasets"]["transactions"]
    # the snapshot's rollups are never ahead of its records
    assert m["cubes_applied_seq"] <= m["last_receipt_seq"]
    assert m["records"] == sum(m["datasets"].values())
    assert len(before) <= n_snap < len(sent)

    new = tmp_path / "restored"
    p = restore(out, new, srv.data_dir / "master.key")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["records"] == m["records"]
    assert not Path(str(new) + ".partial").exists()
    assert (new / "master.key").stat().st_mode & 0o777 == 0o600
    assert (new / "master.key").read_bytes() == (srv.data_dir / "master.key").read_bytes()

    got = T.stored_txn_ids(new, prefix)
    assert len(got) == n_snap
    assert before <= set(got), f"{len(before - set(got))} acknowledged records missing"
    assert set(got) <= sent
    assert all(v == 1 for v in got.values())

    # a second server on the restored data dir answers the snapshot's numbers
    srv.stop()
    srv2 = own_server(data_dir=new, https=False)
    st = srv2.get("/api/v1/stats/transactions", headers=s.headers,
                  params={"metrics": "count,sum:amount", "group_by": "status"})
    assert st.status_code == 200, st.text
    rows = st.json()["rows"]
    assert sum(int(r[1]) for r in rows) == n_snap
    stored = T.stored_contents(new, "transactions")
    assert sum(Decimal(str(r[2])) for r in rows) == sum(Decimal(r["amount"]) for r in stored)
    # the restored data dir takes new records, and its audit trail is intact and says so
    T.assert_ok(srv2.ingest(s, [T.txn(system_code=s.code)]))
    srv2.stop()
    p = T.run_dtm("audit", "verify", "--data-dir", str(new))
    assert "intact" in p.stdout
    p = T.run_dtm("audit", "list", "--data-dir", str(new), "--action", "backup.restored",
                  "--format", "json")
    assert "backup.restored" in p.stdout


def test_backup_file_has_nothing_in_clear(live):
    """The backup holds no record value, no configuration and no key in clear; nor the master
    key at all."""
    blob = live["file"].read_bytes()
    assert blob[:8] == b"DTMBACK1"
    assert live["marker"].encode() not in blob
    for r in live["records"][:5]:
        assert r["citizen_id"].encode() not in blob
        assert r["txn_id"].encode() not in blob
    assert b"[server]" not in blob and b"PRIVATE KEY" not in blob
    assert b"SQLite format 3" not in blob and b"PGDMP" not in blob
    key = (live["data"] / "master.key").read_bytes()
    assert key not in blob and T.master_kek(live["data"] / "master.key") not in blob
    # the manifest (in clear, authenticated) names the snapshot's counts and files
    m = live["manifest"]
    assert m["datasets"]["transactions"] == 50
    assert m["kek_id"] == T.kek_id(T.master_kek(live["data"] / "master.key"))
    assert re.fullmatch(r"[0-9a-f]{64}", m["content_sha256"])


def test_verify_ok_and_damaged(live, tmp_path):
    p = T.run_dtm("backup", "verify", str(live["file"]), "--data-dir", str(live["data"]),
                  "--json")
    v = json.loads(p.stdout)
    assert v["content_sha256"] == live["manifest"]["content_sha256"]
    assert v["records"] == live["manifest"]["records"]
    # with the key named explicitly, from anywhere
    T.run_dtm("backup", "verify", str(live["file"]), "--master-key",
              str(live["data"] / "master.key"), "--data-dir", str(tmp_path / "nowhere"))
    blob = bytearray(live["file"].read_bytes())
    bad = tmp_path / "flipped.dtmb"
    blob[len(blob) // 2] ^= 0x01
    bad.write_bytes(bytes(blob))
    p = T.run_dtm("backup", "verify", str(bad), "--data-dir", str(live["data"]), check=False)
    assert p.returncode == 1
    assert "fails its authentication tag" in one_sentence(p)


def corrupted(src, dst, how):
    blob = bytearray(src.read_bytes())
    if how == "flip":
        blob[len(blob) * 2 // 3] ^= 0x40
    elif how == "truncate":
        del blob[len(blob) - 1000:]
    elif how == "truncate_header":
        del blob[40:]
    elif how == "header":  # a count in the authenticated manifest changed
        i = blob.index(b'"transactions":50')
        blob[i + 15:i + 17] = b"51"
    elif how == "trailing":
        blob += b"\0" * 10
    elif how == "magic":
        blob[0:8] = b"NOTABACK"
    dst.write_bytes(bytes(blob))
    return dst


@pytest.mark.parametrize("how,words", [
    ("flip", "fails its authentication tag"),
    ("truncate", "truncated"),
    ("truncate_header", "truncated"),
    ("header", "fails its authentication tag"),
    ("trailing", "after its final chunk"),
    ("magic", "not a DTM backup"),
])
def test_damaged_backup_refused(live, tmp_path, how, words):
    bad = corrupted(live["file"], tmp_path / f"{how}.dtmb", how)
    new = tmp_path / "new"
    p = restore(bad, new, live["data"] / "master.key")
    assert p.returncode == 1, p.stdout
    assert words in one_sentence(p)
    # nothing half-restored is left behind
    assert not new.exists()
    assert not Path(str(new) + ".partial").exists()


def test_foreign_master_key_refused(live, tmp_path):
    other = tmp_path / "other"
    T.dtm_init(str(other))
    new = tmp_path / "new"
    p = restore(live["file"], new, other / "master.key")
    assert p.returncode == 1
    assert "another DTM installation" in one_sentence(p)
    assert not new.exists() and not Path(str(new) + ".partial").exists()
    p = T.run_dtm("backup", "verify", str(live["file"]), "--master-key",
                  str(other / "master.key"), check=False)
    assert p.returncode == 1 and "another DTM installation" in one_sentence(p)


def test_rotated_master_key_named(tmp_path):
    """After `dtm key rotate-master`, an older backup needs the old master key: the message says
    which one; with the old key it restores."""
    data = tmp_path / "data"
    T.dtm_init(str(data))
    out = tmp_path / "before.dtmb"
    backup(data, out)
    old_key = tmp_path / "old.key"
    old_key.write_bytes((data / "master.key").read_bytes())
    old_key.chmod(0o600)
    T.run_dtm("key", "rotate-master", "--data-dir", str(data))
    p = restore(out, tmp_path / "new", data / "master.key")
    assert p.returncode == 1
    assert "give the master key that was current when the backup was made" in one_sentence(p)
    p = restore(out, tmp_path / "new", old_key)
    assert p.returncode == 0, p.stderr
    # a backup made now is under the new key
    backup(data, tmp_path / "after.dtmb")
    T.run_dtm("backup", "verify", str(tmp_path / "after.dtmb"), "--data-dir", str(data))


def test_restore_target_must_be_empty(live, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "something").write_text("keep me")
    p = restore(live["file"], full, live["data"] / "master.key")
    assert p.returncode == 1
    assert "not empty" in one_sentence(p)
    assert sorted(os.listdir(full)) == ["something"]
    assert (full / "something").read_text() == "keep me"
    # a live data dir is refused the same way
    p = restore(live["file"], live["data"], live["data"] / "master.key")
    assert p.returncode == 1 and "not empty" in one_sentence(p)
    # an existing empty directory is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    assert restore(live["file"], empty, live["data"] / "master.key").returncode == 0
    assert has_store(empty)


def test_restore_needs_the_master_key(live, tmp_path):
    new = tmp_path / "new"
    p = restore(live["file"], new)
    assert p.returncode == 2
    assert "--master-key" in one_sentence(p)
    assert not new.exists()
    # the operator may put the key alone into the new dir instead
    new.mkdir()
    (new / "master.key").write_bytes((live["data"] / "master.key").read_bytes())
    (new / "master.key").chmod(0o600)
    p = restore(live["file"], new)
    assert p.returncode == 0, p.stderr
    assert has_store(new) and (new / "master.key").exists()
    assert not Path(str(new) + ".partial").exists()


@pytest.mark.skipif(not pgcluster.enabled(), reason="PostgreSQL backups: DTM_TEST_STORE=postgresql")
def test_pg_restore_needs_an_empty_database(live, tmp_path):
    """A PostgreSQL backup is restored into an empty database named by --store-dsn: without one,
    or into a database that holds tables (the live one), it is refused and nothing is left."""
    new = tmp_path / "new"
    key = live["data"] / "master.key"
    p = subprocess.run([T.DTM_BIN, "restore", str(live["file"]), "--data-dir", str(new),
                        "--master-key", str(key)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "--store-dsn" in one_sentence(p)
    assert not new.exists() and not Path(str(new) + ".partial").exists()
    live_dsn = pgcluster.dsn_of(live["data"])
    before = T.open_db(live["data"]).execute("SELECT count(*) FROM records").fetchone()[0]
    p = T.run_dtm("restore", str(live["file"]), "--data-dir", str(new), "--master-key", str(key),
                  "--store-dsn", live_dsn, check=False)
    assert p.returncode == 1 and "not empty" in one_sentence(p)
    assert not new.exists() and not Path(str(new) + ".partial").exists()
    assert T.open_db(live["data"]).execute("SELECT count(*) FROM records").fetchone()[0] == before
    # the restored dtm.conf names the new database; the dump is not left in the data dir
    dsn = pgcluster.CLUSTER.new_database()
    p = T.run_dtm("restore", str(live["file"]), "--data-dir", str(new), "--master-key", str(key),
                  "--store-dsn", dsn, "--json")
    assert pgcluster.dsn_of(new) == dsn
    assert not (new / "pg.dump").exists()
    assert json.loads(p.stdout)["records"] == live["manifest"]["records"]


def test_usage_errors(tmp_path):
    p = T.run_dtm("backup", "--data-dir", str(tmp_path), check=False)
    assert p.returncode == 2 and "-o FILE" in p.stderr
    p = T.run_dtm("restore", "--data-dir", str(tmp_path / "x"), check=False)
    assert p.returncode == 2
    p = T.run_dtm("backup", "-o", str(tmp_path / "b.dtmb"), "--data-dir",
                  str(tmp_path / "missing"), check=False)
    assert p.returncode == 1 and "not a DTM data dir" in one_sentence(p)
    p = T.run_dtm("backup", "verify", str(tmp_path / "missing.dtmb"), "--master-key",
                  str(tmp_path / "k"), check=False)
    assert p.returncode == 1


def test_backup_is_audited_and_recorded(live):
    p = T.run_dtm("audit", "list", "--data-dir", str(live["data"]), "--action", "backup.created",
                  "--format", "json")
    assert str(live["file"]) in p.stdout
    con = T.open_db(live["data"])
    try:
        row = con.execute("SELECT path, status, bytes, records FROM backup_runs ORDER BY id DESC"
                          " LIMIT 1").fetchone()
    finally:
        con.close()
    assert row[1] == "ok" and row[2] == live["file"].stat().st_size and row[3] >= 50


def test_drill_passes_on_a_live_server(live, tmp_path):
    s = live["sys"]
    T.assert_ok(live["srv"].ingest(s, [T.txn(system_code=s.code) for _ in range(20)]))
    rep = tmp_path / "drill.json"
    kept = tmp_path / "kept-apart.key"
    kept.write_bytes((live["data"] / "master.key").read_bytes())
    kept.chmod(0o600)
    p = T.run_dtm("drill", "--data-dir", str(live["data"]), "--report", str(rep),
                  "--master-key", str(kept), "--scratch", str(tmp_path), timeout=180)
    assert "PASS" in p.stdout
    r = json.loads(rep.read_text())
    assert r["result"] == "PASS", r
    for k in ("backup_s", "verify_s", "restore_s", "serve_ready_s", "compare_s", "total_s"):
        assert isinstance(r[k], (int, float)) and r[k] >= 0
    by = {d["dataset"]: d for d in r["datasets"]}
    assert by["transactions"]["same"] and by["transactions"]["restored"] >= 70
    # a statistic from the restored server's rollups equals the same from its records
    assert r["statistics_same"] is True
    assert "success=" in r["transactions_by_status"]
    # the scratch dir is gone, the live server still answers
    assert not list(tmp_path.glob("dtm-drill-*"))
    assert live["srv"].get("/healthz").status_code == 200


def test_drill_fails_with_a_wrong_master_key_copy(live, tmp_path):
    """The drill restores with the master key copy kept apart: a wrong copy is a FAIL (exit 1)
    that says why."""
    other = tmp_path / "other"
    T.dtm_init(str(other))
    p = T.run_dtm("drill", "--data-dir", str(live["data"]), "--master-key",
                  str(other / "master.key"), "--scratch", str(tmp_path), "--json",
                  check=False, timeout=180)
    assert p.returncode == 1
    r = json.loads(p.stdout)
    assert r["result"] == "FAIL" and "another DTM installation" in r["failure"]
    assert "recovery drill failed" in one_sentence(p)
    assert not list(tmp_path.glob("dtm-drill-*"))


def test_scheduled_backup(tmp_path, own_server):
    data = tmp_path / "data"
    T.dtm_init(str(data))
    conf = data / "dtm.conf"
    text = conf.read_text()
    text, n = re.subn(r"(?m)^schedule_hours = \d+$", "schedule_hours = 1", text)
    assert n == 1, "dtm init writes [backup] schedule_hours"
    # [backup] keep (other sections have a keep of their own)
    text, n = re.subn(r"(?ms)(^\[backup\]$.*?^keep = )\d+$", r"\g<1>2", text)
    assert n == 1
    conf.write_text(text)
    # older scheduled backups: only the newest `keep` stay after a successful one
    (data / "backups").mkdir(mode=0o700)
    for day in ("20250101", "20250102", "20250103"):
        (data / "backups" / f"dtm-{day}-000000.dtmb").write_bytes(b"old")
    (data / "backups" / "mine.dtmb").write_bytes(b"not a scheduled one")
    srv = own_server(data_dir=data, https=False)
    new = lambda: [p for p in (data / "backups").glob("dtm-*.dtmb")  # noqa: E731
                   if not p.name.startswith("dtm-2025")]
    found = T.wait_for(new, timeout=30)
    assert found, srv.log_tail()
    assert re.fullmatch(r"dtm-\d{8}-\d{6}\.dtmb", found[0].name)
    T.run_dtm("backup", "verify", str(found[0]), "--data-dir", str(data))
    assert T.wait_for(lambda: sorted(p.name for p in (data / "backups").iterdir()) ==
                      sorted(["dtm-20250103-000000.dtmb", found[0].name, "mine.dtmb"]),
                      timeout=10), sorted(os.listdir(data / "backups"))
    con = T.open_db(data)
    try:
        assert con.execute("SELECT count(*) FROM backup_runs WHERE status='ok'").fetchone()[0] == 1
    finally:
        con.close()
    assert srv.stop() == 0
    assert "scheduled backup made" in srv.log_text()


def test_interrupted_backup_leaves_no_copy(live, tmp_path):
    """A backup killed half-way leaves its staging copy of the store in the data dir; the next
    backup removes it (its process is gone), and a backup leaves none of its own."""
    stale = live["data"] / ".backup-4194305-abcdef"  # above any pid_max: no such process
    stale.mkdir()
    (stale / "dtm.db").write_bytes(b"an old uncompressed copy")
    backup(live["data"], tmp_path / "again.dtmb")
    assert not stale.exists()
    assert not list(live["data"].glob(".backup-*"))
    assert not list(tmp_path.glob("*.tmp"))


def test_queued_batch_is_restored_and_resumes(tmp_path, own_server):
    """A batch still queued on disk at the snapshot (behind a larger one; kill -9 leaves both)
    is in the backup — its spooled file with it — and the restored server runs it."""
    srv = own_server(https=False)
    s = srv.add_system()
    h = dict(s.headers)
    h["Content-Type"] = "application/x-ndjson"

    def upload(records):
        r = srv.post("/api/v1/batches", params={"dataset": "transactions"},
                     data=T.body_ndjson(records), headers=h, timeout=120)
        assert r.status_code == 202, r.text
        return r.json()["id"]

    upload([T.txn(system_code=s.code) for _ in range(20000)])
    queued = [T.txn(system_code=s.code, txn_id=T.uid("QB")) for _ in range(5)]
    qid = upload(queued)
    srv.kill9()
    spooled = sorted(p.name for p in (srv.data_dir / "batches").glob("*.data"))
    assert spooled, "no batch left in the spool"
    out = tmp_path / "queued.dtmb"
    m = json.loads(backup(srv.data_dir, out).stdout)
    assert {f"batches/{n}" for n in spooled} <= {f["name"] for f in m["files"]}
    new = tmp_path / "restored"
    assert restore(out, new, srv.data_dir / "master.key").returncode == 0
    assert sorted(p.name for p in (new / "batches").glob("*.data")) == spooled
    srv2 = own_server(data_dir=new, https=False)

    def done():
        b = srv2.get(f"/api/v1/batches/{qid}", headers=s.headers).json()
        return b if b.get("status") in ("done", "failed", "cancelled") else None
    b = T.wait_for(done, timeout=240, interval=0.1)
    assert b and (b["status"], b["accepted"]) == ("done", 5), b
    for r in queued:
        assert srv2.record(s, r["txn_id"]).status_code == 200
    assert srv2.stop() == 0
