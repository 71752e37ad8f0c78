"""GET /api/v1/systems and /api/v1/systems/{code} (CONTRACT §6) and the connectivity model
(issue 4): today's figures checked against values computed here from the records sent; the
status never → online → offline with its recorded intervals and uptime; degraded by the failed
share of the last hour and by a health probe (a tiny HTTP server here answers 500, 200, or
hangs past the probe timeout); who may see what; `dtm system add --probe-url`.

The server runs with [systems] online_within = 2, check_interval = 1, probe_interval = 1,
probe_timeout = 1 so that every transition happens within seconds.
"""

import datetime as dt
import http.server
import json
import math
import random
import re
import threading
import time

import pytest

import dtmtest as T

pytestmark = pytest.mark.owns_server

TZ = dt.timezone(dt.timedelta(hours=7))
SYSTEMS_CONF = {"online_within": "2", "check_interval": "1", "probe_interval": "1",
                "probe_timeout": "1"}
RFC3339_7 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+07:00$")
FIELDS = ["code", "name", "org", "role", "parent", "status", "last_seen", "transactions_today",
          "error_rate_today", "avg_response_ms_today", "p95_response_ms_today", "uptime_30d",
          "probe"]


def set_conf(path, section, key, value):
    """Sets `key = value` in [section] of an INI file (replacing the line or adding it)."""
    lines = path.read_text().splitlines()
    out, cur, done = [], None, False
    for ln in lines:
        m = re.match(r"^\s*\[([^\]]+)\]", ln)
        if m:
            if cur == section and not done:
                out.append(f"{key} = {value}")
                done = True
            cur = m.group(1).strip()
        elif cur == section and re.match(rf"^\s*{re.escape(key)}\s*=", ln):
            ln, done = f"{key} = {value}", True
        out.append(ln)
    if not done:
        if cur != section:
            out.append(f"[{section}]")
        out.append(f"{key} = {value}")
    path.write_text("\n".join(out) + "\n")


def start_server(root, conf, https=False):
    data = root / "data"
    T.dtm_init(str(data))
    for k, v in conf.items():
        set_conf(data / "dtm.conf", "systems", k, v)
    s = T.DtmServer(data, log_path=root / "serve.stderr.log")
    s.start(https=https)
    return s


@pytest.fixture(scope="module")
def srv(dtm_bin, tmp_path_factory):
    if T.EXTERNAL_URL:
        pytest.skip("needs its own server with short connectivity timings")
    s = start_server(tmp_path_factory.mktemp("systems"), SYSTEMS_CONF)
    yield s
    rc = s.stop()
    assert rc == 0, f"dtm serve exited with {rc} after SIGTERM; log:\n{s.log_tail()}"


@pytest.fixture(scope="module")
def obs(srv):
    """A consumer: sees every system."""
    return srv.add_system(role="consumer")


def listing(srv, who):
    r = srv.get("/api/v1/systems", headers=who.headers)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert RFC3339_7.match(body["time"]), body["time"]
    return {s["code"]: s for s in body["systems"]}


