#!/usr/bin/python3
"""bench/query/run.py — the Python half of bench/query/run.sh (statistics query benchmark).

  run.py load-sqlite CSV DB        the exported `transactions` CSV → a typed raw SQLite table
  run.py pg-ddl CSV                prints the PostgreSQL CREATE TABLE / COPY / index script
  run.py bench --out DIR …         the queries (dtm HTTP, SQLite, PostgreSQL), freshness, checks

Times: in the raw tables `started_at` / `finished_at` are
  SQLite      INTEGER, milliseconds since 1970-01-01T00:00:00Z (the demo's times have
              milliseconds; integers compare and divide exactly, and a day of UTC+07:00 is
              (started_at + 25200000) / 86400000);
  PostgreSQL  timestamptz; days of UTC+07:00 are (started_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
              (no daylight saving time there since 1975).
Empty CSV fields are NULL in both (dtm's export writes an absent field as an empty field).
"""
import csv
import datetime as dt
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
import time

LOADER_VERSION = 1  # bump when the raw table's layout changes (the cached file is keyed by it)

TIME_COLS = ("started_at", "finished_at")
INT_COLS = ("response_ms",)
NUM_COLS = ("amount",)
INDEXES = (("tx_started", "started_at"),
           ("tx_system_started", "system_code, started_at"),
           ("tx_service_started", "service_code, started_at"))
OFFSET_MS = 7 * 3600 * 1000
DAY_MS = 86400 * 1000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
TZ7 = dt.timezone(dt.timedelta(hours=7))


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


def ms_of(text):
    t = dt.datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=TZ7)
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


def day_ms(day):  # date → epoch ms of its 00:00 in UTC+07:00
    return (dt.datetime(day.year, day.month, day.day, tzinfo=TZ7) - EPOCH) // dt.timedelta(milliseconds=1)


def sql_type(col):
    if col in TIME_COLS or col in INT_COLS:
        return "INTEGER"
    if col in NUM_COLS:
        return "NUMERIC"
    return "TEXT"


def pg_type(col):
    if col in TIME_COLS:
        return "timestamptz"
    if col in INT_COLS:
        return "bigint"
    if col in NUM_COLS:
        return "numeric"
    return "text"


def header(path):
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


# ---- load-sqlite ---------------------------------------------------------------------------

def load_sqlite(csv_path, db_path):
    cols = header(csv_path)
    for need in ("system_code", "service_code", "status", "error_code", "started_at",
                 "response_ms", "priority"):
        if need not in cols:
            sys.exit(f"{csv_path}: no column {need} (columns: {cols})")
    tmp = db_path + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    db = sqlite3.connect(tmp)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")
    db.execute("CREATE TABLE tx (" + ", ".join(f"{c} {sql_type(c)}" for c in cols) + ")")
    conv = []
    for c in cols:
        if c in TIME_COLS:
            conv.append(lambda v: ms_of(v) if v else None)
        elif c in INT_COLS:
            conv.append(lambda v: (int(v) if re.fullmatch(r"-?\d+", v) else float(v)) if v else None)
        elif c in NUM_COLS:
            conv.append(lambda v: (int(v) if re.fullmatch(r"-?\d+", v) else float(v)) if v else None)
        else:
            conv.append(lambda v: v if v != "" else None)
    ins = "INSERT INTO tx VALUES (" + ",".join("?" * len(cols)) + ")"
    t0 = time.perf_counter()
    n = 0
    size = os.path.getsize(csv_path)
    with open(csv_path, newline="", encoding="utf-8") as f:
        rd = csv.reader(f)
        next(rd)
        batch = []
        next_log = t0 + 10
        for row in rd:
            batch.append(tuple(fn(v) for fn, v in zip(conv, row)))
            if len(batch) == 50000:
                db.executemany(ins, batch)
                n += len(batch)
                batch = []
                if time.perf_counter() >= next_log:
                    log(f"  SQLite load: {n} rows, {100.0 * f.buffer.tell() / size:.0f} % of the CSV, "
                        f"{time.perf_counter() - t0:.0f} s")
                    next_log += 10
        if batch:
            db.executemany(ins, batch)
            n += len(batch)
    db.commit()
    t1 = time.perf_counter()
    for name, on in INDEXES:
        db.execute(f"CREATE INDEX {name} ON tx({on})")
    db.execute("ANALYZE")
    db.commit()
    t2 = time.perf_counter()
    db.close()
    os.replace(tmp, db_path)
    log(f"SQLite: {n} rows loaded in {t1 - t0:.1f} s, indexes + ANALYZE {t2 - t1:.1f} s, "
        f"{os.path.getsize(db_path) / 1048576:.0f} MB")
    print(json.dumps({"rows": n, "load_s": round(t1 - t0, 1), "index_s": round(t2 - t1, 1),
                      "mb": round(os.path.getsize(db_path) / 1048576)}))


