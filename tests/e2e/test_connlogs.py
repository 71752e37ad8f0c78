"""Connection logs as data (D6, G3; issue 4): every API call of an authenticated connected system
becomes a `connection_logs` record within about a second, queryable with /api/v1/stats and the
records export; `[connlog] enabled = false` turns it off; the rows still pending at shutdown are
stored. Retention: `[retention] connection_logs_days` below 366 is refused (the law keeps them a
year); `dtm retention run` removes the older ones (with their history) and keeps the rest.
"""

import json
import sqlite3
import time
from datetime import datetime, timedelta, timezone

import pytest

import dtmtest as T

ICT = timezone(timedelta(hours=7))


def stats(server, who, **params):
    r = server.get("/api/v1/stats/connection_logs", params=params, headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()


def counts_by(server, who, system, group):
    body = stats(server, who, group_by=group, where=f"system_code:eq:{system.code}")
    return {tuple(row[:-1]) if len(row) > 2 else row[0]: row[-1] for row in body["rows"]}


def connlog_rows(data_dir):
    return T.stored_contents(data_dir, "connection_logs")  # opened (T4.2: sealed at rest)


def test_calls_become_connection_logs(server, sys_factory):
    s = sys_factory.add()
    viewer = sys_factory.add(role="consumer")
    server.dtm("grant", "add", "--data-dir", server.data_dir, "--system", viewer.code,
               "--dataset", "connection_logs")
    ok = [T.txn() for _ in range(3)]
    T.assert_ok(server.ingest(s, ok))
    T.assert_ok(server.ingest(s, T.txn()))
    bad = server.ingest(s, [T.txn(status="failed")])  # no error_code: 422
    T.assert_problem(bad, 422)
    assert server.post("/api/v1/heartbeat", headers=s.headers).status_code == 200
    # public calls without a key, and calls with a wrong key, are nobody's: not logged
    assert server.get("/healthz").status_code == 200
    assert server.get("/api/v1/datasets").status_code == 200
    T.assert_problem(server.post("/api/v1/heartbeat", headers={"X-API-Key": "dtm_wrong"}), 401)

    want = {("ingest", "ok"): 2, ("ingest", "error"): 1, ("heartbeat", "ok"): 1}

    def seen():
        got = counts_by(server, viewer, s, "operation,status")
        return got if all(got.get(k) == v for k, v in want.items()) else None

    got = T.wait_for(seen, timeout=5, interval=0.2)
    assert got, counts_by(server, viewer, s, "operation,status")
    assert set(got) == set(want)  # nothing else of this system
    # the same as the system itself (a source sees its own system's rows), grouped as asked
    got = T.wait_for(lambda: counts_by(server, s, s, "system_code,operation"), timeout=5)
    assert got[(s.code, "ingest")] == 3 and got[(s.code, "heartbeat")] == 1
    # the records themselves
    r = server.get("/api/v1/datasets/connection_logs/records", headers=s.headers,
                   params={"where": "operation:in:ingest|heartbeat", "limit": 100})
    assert r.status_code == 200, r.text
    logs = r.json()["records"]
    assert len(logs) == 4 and len({x["log_id"] for x in logs}) == 4
    for x in logs:
        assert x["system_code"] == s.code and x["peer_system"] == "DTM"
        assert x["direction"] == "in" and x["bytes"] > 0 and x["duration_ms"] >= 0
        started = datetime.fromisoformat(x["started_at"])
        assert abs((datetime.now(ICT) - started).total_seconds()) < 120
    ingests = sorted((x for x in logs if x["operation"] == "ingest"), key=lambda x: x["status"])
    assert sorted(x["records"] for x in ingests) == [1, 1, 3]
    err = [x for x in ingests if x["status"] == "error"]
    assert len(err) == 1 and err[0]["error_reason"] == "validation" and err[0]["records"] == 1
    assert all("error_reason" not in x for x in logs if x["status"] == "ok")
    hb = [x for x in logs if x["operation"] == "heartbeat"]
    assert len(hb) == 1 and "records" not in hb[0]
    # nothing recorded for the public calls or the wrong key
    ops = {row[0] for row in stats(server, viewer, group_by="operation")["rows"]}
    assert not ops & {"healthz", "datasets", "readyz"}


def test_forbidden_calls_are_logged_as_errors(server, sys_factory):
    c = sys_factory.add(role="consumer")
    server.dtm("grant", "add", "--data-dir", server.data_dir, "--system", c.code, "--dataset",
               "connection_logs")
    T.assert_problem(server.ingest(c, T.txn()), 403)  # a consumer may not send data
    T.assert_problem(server.get("/api/v1/stats/transactions", headers=c.headers), 403)

    def seen():
        r = server.get("/api/v1/datasets/connection_logs/records", headers=c.headers,
                       params={"where": [f"system_code:eq:{c.code}", "status:eq:error"]})
        logs = r.json()["records"] if r.status_code == 200 else []
        return logs if len(logs) == 2 else None

    logs = T.wait_for(seen, timeout=5, interval=0.2)
    assert logs, "the two refused calls were not logged"
    assert sorted((x["operation"], x["error_reason"]) for x in logs) == [
        ("ingest", "forbidden"), ("stats", "not_granted")]


def test_disabled_by_config_and_flushed_at_shutdown(own_server, tmp_path):
    # [connlog] enabled = false: nothing is logged
    srv = own_server(https=False, start=False)
    off = tmp_path / "off.conf"
    off.write_text("[connlog]\nenabled = false\n")
    srv.start(https=False, extra_args=["--config", str(off)])
    s = srv.add_system()
    T.assert_ok(srv.ingest(s, T.txn()))
    time.sleep(1.5)
    assert srv.stop() == 0
    assert connlog_rows(srv.data_dir) == []
    # enabled (the default): a call answered right before SIGTERM is stored all the same
    srv.start(https=False)
    T.assert_ok(srv.ingest(s, T.txn()))
    assert srv.stop() == 0
    logs = connlog_rows(srv.data_dir)
    assert [(x["system_code"], x["operation"], x["status"]) for x in logs] == [
        (s.code, "ingest", "ok")]


def write_ndjson(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def log_record(system, log_id, when, **kw):
    r = {"system_code": system, "log_id": log_id, "peer_system": "DTM", "direction": "in",
         "operation": "ingest", "records": 1, "bytes": 100, "status": "ok",
         "started_at": when.isoformat(timespec="seconds"), "duration_ms": 5}
    r.update(kw)
    return r


def test_retention_days_below_a_year_are_refused(tmp_path):
    d = tmp_path / "data"
    T.dtm_init(str(d))
    short = tmp_path / "short.conf"
    short.write_text("[retention]\nconnection_logs_days = 100\n")
    p = T.run_dtm("serve", "--data-dir", d, "--config", short, "--http", "127.0.0.1:0",
                  "--https", "off", check=False, timeout=20)
    assert p.returncode == 1, p.stderr
    assert "connection_logs_days" in p.stderr and "366" in p.stderr
    # the data dir's own dtm.conf: every command refuses it
    with open(d / "dtm.conf", "a") as f:
        f.write("\n[retention]\nconnection_logs_days = 365\n")
    p = T.run_dtm("retention", "run", "--data-dir", d, check=False)
    assert p.returncode == 1 and "one year" in p.stderr


def test_retention_run_removes_old_logs_keeps_recent(tmp_path):
    d = tmp_path / "data"
    T.dtm_init(str(d))
    s = T.add_system(str(d))
    now = datetime.now(ICT)
    old = log_record(s.code, "old-1", now - timedelta(days=730))
    recent = log_record(s.code, "recent-1", now - timedelta(days=182))
    T.run_dtm("import", "--data-dir", d, "--dataset", "connection_logs", "--system", s.code,
              write_ndjson(tmp_path / "a.ndjson", [old, recent]))
    # a second version of the old one: the purge takes its history too
    T.run_dtm("import", "--data-dir", d, "--dataset", "connection_logs", "--system", s.code,
              write_ndjson(tmp_path / "b.ndjson", [dict(old, bytes=200)]))
    assert sorted(x["log_id"] for x in connlog_rows(d)) == ["old-1", "recent-1"]
    p = T.run_dtm("retention", "run", "--data-dir", d, "--json")
    out = json.loads(p.stdout)
    assert out["dataset"] == "connection_logs" and out["removed"] == "1"
    assert out["kept_days"] == "400"
    before = datetime.fromisoformat(out["removed_before"])
    assert before.hour == 0 and before.minute == 0  # a whole day in UTC+07:00
    assert timedelta(days=400) <= now - before <= timedelta(days=401)
    assert [x["log_id"] for x in connlog_rows(d)] == ["recent-1"]
    con = T.open_db(d)
    try:
        (hist,) = con.execute("SELECT count(*) FROM record_history").fetchone()
    finally:
        con.close()
    assert hist == 0
    # nothing more to remove; statistics count what is left
    p = T.run_dtm("retention", "run", "--data-dir", d)
    assert T.parse_kv(p.stdout)["removed"] == "0"
    srv = T.DtmServer(d, log_path=tmp_path / "serve.log")
    srv.start(https=False)
    try:
        r = srv.get("/api/v1/stats/connection_logs", headers=s.headers,
                    params={"metrics": "count", "where": "operation:eq:ingest",
                            "to": (now - timedelta(days=30)).date().isoformat()})
        assert r.status_code == 200 and r.json()["rows"] == [[1]], r.text
        # the rollups lost the removed record too (a query a cube covers)
        r = srv.get("/api/v1/stats/connection_logs", headers=s.headers,
                    params={"metrics": "count", "group_by": "status",
                            "from": (now - timedelta(days=1000)).date().isoformat(),
                            "to": (now - timedelta(days=30)).date().isoformat()})
        assert r.status_code == 200 and r.json()["rows"] == [["ok", 1]], r.text
    finally:
        assert srv.stop() == 0
