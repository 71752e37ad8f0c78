"""GET /api/v1/stats/{dataset} (CONTRACT §6) — exact numbers: a known set of records (with
duplicates and an update) is ingested, and every metric, grouping, interval boundary (midnight
UTC+07:00, ISO week, month, quarter, year), filter and permission is checked against values
computed independently here. CSV is parsed strictly. Every answer is also asked with plan=scan: the live rollups (DTM-Plan:
cube=…) and the record scan must agree — exactly, percentiles within 1 %.
"""

import threading
import csv
import datetime as dt
import io
import math
import sqlite3
from pathlib import Path

import pytest

import dtmtest as T

TZ = dt.timezone(dt.timedelta(hours=7))

# instants around the boundaries, in UTC+07:00
TIMES = [
    "2025-12-31T23:59:59+07:00",  # year, quarter, month, ISO week 2026-W01 (Wednesday)
    "2026-01-01T00:00:00+07:00",
    "2026-09-30T23:30:00+07:00",  # Q3 / Q4, September / October
    "2026-10-01T00:30:00+07:00",
    "2026-10-04T23:59:59+07:00",  # Sunday (W40) / Monday (W41)
    "2026-10-05T00:00:00+07:00",
    "2026-10-05T06:59:59+07:00",  # 23:59:59 UTC the day before: still 2026-10-05 here
    "2026-10-05T17:00:00Z",       # 2026-10-06 00:00 in UTC+07:00
]