# ---- pg-ddl --------------------------------------------------------------------------------

def pg_ddl(csv_path):
    cols = header(csv_path)
    print("\\timing on")
    print("CREATE TABLE tx (" + ", ".join(f"{c} {pg_type(c)}" for c in cols) + ");")
    print("\\copy tx FROM pstdin (FORMAT csv, HEADER true)")
    for name, on in INDEXES:
        print(f"CREATE INDEX {name} ON tx({on});")
    print("VACUUM (ANALYZE) tx;")


# ---- measuring -----------------------------------------------------------------------------

def pct(values, p):
    """nearest rank"""
    if not values:
        return None
    v = sorted(values)
    return v[max(1, math.ceil(len(v) * p - 1e-9)) - 1]


def repeat(fn, warmups, n_max, budget_s, n_min=3):
    """Runs fn warm-ups times (only once when that one takes more than 1 s), then up to n_max
    times or until budget_s seconds have passed (at least n_min); returns the times in ms."""
    for i in range(warmups):
        t0 = time.perf_counter()
        fn()
        if time.perf_counter() - t0 > 1.0:
            break
    times = []
    start = time.perf_counter()
    while len(times) < n_max and (len(times) < n_min or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


class Dtm:
    def __init__(self, url, key):
        import requests
        self.url = url
        self.s = requests.Session()
        self.s.trust_env = False  # no proxy for 127.0.0.1
        self.s.headers["X-API-Key"] = key

    def get(self, path, params=None):
        r = self.s.get(self.url + path, params=params, timeout=600)
        return r

    def stats(self, params):
        r = self.get("/api/v1/stats/transactions", params)
        if r.status_code != 200:
            raise RuntimeError(f"stats {params}: HTTP {r.status_code}: {r.text[:300]}")
        return r


class Psql:
    def __init__(self, argv):
        self.argv = argv  # psql … -d bench

    def rows(self, sql):
        """the answer through COPY … TO STDOUT (text format: tab-separated, NULL as \\N)"""
        out = subprocess.run(self.argv + ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                                          f"COPY ({sql}) TO STDOUT"],
                             check=True, capture_output=True, text=True).stdout
        unesc = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}
        res = []
        for line in out.split("\n"):
            if line:
                res.append([None if c == "\\N" else re.sub(r"\\[\\tnr]", lambda m: unesc[m.group(0)], c)
                            for c in line.split("\t")])
        return res

    def session_times(self, sql, n):
        """one psql session: \\timing on, output to /dev/null, the query n times; the Time: lines"""
        script = "\\timing on\n\\o /dev/null\n" + (sql.rstrip().rstrip(";") + ";\n") * n
        p = subprocess.run(self.argv + ["-X", "-q", "-v", "ON_ERROR_STOP=1"], input=script,
                           check=True, capture_output=True, text=True)
        t = [float(m.group(1)) for m in re.finditer(r"^Time: ([0-9.]+) ms", p.stdout, re.M)]
        if len(t) != n:
            raise RuntimeError(f"psql printed {len(t)} Time: lines for {n} queries: "
                               f"{p.stdout[-300:]} {p.stderr[-300:]}")
        return t

    def measure(self, sql, n_max, budget_s, n_min=3):
        first = self.session_times(sql, 1)[0]  # warm-up and estimate, in its own session
        n = int(max(n_min, min(n_max, budget_s * 1000.0 / max(first, 0.001))))
        return self.session_times(sql, n)


