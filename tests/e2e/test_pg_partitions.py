"""Records partitioned by dataset and month on PostgreSQL (issue 9 item 1): a record lands in
the partition of its dataset and local month of event time, one key is one record whatever
partition its versions land in (record_keys), and retention drops the partitions that lie wholly
before its cutoff — the rows of the month the cutoff cuts are deleted one by one, the rest kept.
Runs with DTM_TEST_STORE=postgresql only (SQLite has no partitions)."""

import json
from datetime import datetime, timedelta, timezone

import pytest

import dtmtest as T
import pgcluster

pytestmark = pytest.mark.skipif(not pgcluster.enabled(),
                                reason="PostgreSQL partitions: needs DTM_TEST_STORE=postgresql")

ICT = timezone(timedelta(hours=7))


def log_record(system, log_id, when, **kw):
    r = {"system_code": system, "log_id": log_id, "peer_system": "DTM", "direction": "in",
         "operation": "ingest", "records": 1, "bytes": 100, "status": "ok",
         "started_at": when.isoformat(timespec="seconds"), "duration_ms": 5}
    r.update(kw)
    return r


def import_logs(d, tmp_path, system, recs, name):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    p = T.run_dtm("import", "--data-dir", d, "--dataset", "connection_logs", "--system", system,
                  path, "--json")
    out = json.loads(p.stdout)
    return {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in out.items()}


def partitions(con):
    """{partition name: rows} of the records table (pg_inherits), the default one included."""
    names = [r[0] for r in con.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'records'::regclass ORDER BY 1").fetchall()]
    return {n: int(con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}


def month_name(ds, when):
    return f"records_{ds}_{when.astimezone(ICT):%Y%m}"


def test_retention_drops_whole_partitions(tmp_path):
    d = tmp_path / "data"
    T.dtm_init(str(d))
    s = T.add_system(str(d))
    now = datetime.now(ICT)
    cutoff = (now - timedelta(days=400)).replace(hour=0, minute=0, second=0, microsecond=0)
    cut_month = cutoff.replace(day=1)
    # three whole months before the cutoff's month, two records each
    old_months = []
    m = cut_month
    for _ in range(3):
        m = (m - timedelta(days=1)).replace(day=1)
        old_months.append(m)
    old = [log_record(s.code, f"old-{i}-{k}", mo + timedelta(days=3 + k, hours=5))
           for i, mo in enumerate(old_months) for k in range(2)]
    # the month the cutoff cuts: one record before it (deleted row by row), one after (kept)
    partial_old = cutoff > cut_month
    cut = [log_record(s.code, "cut-new", cutoff + timedelta(hours=1))]
    if partial_old:
        cut.append(log_record(s.code, "cut-old", cut_month + timedelta(minutes=30)))
    recent = [log_record(s.code, "recent-1", now - timedelta(days=182)),
              log_record(s.code, "recent-2", now - timedelta(days=1))]
    out = import_logs(d, tmp_path, s.code, old + cut + recent, "a.ndjson")
    assert out["accepted"] == len(old + cut + recent), out

    con = T.open_db(d)
    try:
        (ds,) = con.execute("SELECT id FROM dataset_ids WHERE code = 'connection_logs'").fetchone()
        parts = partitions(con)
        for mo in old_months:
            assert parts.get(month_name(ds, mo)) == 2, parts
        assert parts.get(month_name(ds, cutoff)) == len(cut), parts

        # one key, one record: a version whose event time moves it to another month replaces
        # the first (record_keys, not a unique key per partition)
        moved = dict(old[0], started_at=(now - timedelta(days=2)).isoformat(timespec="seconds"))
        out = import_logs(d, tmp_path, s.code, [moved], "b.ndjson")
        assert (out["accepted"], out["updated"], out["duplicates"]) == (1, 1, 0), out
        out = import_logs(d, tmp_path, s.code, [moved], "c.ndjson")
        assert out["duplicates"] == 1, out
        (n,) = con.execute("SELECT count(*) FROM records r JOIN dataset_ids i ON i.id = r.ds "
                           "WHERE i.code = 'connection_logs'").fetchone()
        assert int(n) == len(old + cut + recent)
        parts = partitions(con)
        assert parts.get(month_name(ds, old_months[0])) == 1, parts

        p = T.run_dtm("retention", "run", "--data-dir", d, "--json")
        res = json.loads(p.stdout)
        expect_removed = len(old) - 1 + (1 if partial_old else 0)
        assert res["removed"] == str(expect_removed), res
        after = partitions(con)
        # the whole months before the cutoff are gone as partitions, not emptied
        for mo in old_months:
            assert month_name(ds, mo) not in after, after
        # the month the cutoff cuts stays, with only its record after the cutoff
        assert after.get(month_name(ds, cutoff)) == 1, after
        left = sorted(x["log_id"] for x in T.stored_contents(d, "connection_logs"))
        assert left == sorted(["cut-new", old[0]["log_id"], "recent-1", "recent-2"]), left
        # keys and history went with their records
        (keys,) = con.execute("SELECT count(*) FROM record_keys WHERE ds = %d" % int(ds)).fetchone()
        assert int(keys) == 4
        (parts_listed,) = con.execute(
            "SELECT count(*) FROM record_partitions WHERE ds = %d AND hi <= %d"
            % (int(ds), int(cutoff.timestamp()) * 1000000)).fetchone()
        assert int(parts_listed) == 0
    finally:
        con.close()

    # a removed record's key is free again: sent anew, it is a new record (in its month's
    # partition, made again), which the next pass drops again; then nothing is left to remove
    out = import_logs(d, tmp_path, s.code, [old[1]], "d.ndjson")
    assert (out["accepted"], out["updated"], out["duplicates"]) == (1, 0, 0), out
    con = T.open_db(d)
    try:
        assert partitions(con).get(month_name(ds, old_months[0])) == 1
        p = T.run_dtm("retention", "run", "--data-dir", d, "--json")
        assert json.loads(p.stdout)["removed"] == "1"
        assert month_name(ds, old_months[0]) not in partitions(con)
    finally:
        con.close()
    p = T.run_dtm("retention", "run", "--data-dir", d, "--json")
    assert json.loads(p.stdout)["removed"] == "0"