def records(prefix):
    out = []
    statuses = ["success", "failed", "success", "pending"]
    for i in range(48):
        st = statuses[i % 4]
        r = T.txn(txn_id=f"{prefix}-{i}", started_at=TIMES[i % len(TIMES)], finished_at=None,
                  status=st, response_ms=(i * 37) % 1000 + 5, amount=str(1000 * (i % 7)),
                  channel=["web", "mobile", "api"][i % 3], service_code=f"SV{i % 2}")
        if st == "failed":
            r["error_code"] = ["TIMEOUT", "DENIED"][i % 2 == 1 and 1 or (i // 4) % 2]
        out.append(r)
    return out


def local(ts):
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(TZ)


def period(iv, ts):
    d = local(ts)
    if iv == "hour":
        return d.strftime("%Y-%m-%dT%H:00+07:00")
    if iv == "day":
        return d.strftime("%Y-%m-%d")
    if iv == "week":
        y, w, _ = d.isocalendar()
        return f"{y:04d}-W{w:02d}"
    if iv == "month":
        return d.strftime("%Y-%m")
    if iv == "quarter":
        return f"{d.year:04d}-Q{(d.month - 1) // 3 + 1}"
    return f"{d.year:04d}"


def nearest_rank(vals, p):
    v = sorted(vals)
    return v[max(math.ceil(len(v) * p), 1) - 1]


def expected(recs, metrics, group_by=(), interval=None, where=None):
    groups = {}
    for r in recs:
        if where and not where(r):
            continue
        key = tuple(r.get(g) for g in group_by) + ((period(interval, r["started_at"]),)
                                                   if interval else ())
        groups.setdefault(key, []).append(r)
    rows = []
    for key in sorted(groups, key=lambda k: tuple("" if x is None else x for x in k)):
        rs = groups[key]
        row = list(key)
        for m in metrics:
            if m == "count":
                row.append(len(rs))
                continue
            kind, arg = m.split(":", 1)
            if kind == "rate":
                f, v = arg.split("=")
                row.append(sum(1 for r in rs if r.get(f) == v) / len(rs))
                continue
            vals = [float(r[arg]) for r in rs if arg in r]
            row.append({"sum": lambda: sum(vals), "avg": lambda: sum(vals) / len(vals),
                        "min": lambda: min(vals), "max": lambda: max(vals),
                        "p50": lambda: nearest_rank(vals, .5),
                        "p95": lambda: nearest_rank(vals, .95),
                        "p99": lambda: nearest_rank(vals, .99)}[kind]())
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def data(server, sys_factory):
    a = sys_factory.add()
    agg = sys_factory.add(role="aggregator")
    child = sys_factory.add(parent=agg.code)
    consumer = sys_factory.add(role="consumer")
    # a consumer reads the datasets it is granted (CONTRACT §3)
    server.dtm("grant", "add", "--data-dir", server.data_dir, "--system", consumer.code,
               "--dataset", "transactions")
    recs = records(T.uid("ST"))
    for r in recs:
        r["system_code"] = a.code
    T.assert_ok(server.ingest(a, recs))
    T.assert_ok(server.ingest(a, recs[:10]))  # duplicates change nothing
    # an update: the old version's contribution goes, the new one counts
    recs[1] = dict(recs[1], response_ms=999999, status="success")
    recs[1].pop("error_code", None)
    b = T.assert_ok(server.ingest(a, [recs[1]]))
    assert b["updated"] == 1
    crecs = records(T.uid("SC"))[:6]
    for r in crecs:
        r["system_code"] = child.code
    T.assert_ok(server.ingest(agg, crecs))
    return {"a": a, "agg": agg, "child": child, "consumer": consumer, "recs": recs,
            "crecs": crecs}


def tolerance(column):
    """Percentiles from a cube's histogram are within 1 %; everything else is exact."""
    return 0.01 if column.split(":")[0] in ("p50", "p95", "p99") else 1e-9


def stats(server, system, **params):
    """The answer of the planner's choice; the record scan (plan=scan) must agree with it."""
    r = server.get("/api/v1/stats/transactions", params=params, headers=system.headers)
    assert r.status_code == 200, r.text
    got = r.json()
    got["plan"] = r.headers["DTM-Plan"]
    r = server.get("/api/v1/stats/transactions", params=dict(params, plan="scan"),
                   headers=system.headers)
    assert r.status_code == 200, r.text
    assert r.headers["DTM-Plan"] == "scan"
    scan = r.json()
    assert scan["columns"] == got["columns"]
    assert len(scan["rows"]) == len(got["rows"]), (scan, got)
    for g, w in zip(got["rows"], scan["rows"]):
        for col, x, y in zip(got["columns"], g, w):
            if isinstance(y, (int, float)) and x is not None:
                assert x == pytest.approx(y, rel=tolerance(col)), (col, g, w)
            else:
                assert x == y, (col, g, w)
    return got


def check(got, want, ncols_key):
    assert len(got["rows"]) == len(want), (got, want)
    for g, w in zip(got["rows"], want):
        assert g[:ncols_key] == w[:ncols_key], (g, w)
        for col, x, y in zip(got["columns"][ncols_key:], g[ncols_key:], w[ncols_key:]):
            assert x == pytest.approx(y, rel=tolerance(col)), (col, g, w)


ALL = ["count", "sum:response_ms", "avg:response_ms", "min:response_ms", "max:response_ms",
       "p50:response_ms", "p95:response_ms", "p99:response_ms", "rate:status=failed",
       "sum:amount"]


def test_every_metric_by_status(server, data):
    got = stats(server, data["a"], metrics=",".join(ALL), group_by="status")
    assert got["columns"] == ["status"] + ALL
    check(got, expected(data["recs"], ALL, ["status"]), 1)


def test_no_group_is_one_row(server, data):
    got = stats(server, data["a"], metrics="count,sum:amount")
    check(got, expected(data["recs"], ["count", "sum:amount"]), 0)


@pytest.mark.parametrize("iv", ["hour", "day", "week", "month", "quarter", "year"])
def test_intervals_and_boundaries(server, data, iv):
    got = stats(server, data["a"], metrics="count,max:response_ms", group_by="channel",
                interval=iv)
    assert got["columns"] == ["channel", "period", "count", "max:response_ms"]
    check(got, expected(data["recs"], ["count", "max:response_ms"], ["channel"], iv), 2)


def test_boundaries_explicitly(server, data):
    rows = stats(server, data["a"], interval="day")["rows"]
    days = {p: n for p, n in rows}
    assert "2025-12-31" in days and "2026-10-04" in days and "2026-10-06" in days
    weeks = dict(stats(server, data["a"], interval="week")["rows"])
    assert "2026-W01" in weeks and "2026-W40" in weeks and "2026-W41" in weeks
    assert "2025-W53" not in weeks  # 2025-12-31 is a Wednesday of ISO week 2026-W01
    quarters = dict(stats(server, data["a"], interval="quarter")["rows"])
    assert set(quarters) == {"2025-Q4", "2026-Q1", "2026-Q3", "2026-Q4"}


def test_filters_and_range(server, data):
    recs = data["recs"]
    got = stats(server, data["a"], metrics="count,avg:response_ms", group_by="service_code",
                where=["status:in:success|pending", "channel:eq:web"])
    want = expected(recs, ["count", "avg:response_ms"], ["service_code"],
                    where=lambda r: r["status"] in ("success", "pending") and r["channel"] == "web")
    check(got, want, 1)
    got = stats(server, data["a"], metrics="count", **{"from": "2026-10-01", "to": "2026-10-05"})
    lo = dt.datetime(2026, 10, 1, tzinfo=TZ)
    hi = dt.datetime(2026, 10, 6, tzinfo=TZ)  # `to` as a date is the whole day
    assert got["rows"] == [[sum(1 for r in recs if lo <= local(r["started_at"]) < hi)]]
    got = stats(server, data["a"], metrics="count",
                **{"from": "2026-10-05T00:00:00+07:00", "to": "2026-10-05T07:00:00+07:00"})
    assert got["rows"] == [[sum(1 for r in recs if r["started_at"] in TIMES[5:7])]]


def test_csv_and_xml(server, data):
    r = server.get("/api/v1/stats/transactions", headers={**data["a"].headers,
                                                          "Accept": "text/csv"},
                   params={"metrics": "count,rate:status=failed", "group_by": "status"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(r.text, newline=""), strict=True))
    want = expected(data["recs"], ["count", "rate:status=failed"], ["status"])
    assert table[0] == ["status", "count", "rate:status=failed"]
    assert [[t[0], int(t[1]), float(t[2])] for t in table[1:]] == want
    r = server.get("/api/v1/stats/transactions", headers=data["a"].headers,
                   params={"metrics": "count", "group_by": "status", "format": "xml"})
    import xml.etree.ElementTree as ET
    root = ET.fromstring(r.content)
    assert [[c.text for c in row] for row in root] == [[w[0], str(w[1])] for w in
                                                       expected(data["recs"], ["count"],
                                                                ["status"])]


def test_permissions(server, data):
    a, agg, consumer = data["a"], data["agg"], data["consumer"]
    total = len(data["recs"])
    assert stats(server, a, metrics="count")["rows"] == [[total]]
    # the aggregator sees its child's rows (and its own: none), not the source's
    assert stats(server, agg, metrics="count")["rows"] == [[len(data["crecs"])]]
    # where cannot widen it
    assert stats(server, agg, metrics="count", where=f"system_code:eq:{a.code}")["rows"] == [[0]]
    # a consumer reads statistics across systems
    rows = dict(stats(server, consumer, metrics="count", group_by="system_code")["rows"])
    assert rows[a.code] == total and rows[data["child"].code] == len(data["crecs"])
    r = server.get("/api/v1/stats/transactions", params={"metrics": "count"})
    T.assert_problem(r, 401)


@pytest.mark.parametrize("param,value", [
    ("metrics", "sum:status"), ("metrics", "p42:response_ms"), ("metrics", "rate:nope=1"),
    ("group_by", "txn_id"), ("interval", "fortnight"), ("from", "yesterday"),
    ("where", "status:like:x"), ("where", "txn_id:eq:1"), ("format", "pdf")])
def test_bad_parameters_name_the_parameter(server, data, param, value):
    r = server.get("/api/v1/stats/transactions", params={param: value},
                   headers={**data["a"].headers, "Accept-Language": "en"})
    body = T.assert_problem(r, 400)
    assert param in body["detail"], body


def test_unknown_dataset(server, data):
    r = server.get("/api/v1/stats/nope", headers=data["a"].headers)
    T.assert_problem(r, 404)


def test_xlsx(server, data):
    import openpyxl
    r = server.get("/api/v1/stats/transactions", headers=data["a"].headers,
                   params={"metrics": "count,avg:response_ms,rate:status=failed",
                           "group_by": "status", "interval": "month", "format": "xlsx"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    ws = wb.active
    assert ws.title == "transactions" and ws.freeze_panes == "A2"
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == ("status", "period", "count", "avg:response_ms", "rate:status=failed")
    assert ws.cell(1, 1).font.b
    want = expected(data["recs"], ["count", "avg:response_ms", "rate:status=failed"], ["status"],
                    "month")
    assert len(rows) - 1 == len(want)
    for got, w in zip(rows[1:], want):
        assert list(got[:2]) == w[:2] and isinstance(got[2], int) and got[2] == w[2]
        assert got[3] == pytest.approx(w[3]) and got[4] == pytest.approx(w[4])
    assert ws.column_dimensions["D"].width >= len("avg:response_ms")
    # Accept selects it too
    r = server.get("/api/v1/stats/transactions", params={"metrics": "count"}, headers={
        **data["a"].headers,
        "Accept": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"})
    assert r.content[:2] == b"PK"
    assert not list(server.data_dir.glob("stats-*.xlsx"))  # the temporary file is gone


def test_aggregator_with_many_children(server, sys_factory):
    """A national portal aggregates dozens of provinces: its statistics cover all of them."""
    agg = sys_factory.add(role="aggregator")
    kids = [sys_factory.add(parent=agg.code) for _ in range(40)]
    recs = [T.txn(system_code=k.code) for k in kids]
    T.assert_ok(server.ingest(agg, recs))
    got = dict(stats(server, agg, metrics="count", group_by="system_code")["rows"])
    assert got == {k.code: 1 for k in kids}


def plan_of(server, system, **params):
    r = server.get("/api/v1/stats/transactions", params=params, headers=system.headers)
    assert r.status_code == 200, r.text
    return r.headers["DTM-Plan"]


def test_planner_picks_the_smallest_covering_cube(server, data):
    a = data["a"]  # a source: its queries are restricted to system_code
    assert plan_of(server, a, group_by="status") == "cube=system_code+status; grain=day"
    assert plan_of(server, a, group_by="error_code") == \
        "cube=system_code+status+error_code; grain=day"
    assert plan_of(server, a, group_by="service_code", metrics="p95:response_ms") == \
        "cube=system_code+service_code+status; grain=day"
    # hour rows exist for the last three local days only: hours of October are scanned
    assert plan_of(server, a, metrics="count", interval="hour") == "scan"
    assert plan_of(server, a, **{"from": "2026-10-05T06:00:00+07:00",
                                 "to": "2026-10-05T18:00:00+07:00"}) == "scan"
    # not covered: a dimension of no cube, a percentile of a measure without histogram, a
    # range that does not start on an hour
    assert plan_of(server, a, group_by="priority") == "scan"
    assert plan_of(server, a, metrics="p95:amount") == "scan"
    assert plan_of(server, a, **{"from": "2026-10-05T06:30:00+07:00"}) == "scan"
    assert plan_of(server, a, group_by="status", plan="scan") == "scan"
    r = server.get("/api/v1/stats/transactions", params={"plan": "fast"}, headers=a.headers)
    assert r.status_code == 400 and "plan" in r.json()["detail"]


def test_updates_move_their_contribution(server, sys_factory):
    """An update that changes the day, the status and the response time moves the record from
    one cube row to another; duplicates change nothing; cube and scan agree throughout."""
    s = sys_factory.add()
    recs = [T.txn(system_code=s.code, started_at=f"2026-03-0{1 + i % 3}T12:00:00+07:00",
                  finished_at=None, response_ms=100 + 10 * i, status="success")
            for i in range(30)]
    T.assert_ok(server.ingest(s, recs))
    moved = dict(recs[0], started_at="2026-03-09T08:00:00+07:00", response_ms=7,
                 status="failed", error_code="E1")
    recs[0] = moved
    assert T.assert_ok(server.ingest(s, [moved]))["updated"] == 1
    assert T.assert_ok(server.ingest(s, recs[5:9]))["duplicates"] == 4
    metrics = ["count", "sum:response_ms", "min:response_ms", "max:response_ms",
               "p50:response_ms", "rate:status=failed"]
    got = stats(server, s, metrics=",".join(metrics), interval="day", group_by="status")
    assert got["plan"].startswith("cube=")
    check(got, expected(recs, metrics, ["status"], "day"), 2)
    got = stats(server, s, metrics=",".join(metrics))
    check(got, expected(recs, metrics), 0)


def test_rollups_missing_records_are_rebuilt_at_start(own_server):
    """A data dir whose cubes miss records (one from before rollups existed) gets them rebuilt
    when the server starts: the planner uses the cubes again and they agree with the scan."""
    srv = own_server(https=False)
    s = srv.add_system()
    recs = [T.txn(system_code=s.code, started_at=f"2026-04-{1 + i % 9:02d}T0{i % 10}:15:00+07:00",
                  finished_at=None, response_ms=20 + 3 * i,
                  status="failed" if i % 5 == 0 else "success",
                  error_code="E9" if i % 5 == 0 else None)
            for i in range(60)]
    T.assert_ok(srv.ingest(s, recs))
    assert srv.stop() == 0
    db = T.open_cubes(srv.data_dir)
    with db:
        db.execute("DELETE FROM cube_rows")
        db.execute("DELETE FROM cube_ids")
    db.close()
    srv.start(https=False)
    assert T.wait_for(lambda: "rollups rebuilt" in srv.log_text(), timeout=10)
    metrics = ["count", "avg:response_ms", "p95:response_ms", "rate:status=failed"]
    got = stats(srv, s, metrics=",".join(metrics), group_by="status", interval="day")
    assert got["plan"].startswith("cube=")
    check(got, expected(recs, metrics, ["status"], "day"), 2)


def test_rollups_behind_the_records_after_a_crash_are_rebuilt(own_server):
    """The rollups live in their own file, committed without fsync: a crash may lose their last
    deltas while the records stay. The server notices at start (the rollups' last applied
    receipt is behind the records') and rebuilds them instead of answering from stale cubes."""
    srv = own_server(https=False)
    s = srv.add_system()
    recs = [T.txn(system_code=s.code, started_at=f"2026-05-{1 + i % 7:02d}T1{i % 10}:05:00+07:00",
                  finished_at=None, response_ms=40 + 7 * i,
                  status="failed" if i % 4 == 0 else "success",
                  error_code="E2" if i % 4 == 0 else None)
            for i in range(40)]
    T.assert_ok(srv.ingest(s, recs[:30]))
    T.assert_ok(srv.ingest(s, recs[30:]))
    assert srv.stop() == 0
    # what a lost last commit of the rollup file looks like: the second request's deltas and the
    # applied mark gone, the cubes still marked complete
    db = T.open_cubes(srv.data_dir)
    with db:
        applied = db.execute("SELECT v FROM cube_state WHERE k='applied_seq'").fetchone()[0]
        assert applied >= 2
        db.execute("DELETE FROM cube_rows")
        db.execute("UPDATE cube_state SET v=? WHERE k='applied_seq'", (applied - 1,))
        assert db.execute("SELECT count(*) FROM cube_ids WHERE complete=0").fetchone()[0] == 0
    db.close()
    srv.start(https=False)
    assert T.wait_for(lambda: "rollups rebuilt" in srv.log_text(), timeout=10)
    assert "rollups miss the last receipts" in srv.log_text()
    metrics = ["count", "sum:response_ms", "p95:response_ms", "rate:status=failed"]
    got = stats(srv, s, metrics=",".join(metrics), group_by="status", interval="day")
    assert got["plan"].startswith("cube=")
    check(got, expected(recs, metrics, ["status"], "day"), 2)


def test_recent_hours_come_from_hour_rows(server, sys_factory):
    """Records of the last hours: hourly statistics from the cubes' hour rows (today and the
    two days before), equal to the scan; a range that starts earlier is scanned."""
    s = sys_factory.add()
    now = dt.datetime.now(TZ).replace(minute=0, second=0, microsecond=0)
    recs = [T.txn(system_code=s.code, started_at=(now - dt.timedelta(hours=h)).isoformat(),
                  finished_at=None, response_ms=200 + 17 * h,
                  status="failed" if h % 4 == 0 else "success",
                  error_code="E4" if h % 4 == 0 else None)
            for h in range(0, 40)]
    T.assert_ok(server.ingest(s, recs))
    day0 = now.replace(hour=0) - dt.timedelta(days=1)
    metrics = ["count", "p95:response_ms", "rate:status=failed"]
    got = stats(server, s, metrics=",".join(metrics), interval="hour",
                **{"from": day0.isoformat()})
    assert got["plan"] == "cube=system_code+status; grain=hour"
    check(got, expected([r for r in recs if local(r["started_at"]) >= day0], metrics,
                        interval="hour"), 1)
    # a 48-hour window may start before the hour rows: then the records answer
    early = now - dt.timedelta(days=5)
    assert plan_of(server, s, interval="hour", **{"from": early.isoformat()}) == "scan"
    # whole days: day rows, whatever the age
    assert plan_of(server, s, interval="day", **{"from": early.replace(hour=0).isoformat()}) \
        .endswith("grain=day")


def test_records_dated_far_ahead_keep_no_hour_rows(own_server):
    """A record dated more than a day ahead adds to its day rows only (no hour row that no
    purge would reach before its date); its hour is marked, and an hourly question across it is
    scanned — the same answer — while one that ends before it still reads the hour rows."""
    srv = own_server(https=False)
    s = srv.add_system()
    now = dt.datetime.now(TZ).replace(minute=0, second=0, microsecond=0)
    ahead = now + dt.timedelta(days=3, hours=2)
    recs = [T.txn(system_code=s.code, started_at=(now - dt.timedelta(hours=h)).isoformat(),
                  finished_at=None, response_ms=100 + h) for h in range(0, 6)]
    recs += [T.txn(system_code=s.code, started_at=ahead.isoformat(), finished_at=None,
                   response_ms=500 + i) for i in range(3)]
    T.assert_ok(srv.ingest(s, recs))
    day0 = now.replace(hour=0) - dt.timedelta(days=1)
    metrics = ["count", "p95:response_ms"]
    across = {"from": day0.isoformat(), "to": (ahead + dt.timedelta(hours=1)).isoformat()}
    got = stats(srv, s, metrics=",".join(metrics), interval="hour", **across)
    assert got["plan"] == "scan"
    check(got, expected(recs, metrics, interval="hour"), 1)
    before = {"from": day0.isoformat(), "to": (now + dt.timedelta(hours=1)).isoformat()}
    got = stats(srv, s, metrics=",".join(metrics), interval="hour", **before)
    assert got["plan"] == "cube=system_code+status; grain=hour"
    check(got, expected(recs[:6], metrics, interval="hour"), 1)
    got = stats(srv, s, metrics="count", interval="day")
    assert got["plan"].endswith("grain=day")
    check(got, expected(recs, ["count"], interval="day"), 1)
    assert srv.stop() == 0
    db = T.open_cubes(srv.data_dir)
    ahead_us = int(ahead.timestamp()) * 1000000
    hour_b = (ahead_us + 7 * 3600000000) // 3600000000  # hour buckets count in UTC+07:00
    assert db.execute("SELECT count(*) FROM cube_rows WHERE grain=0 AND bucket>=?",
                      (hour_b,)).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM cube_gaps WHERE bucket=?",
                      (hour_b,)).fetchone()[0] > 0
    db.close()


def test_a_systems_rows_are_sought_not_scanned(server, data, sys_factory):
    """With a closed range and a filter on a cube's first dimension, the planner reads only the
    matching rows of each day (one seek per day and value): the same answer as the scan, a value
    named twice counted once, another system's rows not counted."""
    other = sys_factory.add()
    T.assert_ok(server.ingest(other, [T.txn(system_code=other.code,
                                            started_at="2026-10-05T09:00:00+07:00",
                                            finished_at=None) for _ in range(5)]))
    a = data["a"]
    rng = {"from": "2025-12-01", "to": "2026-10-07"}
    metrics = ["count", "rate:status=failed", "avg:response_ms"]
    got = stats(server, a, metrics=",".join(metrics), interval="day", **rng)
    assert got["plan"].startswith("cube=system_code+status")
    check(got, expected(data["recs"], metrics, interval="day"), 1)
    got = stats(server, a, metrics="count", group_by="status",
                where=[f"system_code:in:{a.code}|{a.code}|{other.code}"], **rng)
    check(got, expected(data["recs"], ["count"], ["status"]), 1)
    # a consumer (no scope of its own): the value named twice is read once
    got = stats(server, data["consumer"], metrics="count", group_by="status",
                where=[f"system_code:in:{a.code}|{a.code}"], **rng)
    assert got["plan"].startswith("cube=system_code+status")
    check(got, expected(data["recs"], ["count"], ["status"]), 1)


def test_a_scan_during_writes_counts_every_record(own_server):
    """The record scan reads the table in two halves on two threads, each on its own snapshot;
    the split point is taken once (taken by each thread, records arriving in between — other
    systems' ingests, the server's own connection logs — opened a gap and records went
    uncounted). While another system writes all the time, the scan counts each record."""
    srv = own_server(https=False)
    a, other = srv.add_system(), srv.add_system()
    recs = [T.txn(system_code=a.code, started_at=f"2026-06-{1 + i % 20:02d}T10:00:00+07:00",
                  finished_at=None) for i in range(300)]
    T.assert_ok(srv.ingest(a, recs))
    stop = threading.Event()

    def writes():
        while not stop.is_set():
            srv.ingest(other, [T.txn(system_code=other.code) for _ in range(20)])

    w = threading.Thread(target=writes)
    w.start()
    try:
        for _ in range(40):
            r = srv.get("/api/v1/stats/transactions", headers=a.headers,
                        params={"metrics": "count", "plan": "scan"})
            assert r.status_code == 200 and r.json()["rows"] == [[300]], r.text
    finally:
        stop.set()
        w.join()