def detail(srv, who, code):
    r = srv.get(f"/api/v1/systems/{code}", headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()


def heartbeat(srv, who):
    r = srv.post("/api/v1/heartbeat", headers=who.headers)
    assert r.status_code == 200, r.text


def parse_time(s):
    return dt.datetime.fromisoformat(s)


def local_now():
    return dt.datetime.now(TZ)


def away_from_midnight():
    """Today's figures change at midnight UTC+07:00: never run across it."""
    n = local_now()
    secs = n.hour * 3600 + n.minute * 60 + n.second
    if secs < 120:
        time.sleep(121 - secs)
    elif secs > 86400 - 60:
        time.sleep(86400 - secs + 121)


def nearest_rank(vals, p):
    v = sorted(vals)
    return v[max(math.ceil(len(v) * p), 1) - 1]


def close(got, want, rel=0.01):
    return got is not None and abs(got - want) <= rel * abs(want) + 1e-9


def today_records(prefix, n, fail_every=4, max_age=3000):
    """n transactions started earlier today (within max_age seconds), every fail_every-th
    failed, varied response times."""
    now = local_now()
    since_midnight = now.hour * 3600 + now.minute * 60 + now.second
    out = []
    for i in range(n):
        age = random.randint(5, max(6, min(max_age, since_midnight - 30)))
        t = now - dt.timedelta(seconds=age)
        st = "failed" if i % fail_every == 0 else "success"
        r = T.txn(txn_id=f"{prefix}-{i}", status=st, started_at=t.isoformat(timespec="seconds"),
                  finished_at=None, response_ms=random.randint(1, 5000))
        if st == "failed":
            r["error_code"] = "TIMEOUT"
        out.append(r)
    return out


def expected(recs):
    ms = [r["response_ms"] for r in recs]
    return {"n": len(recs), "rate": sum(r["status"] == "failed" for r in recs) / len(recs),
            "avg": sum(ms) / len(ms), "p95": nearest_rank(ms, 0.95)}


# ------------------------------------------------------------------------------------------


def test_list_fields_and_exact_today_numbers(srv, obs):
    away_from_midnight()
    a = srv.add_system()
    b = srv.add_system(org="UBND Ha Noi")
    quiet = srv.add_system()
    ra = today_records(T.uid("SA"), 60)
    rb = today_records(T.uid("SB"), 25, fail_every=5)
    # yesterday (UTC+07:00) does not count today
    midnight = local_now().replace(hour=0, minute=0, second=0, microsecond=0)
    old = [T.txn(status="success", response_ms=99999, finished_at=None,
                 started_at=(midnight - dt.timedelta(minutes=30)).isoformat())]
    for sysm, recs in ((a, ra + old), (b, rb)):
        for i in range(0, len(recs), 20):
            T.assert_ok(srv.ingest(sysm, recs[i:i + 20]))

    got = listing(srv, obs)
    assert {a.code, b.code, quiet.code, obs.code} <= set(got)
    for code, recs in ((a.code, ra), (b.code, rb)):
        s = got[code]
        assert list(s)[:len(FIELDS)] == FIELDS, list(s)
        want = expected(recs)
        assert s["transactions_today"] == want["n"], (code, s)
        assert close(s["error_rate_today"], want["rate"]), (s, want)
        assert close(s["avg_response_ms_today"], want["avg"]), (s, want)
        assert close(s["p95_response_ms_today"], want["p95"]), (s, want)
        assert RFC3339_7.match(s["last_seen"]), s["last_seen"]
        assert s["status"] in ("online", "degraded", "offline"), s
        assert s["probe"] is None
    assert got[b.code]["org"] == "UBND Ha Noi" and got[b.code]["role"] == "source"
    q = got[quiet.code]
    assert (q["status"], q["last_seen"], q["transactions_today"], q["error_rate_today"],
            q["avg_response_ms_today"], q["p95_response_ms_today"], q["uptime_30d"]) == \
        ("never", None, 0, None, None, None, None)

    # the failed share of the last hour: 1/4 ≥ 0.2 makes a (seen) system degraded, 1/5 too;
    # a system without failures is online
    c = srv.add_system()
    T.assert_ok(srv.ingest(c, today_records(T.uid("SC"), 10, fail_every=1000, max_age=600)))

    def statuses():
        for who in (a, c):
            heartbeat(srv, who)
        g = listing(srv, obs)
        return (g[a.code]["status"], g[c.code]["status"]) == ("degraded", "online")
    assert T.wait_for(statuses, timeout=8, interval=0.3), listing(srv, obs)


def test_hourly_of_one_system(srv, obs):
    away_from_midnight()
    a = srv.add_system()
    recs = today_records(T.uid("SH"), 40, fail_every=3, max_age=7200)
    T.assert_ok(srv.ingest(a, recs))
    d = detail(srv, obs, a.code)
    assert d["code"] == a.code and "intervals" in d
    hours = d["hourly"]
    assert len(hours) == 48
    starts = [parse_time(h["hour"]) for h in hours]
    assert all(RFC3339_7.match(h["hour"]) for h in hours)
    assert all((y - x) == dt.timedelta(hours=1) for x, y in zip(starts, starts[1:]))
    assert starts[-1] <= local_now() < starts[-1] + dt.timedelta(hours=1)
    by_hour = {}
    for r in recs:
        t = parse_time(r["started_at"]).astimezone(TZ).replace(minute=0, second=0)
        by_hour.setdefault(t, []).append(r)
    for h, start in zip(hours, starts):
        rs = by_hour.get(start, [])
        assert h["transactions"] == len(rs), (h, len(rs))
        if not rs:
            assert (h["error_rate"], h["avg_response_ms"], h["p95_response_ms"]) == \
                (None, None, None)
            continue
        want = expected(rs)
        assert close(h["error_rate"], want["rate"]) and close(h["avg_response_ms"], want["avg"])
        assert close(h["p95_response_ms"], want["p95"]), (h, want)
    assert sum(h["transactions"] for h in hours) == len(recs)


def test_never_online_offline_intervals_and_uptime(srv, obs):
    s = srv.add_system()
    got = listing(srv, obs)[s.code]
    assert (got["status"], got["last_seen"], got["uptime_30d"]) == ("never", None, None)
    assert detail(srv, obs, s.code)["intervals"] == []

    heartbeat(srv, s)
    assert T.wait_for(lambda: listing(srv, obs)[s.code]["status"] == "online", timeout=3)
    # the evaluator records it (every second)
    assert T.wait_for(lambda: detail(srv, obs, s.code)["intervals"], timeout=4)
    d = detail(srv, obs, s.code)
    assert [(i["status"], i["until"]) for i in d["intervals"]] == [("online", None)], d
    seen = parse_time(d["last_seen"])
    assert abs(parse_time(d["intervals"][0]["since"]) - seen) < dt.timedelta(milliseconds=100)

    # no more heartbeats: offline online_within (2 s) after the last one, and recorded so
    assert T.wait_for(lambda: listing(srv, obs)[s.code]["status"] == "offline", timeout=4)

    def two():
        iv = detail(srv, obs, s.code)["intervals"]
        return len(iv) == 2 and iv
    iv = T.wait_for(two, timeout=4)
    assert iv, detail(srv, obs, s.code)
    assert [i["status"] for i in iv] == ["online", "offline"]
    assert iv[0]["until"] == iv[1]["since"] and iv[1]["until"] is None
    went = parse_time(iv[1]["since"]) - parse_time(d["last_seen"])
    assert abs(went - dt.timedelta(seconds=2)) <= dt.timedelta(milliseconds=2), went

    # uptime: 2 s online out of the time since it was first seen
    time.sleep(1)
    first = parse_time(iv[0]["since"])
    before = local_now()
    u = detail(srv, obs, s.code)["uptime_30d"]
    after = local_now()
    up = (parse_time(iv[1]["since"]) - first).total_seconds()
    lo, hi = up / (after - first).total_seconds(), up / (before - first).total_seconds()
    assert 0 < u < 1 and lo - 0.01 <= u <= hi + 0.01, (u, lo, hi)
    assert listing(srv, obs)[s.code]["uptime_30d"] == pytest.approx(u, abs=0.05)

    # the same history in the table
    con = srv.db()
    try:
        rows = con.execute("SELECT status, until IS NULL FROM system_status WHERE system_code=? "
                           "ORDER BY since", (s.code,)).fetchall()
    finally:
        con.close()
    assert rows == [("online", 0), ("offline", 1)]

    # back online: a new interval
    heartbeat(srv, s)

    def three():
        iv = detail(srv, obs, s.code)["intervals"]
        return [i["status"] for i in iv] == ["online", "offline", "online"] and iv
    assert T.wait_for(three, timeout=4), detail(srv, obs, s.code)["intervals"]


class ProbeTarget:
    """A tiny HTTP server whose /health answers `mode`: a status code, or "hang" (3 s)."""

    def __init__(self):
        self.mode = "200"
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                mode = outer.mode
                if mode == "hang":
                    time.sleep(3)
                    mode = "200"
                try:
                    self.send_response(int(mode))
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.httpd.server_address[1]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def target():
    t = ProbeTarget()
    yield t
    t.close()


def add_probed(srv, url, **kw):
    code = T.system_code("P")
    p = T.run_dtm("system", "add", "--data-dir", str(srv.data_dir), "--code", code, "--name",
                  f"Probed {code}", "--probe-url", url, "--json")
    info = json.loads(p.stdout)
    return T.System(code, info, "source")


def test_probe_degraded_online_and_timeout(srv, obs, target):
    secret = "s3cr3t-" + T.uid("K")
    p = add_probed(srv, f"http://127.0.0.1:{target.port}/health?token={secret}")

    def phase(status, ok, err=None):
        def check():
            heartbeat(srv, p)  # seen: the probe decides between online and degraded
            s = listing(srv, obs)[p.code]
            pr = s["probe"]
            if s["status"] != status or pr is None or pr["ok"] is not ok:
                return None
            if err is not None and not (pr["error"] and err in pr["error"]):
                return None
            return s
        got = T.wait_for(check, timeout=8, interval=0.3)
        assert got, listing(srv, obs)[p.code]
        return got

    target.mode = "500"
    s = phase("degraded", False, "HTTP 500")
    assert RFC3339_7.match(s["probe"]["checked_at"])
    target.mode = "200"
    s = phase("online", True)
    assert s["probe"]["error"] is None and 0 <= s["probe"]["response_ms"] < 1000
    target.mode = "hang"  # longer than probe_timeout (1 s): failing
    s = phase("degraded", False, "Timeout")
    assert 900 <= s["probe"]["response_ms"] < 2900, s["probe"]
    assert target.hits >= 3

    d = detail(srv, obs, p.code)
    assert d["probe"]["ok"] is False
    # the probe URL may carry a secret: never in the answers nor in the log
    assert secret not in json.dumps(d) and secret not in json.dumps(listing(srv, obs))
    assert secret not in srv.log_text()


def test_probe_url_must_be_http(srv):
    for bad in ("ftp://127.0.0.1/x", "file:///etc/passwd", "http://a b", "127.0.0.1:80/x"):
        p = T.run_dtm("system", "add", "--data-dir", str(srv.data_dir), "--code",
                      T.system_code("X"), "--name", "x", "--probe-url", bad, check=False)
        assert p.returncode == 2, (bad, p.stdout, p.stderr)


def test_who_sees_what(srv, obs):
    a = srv.add_system()
    b = srv.add_system()
    agg = srv.add_system(role="aggregator")
    kid = srv.add_system(parent=agg.code)

    # a source sees only itself, and only its own page
    assert set(listing(srv, a)) == {a.code}
    assert detail(srv, a, a.code)["code"] == a.code
    T.assert_problem(srv.get(f"/api/v1/systems/{b.code}", headers=a.headers), 403)
    T.assert_problem(srv.get("/api/v1/systems/NO-SUCH", headers=a.headers), 403)
    # an aggregator sees itself and its children
    assert set(listing(srv, agg)) == {agg.code, kid.code}
    assert detail(srv, agg, kid.code)["parent"] == agg.code
    T.assert_problem(srv.get(f"/api/v1/systems/{a.code}", headers=agg.headers), 403)
    # a consumer sees every one; an unknown code is 404
    assert {a.code, b.code, agg.code, kid.code, obs.code} <= set(listing(srv, obs))
    body = T.assert_problem(srv.get("/api/v1/systems/NO-SUCH", headers=obs.headers), 404)
    assert "NO-SUCH" in body["detail"]
    # credentials are required
    T.assert_problem(srv.get("/api/v1/systems"), 401)
    T.assert_problem(srv.get(f"/api/v1/systems/{a.code}"), 401)
    r = srv.get("/api/v1/systems/NO-SUCH", headers={**obs.headers, "Accept-Language": "en"})
    assert r.status_code == 404 and r.headers["Content-Language"] == "en"