def sqlite_measure(db, sql, args, n_max, budget_s):
    def run():
        return db.execute(sql, args).fetchall()
    return repeat(run, 1, n_max, budget_s)


# ---- comparing answers ---------------------------------------------------------------------

def num(x):
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def compare(name, dtm_rows, ref_rows, nkey, specs, peer="SQLite"):
    """dtm_rows / ref_rows: lists of rows, the first nkey cells the group key; specs per value
    column: ("exact"|rel tolerance). Returns (ok, text)."""
    def key(r):
        return tuple(None if v is None else str(v) for v in r[:nkey])
    d = {key(r): r[nkey:] for r in dtm_rows}
    s = {key(r): r[nkey:] for r in ref_rows}
    only_d = [k for k in d if k not in s]
    only_s = [k for k in s if k not in d]
    bad = []
    worst = 0.0
    compared = 0
    for k in d:
        if k not in s:
            continue
        compared += 1
        for i, spec in enumerate(specs):
            a, b = num(d[k][i]), num(s[k][i])
            if a is None and b is None:
                continue
            if a is None or b is None:
                bad.append((k, i, d[k][i], s[k][i]))
                continue
            if spec == "exact":
                ok = abs(a - b) <= 1e-9 * max(1.0, abs(b))
            else:
                rel = abs(a - b) / abs(b) if b else abs(a)
                worst = max(worst, rel)
                ok = rel <= spec
            if not ok:
                bad.append((k, i, d[k][i], s[k][i]))
    ok = not bad and not only_d and not only_s and compared > 0
    text = f"{compared} rows compared"
    if any(sp != "exact" for sp in specs):
        text += f", largest relative difference {worst * 100:.3f} %"
    if only_d:
        text += f"; {len(only_d)} groups only in dtm (e.g. {only_d[:3]})"
    if only_s:
        text += f"; {len(only_s)} groups only in {peer} (e.g. {only_s[:3]})"
    if bad:
        text += f"; {len(bad)} differences (e.g. " + ", ".join(
            f"{k} col {i}: dtm {a} vs {peer} {b}" for k, i, a, b in bad[:3]) + ")"
    return ok, text


# ---- bench ---------------------------------------------------------------------------------

def bench(args):
    first = dt.date.fromisoformat(args.first_day)
    last = dt.date.fromisoformat(args.last_day)
    t0, t1 = day_ms(first), day_ms(last + dt.timedelta(days=1))
    # the last calendar month wholly inside the data (Q2)
    m_end = last + dt.timedelta(days=1)
    m_end = dt.date(m_end.year, m_end.month, 1)  # first day of the month after the last full one
    m_start = (m_end - dt.timedelta(days=1)).replace(day=1)
    if m_start < first:
        m_start, m_end = first, last + dt.timedelta(days=1)
    m0, m1 = day_ms(m_start), day_ms(m_end)
    ld0, ld1 = day_ms(last), day_ms(last + dt.timedelta(days=1))
    pg_t0 = f"'{first.isoformat()}T00:00:00+07:00'"
    pg_t1 = f"'{(last + dt.timedelta(days=1)).isoformat()}T00:00:00+07:00'"
    pg_m0 = f"'{m_start.isoformat()}T00:00:00+07:00'"
    pg_m1 = f"'{m_end.isoformat()}T00:00:00+07:00'"
    pg_ld0 = f"'{last.isoformat()}T00:00:00+07:00'"
    pg_ld1 = pg_t1
    day_pg = "(started_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date"

    db = sqlite3.connect(f"file:{args.sqlite}?mode=ro", uri=True)
    db.execute("PRAGMA cache_size=-65536")  # 64 MB, as dtm's writer connection
    dtm = Dtm(args.url, args.key)
    pg = Psql(json.loads(args.psql)) if args.psql else None

    # Q3's system: the one with the most failed records in the 90 days (deterministic)
    sysx = db.execute("SELECT system_code FROM tx WHERE status = 'failed' AND started_at >= ? "
                      "AND started_at < ? GROUP BY system_code ORDER BY count(*) DESC, system_code "
                      "LIMIT 1", (t0, t1)).fetchone()[0]
    total = db.execute("SELECT count(*) FROM tx").fetchone()[0]
    log(f"raw table: {total} rows; days {first} … {last}; month for Q2 {m_start} … "
        f"{m_end - dt.timedelta(days=1)}; system for Q3 {sysx}")

    sq_day = "(started_at + 25200000) / 86400000"
    Q = []  # each: id, title, dtm params (or path), sqlite (sql, args), pg sql, nkey, check specs, kind

    Q.append(dict(
        id="Q1", title="count by system by day, 90 days",
        params={"metrics": "count", "group_by": "system_code", "interval": "day",
                "from": first.isoformat(), "to": last.isoformat()},
        sqlite=(f"SELECT system_code, date(d * 86400, 'unixepoch'), count(*) FROM "
                f"(SELECT system_code, {sq_day} AS d FROM tx WHERE started_at >= ? AND started_at < ?) "
                f"GROUP BY system_code, d ORDER BY system_code, d", (t0, t1)),
        pg=(f"SELECT system_code, {day_pg} AS d, count(*) FROM tx WHERE started_at >= {pg_t0} "
            f"AND started_at < {pg_t1} GROUP BY system_code, d ORDER BY system_code, d"),
        nkey=2, specs=["exact"], kind="cube"))
    Q.append(dict(
        id="Q2", title=f"p95 response_ms by service, {m_start:%Y-%m}",
        params={"metrics": "p95:response_ms", "group_by": "service_code",
                "from": m_start.isoformat(), "to": (m_end - dt.timedelta(days=1)).isoformat()},
        sqlite=("SELECT service_code, response_ms FROM (SELECT service_code, response_ms, "
                "row_number() OVER (PARTITION BY service_code ORDER BY response_ms) AS rn, "
                "count(*) OVER (PARTITION BY service_code) AS n FROM tx "
                "WHERE started_at >= ? AND started_at < ? AND response_ms IS NOT NULL) "
                "WHERE rn = (n * 95 + 99) / 100 ORDER BY service_code", (m0, m1)),
        pg=(f"SELECT service_code, percentile_disc(0.95) WITHIN GROUP (ORDER BY response_ms) "
            f"FROM tx WHERE started_at >= {pg_m0} AND started_at < {pg_m1} "
            f"GROUP BY service_code ORDER BY service_code"),
        nkey=1, specs=[0.01], kind="cube"))
    Q.append(dict(
        id="Q3a", title=f"daily count and failure rate of {sysx}, 90 days",
        params=[("metrics", "count,rate:status=failed"), ("interval", "day"),
                ("where", f"system_code:eq:{sysx}"),
                ("from", first.isoformat()), ("to", last.isoformat())],
        sqlite=(f"SELECT date(d * 86400, 'unixepoch'), count(*), "
                f"sum(status IS 'failed') * 1.0 / count(*) FROM "
                f"(SELECT {sq_day} AS d, status FROM tx WHERE system_code = ? AND started_at >= ? "
                f"AND started_at < ?) GROUP BY d ORDER BY d", (sysx, t0, t1)),
        pg=(f"SELECT {day_pg} AS d, count(*), "
            f"count(*) FILTER (WHERE status = 'failed')::float8 / count(*) FROM tx "
            f"WHERE system_code = '{sysx}' AND started_at >= {pg_t0} AND started_at < {pg_t1} "
            f"GROUP BY d ORDER BY d"),
        nkey=1, specs=["exact", "exact"], kind="cube"))
    Q.append(dict(
        id="Q3b", title=f"failures of {sysx} by error_code, 90 days",
        params=[("metrics", "count"), ("group_by", "error_code"),
                ("where", f"system_code:eq:{sysx}"), ("where", "status:eq:failed"),
                ("from", first.isoformat()), ("to", last.isoformat())],
        sqlite=("SELECT error_code, count(*) FROM tx WHERE system_code = ? AND status = 'failed' "
                "AND started_at >= ? AND started_at < ? GROUP BY error_code ORDER BY error_code",
                (sysx, t0, t1)),
        pg=(f"SELECT error_code, count(*) FROM tx WHERE system_code = '{sysx}' AND status = 'failed' "
            f"AND started_at >= {pg_t0} AND started_at < {pg_t1} GROUP BY error_code ORDER BY error_code"),
        nkey=1, specs=["exact"], kind="cube"))
    q4sql = ("SELECT system_code, count(*), sum(status IS 'failed') * 1.0 / count(*), avg(response_ms), "
             "max(CASE WHEN rn = (nr * 95 + 99) / 100 THEN response_ms END) FROM "
             "(SELECT system_code, status, response_ms, row_number() OVER "
             "(PARTITION BY system_code ORDER BY response_ms NULLS LAST) AS rn, "
             "count(response_ms) OVER (PARTITION BY system_code) AS nr FROM tx "
             "WHERE started_at >= ? AND started_at < ?) GROUP BY system_code ORDER BY system_code",
             (ld0, ld1))
    q4pg = (f"SELECT system_code, count(*), count(*) FILTER (WHERE status = 'failed')::float8 / count(*), "
            f"avg(response_ms), percentile_disc(0.95) WITHIN GROUP (ORDER BY response_ms) FROM tx "
            f"WHERE started_at >= {pg_ld0} AND started_at < {pg_ld1} GROUP BY system_code ORDER BY system_code")
    Q.append(dict(
        id="Q4", title="GET /api/v1/systems (peer: one day per system)",
        path="/api/v1/systems", sqlite=q4sql, pg=q4pg, nkey=1, specs=None, kind="page",
        peer_of="Q4b"))
    Q.append(dict(
        id="Q4b", title=f"per system on {last}: count, failure rate, avg and p95 response_ms",
        params={"metrics": "count,rate:status=failed,avg:response_ms,p95:response_ms",
                "group_by": "system_code", "from": last.isoformat(), "to": last.isoformat()},
        sqlite=q4sql, pg=q4pg, nkey=1, specs=["exact", "exact", 1e-9, 0.01], kind="cube"))
    Q.append(dict(
        id="Q5", title="count by priority, 90 days (no cube)",
        params={"metrics": "count", "group_by": "priority",
                "from": first.isoformat(), "to": last.isoformat()},
        sqlite=("SELECT priority, count(*) FROM tx WHERE started_at >= ? AND started_at < ? "
                "GROUP BY priority ORDER BY priority", (t0, t1)),
        pg=(f"SELECT priority, count(*) FROM tx WHERE started_at >= {pg_t0} AND started_at < {pg_t1} "
            f"GROUP BY priority ORDER BY priority"),
        nkey=1, specs=["exact"], kind="scan"))

    only = set(args.only.split(",")) if args.only else None
    results = []
    checks = []  # (ok, text, is_target)
    peer_cache = {}
    for q in Q:
        if only and q["id"] not in only:
            continue
        r = {"id": q["id"], "title": q["title"], "kind": q["kind"], "plan": None,
             "dtm": None, "sqlite": None, "pg": None, "n": {}, "note": ""}
        results.append(r)
        log(f"{q['id']}: {q['title']}")
        # --- dtm
        if "path" in q:
            resp = dtm.get(q["path"])
            if resp.status_code == 404:
                r["note"] = f"{q['path']}: 404, not available in this build"
                log(f"  dtm: {r['note']}")
                checks.append((None, f"{q['id']} {q['path']}: not available (404)", False))
            elif resp.status_code != 200:
                r["note"] = f"{q['path']}: HTTP {resp.status_code}: {resp.text[:200]}"
                checks.append((False, f"{q['id']} {q['path']} answers 200: {r['note']}", True))
            else:
                try:
                    body = resp.json()
                    items = body if isinstance(body, list) else next(
                        (v for v in body.values() if isinstance(v, list)), [])
                    r["note"] = f"{len(items)} systems, {len(resp.content)} bytes"
                except ValueError:
                    r["note"] = f"{len(resp.content)} bytes (not JSON)"
                r["plan"] = resp.headers.get("DTM-Plan")

                def run_page(path=q["path"]):
                    x = dtm.get(path)
                    if x.status_code != 200:
                        raise RuntimeError(f"{path}: HTTP {x.status_code}")
                r["dtm"] = repeat(run_page, 3, args.repeat, args.dtm_budget)
        else:
            resp = dtm.stats(q["params"])
            r["plan"] = resp.headers.get("DTM-Plan")
            body = resp.json()
            r["dtm_rows"] = body["rows"]
            r["note"] = f"{len(body['rows'])} rows"
            log(f"  dtm: DTM-Plan: {r['plan']}; {len(body['rows'])} rows, {len(resp.content)} bytes")

            def run_q(params=q["params"]):
                dtm.stats(params)
            r["dtm"] = repeat(run_q, 3, args.repeat, args.dtm_budget)
        if r["dtm"]:
            r["n"]["dtm"] = len(r["dtm"])
            log(f"  dtm: p50 {pct(r['dtm'], .5):.2f} ms, p99 {pct(r['dtm'], .99):.2f} ms "
                f"({len(r['dtm'])} runs)")
        # --- peers (Q4 reuses Q4b's, measured once)
        sq_sql, sq_args = q["sqlite"]
        key = q.get("peer_of") or q["id"]
        if key not in peer_cache:
            pc = {}
            log(f"  SQLite plan: " + "; ".join(row[3] for row in db.execute(
                "EXPLAIN QUERY PLAN " + sq_sql, sq_args).fetchall()))
            pc["sqlite_rows"] = db.execute(sq_sql, sq_args).fetchall()
            pc["sqlite"] = sqlite_measure(db, sq_sql, sq_args, args.peer_repeat, args.peer_budget)
            log(f"  SQLite: p50 {pct(pc['sqlite'], .5):.1f} ms ({len(pc['sqlite'])} runs), "
                f"{len(pc['sqlite_rows'])} rows")
            if pg:
                pc["pg_rows"] = pg.rows(q["pg"])
                pc["pg"] = pg.measure(q["pg"], args.peer_repeat, args.peer_budget)
                log(f"  PostgreSQL: p50 {pct(pc['pg'], .5):.1f} ms ({len(pc['pg'])} runs), "
                    f"{len(pc['pg_rows'])} rows")
            peer_cache[key] = pc
        pc = peer_cache[key]
        r["sqlite"] = pc["sqlite"]
        r["n"]["sqlite"] = len(pc["sqlite"])
        if pg:
            r["pg"] = pc["pg"]
            r["n"]["pg"] = len(pc["pg"])
        # --- checks of the answer
        if q["specs"] and "dtm_rows" in r:
            want = "scan" if q["kind"] == "scan" else "cube="
            checks.append((bool(r["plan"]) and r["plan"].startswith(want),
                           f"{q['id']} DTM-Plan is {want}…: {r['plan']}", True))
            ok, text = compare(q["id"], r["dtm_rows"], pc["sqlite_rows"], q["nkey"], q["specs"])
            tol = "exact" if all(s == "exact" for s in q["specs"]) else ", ".join(
                "exact" if s == "exact" else "rounding" if s < 1e-6 else f"±{s * 100:g} %"
                for s in q["specs"])
            checks.append((ok, f"{q['id']} dtm answer = SQLite's ({tol}): {text}", True))
            if pg:
                specs = [s if s == "exact" else 1e-9 for s in q["specs"]]
                ok, text = compare(q["id"], pc["sqlite_rows"], pc["pg_rows"], q["nkey"], specs,
                                   peer="PostgreSQL")
                checks.append((ok, f"{q['id']} peers agree (SQLite = PostgreSQL): {text}", False))

    # ---- freshness
    fresh = None
    if args.source_key and not (only and "fresh" not in only):
        fresh = freshness(args, dtm)
        if fresh.get("error"):
            checks.append((False, f"freshness: {fresh['error']}", True))

    # ---- targets
    for r in results:
        d50, d99 = pct(r["dtm"] or [], .5), pct(r["dtm"] or [], .99)
        s50 = pct(r["sqlite"] or [], .5)
        p50 = pct(r["pg"] or [], .5)
        if r["kind"] == "cube" and d50 is not None:
            checks.append((d99 <= args.target_p99,
                           f"{r['id']} (cube) dtm p99 <= {args.target_p99:g} ms: {d99:.2f} ms", True))
            checks.append((s50 / d50 >= args.target_ratio,
                           f"{r['id']} (cube) SQLite p50 / dtm p50 >= {args.target_ratio:g}: "
                           f"{s50:.1f} / {d50:.2f} = {s50 / d50:.0f} x", True))
            if p50 is not None:
                checks.append((p50 / d50 >= args.target_ratio,
                               f"{r['id']} (cube) PostgreSQL p50 / dtm p50 >= {args.target_ratio:g}: "
                               f"{p50:.1f} / {d50:.2f} = {p50 / d50:.0f} x", True))
        elif r["kind"] == "page" and d50 is not None:
            checks.append((d99 <= args.target_p99,
                           f"{r['id']} /api/v1/systems p99 <= {args.target_p99:g} ms: {d99:.2f} ms", True))
        elif r["kind"] == "scan" and d50 is not None:
            checks.append((d50 <= s50,
                           f"{r['id']} (scan) dtm p50 <= SQLite GROUP BY p50: {d50:.0f} ms vs {s50:.0f} ms "
                           f"({s50 / d50:.2f} x)", True))
    if fresh and not fresh.get("error"):
        checks.append((fresh["max_ms"] <= 1000,
                       f"freshness: a posted record is counted <= 1000 ms after its 2xx: "
                       f"p50 {fresh['p50_ms']:.2f} ms, max {fresh['max_ms']:.2f} ms "
                       f"({fresh['n']} records, {fresh['polls_max']} poll(s) at most, plan {fresh['plan']})",
                       True))

    # ---- output
    os.makedirs(args.out, exist_ok=True)

    def f(x, nd):
        return "n/a" if x is None else f"{x:.{nd}f}"
    lines = ["| query | DTM-Plan | dtm p50 ms | dtm p99 ms | SQLite p50 ms | SQLite p99 ms | "
             "PostgreSQL p50 ms | PostgreSQL p99 ms | SQLite ÷ dtm | PostgreSQL ÷ dtm | runs dtm/SQLite/PG |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        d50, d99 = pct(r["dtm"] or [], .5), pct(r["dtm"] or [], .99)
        s50, s99 = pct(r["sqlite"] or [], .5), pct(r["sqlite"] or [], .99)
        p50, p99 = pct(r["pg"] or [], .5), pct(r["pg"] or [], .99)
        # the page's "today" is the real date (no demo record): its peer is not the same work
        rs = f"{s50 / d50:.1f}" if d50 and s50 and r["kind"] != "page" else ""
        rp = f"{p50 / d50:.1f}" if d50 and p50 and r["kind"] != "page" else ""
        title = f"{r['id']} {r['title']}" + (f" — {r['note']}" if r["kind"] == "page" and r["note"] else "")
        lines.append(f"| {title} | {r['plan'] or ''} | {f(d50, 2)} | {f(d99, 2)} | {f(s50, 1)} | {f(s99, 1)} | "
                     f"{f(p50, 1)} | {f(p99, 1)} | {rs} | {rp} | {r['n'].get('dtm', 0)}/"
                     f"{r['n'].get('sqlite', 0)}/{r['n'].get('pg', 0)} |")
    with open(os.path.join(args.out, "table.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "verdict.txt"), "w") as fh:
        for ok, text, target in checks:
            tag = "n/a " if ok is None else "PASS" if ok else "FAIL"
            fh.write(f"- {tag} {text}{'' if target else ' (not a target)'}\n")
        fh.write("ALL_PASS\n" if all(ok is not False for ok, _, t in checks if t) else "SOME_FAIL\n")
    summary = {"system_q3": sysx, "rows": total, "month": f"{m_start:%Y-%m}", "fresh": fresh,
               "results": [{k: v for k, v in r.items() if k != "dtm_rows"} for r in results]}
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump(summary, fh, indent=1)


def freshness(args, dtm):
    """POST one record as the source system, then ask for its count today (the consumer's
    /stats, day-aligned from/to = the cube); the time from the POST's 2xx to the first answer
    that counts it."""
    import requests
    src = requests.Session()
    src.trust_env = False
    src.headers.update({"X-API-Key": args.source_key, "Content-Type": "application/json"})
    lat, polls_max, plan = [], 0, None
    run = f"{time.time_ns():x}"

    def today():
        return dt.datetime.now(TZ7).date().isoformat()

    def count(day):
        r = dtm.stats({"metrics": "count", "where": f"system_code:eq:{args.source_code}",
                       "from": day, "to": day})
        return int(r.json()["rows"][0][-1]), r.headers.get("DTM-Plan")

    for i in range(args.fresh_n):
        day = today()
        before, plan = count(day)
        now = dt.datetime.now(TZ7)
        ts = now.isoformat(timespec="milliseconds")
        body = {"system_code": args.source_code, "txn_id": f"fresh-{run}-{i}",
                "agency_code": "000.00.00.G00", "service_code": "1.001000", "channel": "web",
                "status": "success", "started_at": ts, "finished_at": ts, "response_ms": 120,
                "region_code": "01"}
        r = src.post(dtm.url + "/api/v1/ingest/transactions", data=json.dumps(body), timeout=60)
        t_ack = time.perf_counter()
        if not 200 <= r.status_code < 300:
            return {"error": f"POST answered {r.status_code}: {r.text[:300]}"}
        if day != today():
            continue  # midnight passed in between: ask again next time
        polls = 0
        while True:
            polls += 1
            n, plan = count(day)
            if n >= before + 1:
                lat.append((time.perf_counter() - t_ack) * 1000.0)
                break
            if time.perf_counter() - t_ack > 10:
                return {"error": f"record {i} not counted 10 s after its 2xx ({n} vs {before} before)"}
            time.sleep(0.001)
        polls_max = max(polls_max, polls)
    res = {"n": len(lat), "p50_ms": pct(lat, .5), "max_ms": max(lat), "polls_max": polls_max,
           "plan": plan}
    log(f"freshness: p50 {res['p50_ms']:.2f} ms, max {res['max_ms']:.2f} ms, "
        f"{polls_max} poll(s) at most, plan {plan}")
    return res


def main():
    import argparse
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("load-sqlite")
    a.add_argument("csv")
    a.add_argument("db")
    a = sub.add_parser("pg-ddl")
    a.add_argument("csv")
    a = sub.add_parser("bench")
    a.add_argument("--out", required=True)
    a.add_argument("--url", required=True)
    a.add_argument("--key", required=True, help="API key of a system that reads every record")
    a.add_argument("--source-key", default="")
    a.add_argument("--source-code", default="")
    a.add_argument("--sqlite", required=True)
    a.add_argument("--psql", default="", help="JSON list: the psql command line up to -d DB")
    a.add_argument("--first-day", required=True)
    a.add_argument("--last-day", required=True)
    a.add_argument("--repeat", type=int, default=50)
    a.add_argument("--dtm-budget", type=float, default=60.0)
    a.add_argument("--peer-repeat", type=int, default=10)
    a.add_argument("--peer-budget", type=float, default=30.0)
    a.add_argument("--fresh-n", type=int, default=20)
    a.add_argument("--target-p99", type=float, default=20.0)
    a.add_argument("--target-ratio", type=float, default=100.0)
    a.add_argument("--only", default="", help="comma list of query ids (and 'fresh')")
    args = ap.parse_args()
    if args.cmd == "load-sqlite":
        load_sqlite(args.csv, args.db)
    elif args.cmd == "pg-ddl":
        pg_ddl(args.csv)
    else:
        bench(args)


if __name__ == "__main__":
    main()
