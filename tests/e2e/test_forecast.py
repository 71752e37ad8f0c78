"""Forecasts (F7, CONTRACT §6 GET /api/v1/forecast/{dataset}) and anomaly detection on series
(issue 7 item 6), end to end against the real binary.

- A synthetic daily series with a known trend and weekly season (and deterministic noise) is
  ingested with back-dated event times: the answer's method is Holt-Winters, chosen because its
  backtest MASE is lower than seasonal naive's; its points follow the known continuation within
  tolerance; the bands nest (95 % around 80 % around the point); the explanation is localised.
- Hourly series: the weekly season of 168 hours when the history holds three weeks (a forecast of
  the next week follows weekdays and a quiet weekend), else the daily one of 24, and the answer
  says which and why.
- Too little history is a 422 saying how much is needed; a bad metric, interval, horizon is a 400
  naming the parameter; the statistics' access rules hold (a source sees its own series only, a
  consumer without a grant is refused, people need the analyst role or above).
- Anomalies: three systems with eleven days of hourly history following a daily season; one loses
  all traffic for the last four closed hours, one fails every transaction in them, one carries on
  as usual. With [anomaly] check_interval = 1 the server checks every second: exactly one
  anomaly.transactions alert for the first (expected and observed values and the band in its
  detail), exactly one anomaly.error_rate alert for the second, none for the third — and later
  checks raise nothing more. When the missing hours arrive (late records), the alert is resolved.
  On PostgreSQL, two nodes sharing the store run each round of the check once between them.
"""

import datetime as dt
import json
import math
import random
import re
import time

import pytest

import dtmtest as T
import pgcluster
from alert_sinks import append_conf, wait_until

TZ = dt.timezone(dt.timedelta(hours=7))
SEASON = [9, 6, 2, 0, -3, -6, -8]  # by days since the first day (sums to 0)


def day_start(d):
    return dt.datetime(d.year, d.month, d.day, tzinfo=TZ)


def today():
    return day_start(dt.datetime.now(TZ))


def recs_at(when, n, failed=0, prefix="F"):
    """n transactions at `when` (spread over a few minutes), the first `failed` of them failed."""
    out = []
    for i in range(n):
        t = (when + dt.timedelta(seconds=7 * i)).isoformat()
        r = {"txn_id": T.uid(prefix), "service_code": "SV01", "channel": "web",
             "status": "failed" if i < failed else "success", "started_at": t,
             "response_ms": 100 + i}
        if i < failed:
            r["error_code"] = "E500"
        out.append(r)
    return out


def send(srv, system, records):
    """Ingests in requests of up to 10 000 records ([ingest] max_records): a system's history in
    one request, committed at once — an anomaly check never sees half of it."""
    for i in range(0, len(records), 10000):
        r = srv.ingest(system, records[i:i + 10000])
        assert r.status_code == 200, r.text[:500]
        assert r.json()["accepted"] == len(records[i:i + 10000]), r.text[:500]


def daily_truth(d):
    """The known series: 20 + 0.5·d + season + deterministic noise in {-1, 0, 1}."""
    return 20 + 0.5 * d + SEASON[d % 7]


DAYS = 70


def daily_counts():
    rng = random.Random(20261126)
    return [max(0, round(daily_truth(d) + rng.choice((-1, 0, 0, 1)))) for d in range(DAYS)]


class Person:
    """A signed-in person (cookie and CSRF token sent by hand over plain HTTP)."""

    def __init__(self, srv, username, role):
        info = json.loads(T.run_dtm("user", "add", "--data-dir", str(srv.data_dir),
                                    "--username", username, "--role", role, "--json").stdout)
        r = srv.post("/api/v1/session", json={"username": username,
                                              "password": info["password"]})
        assert r.status_code == 201, r.text
        self.srv = srv
        self.cookie = r.cookies.get("dtm_session")

    def get(self, path, lang="en", **kw):
        h = {"Cookie": f"dtm_session={self.cookie}", "Accept-Language": lang}
        return self.srv.get(path, headers=h, **kw)


@pytest.fixture(scope="module")
def daily(server, sys_factory):
    """A source with DAYS days of history ending yesterday, and the known counts."""
    src = sys_factory.add()
    first = today() - dt.timedelta(days=DAYS)
    counts = daily_counts()
    recs = []
    for d, c in enumerate(counts):
        recs += recs_at(first + dt.timedelta(days=d, hours=9), c, prefix="D")
    send(server, src, recs)
    return src, counts


def problem(r, status, code):
    body = T.assert_problem(r, status)
    assert body["type"] == "urn:dtm:problem:" + code, body
    return body


def forecast(srv, system, **params):
    h = dict(system.headers) if system else {}
    h.setdefault("Accept-Language", "en")
    return srv.get("/api/v1/forecast/transactions", params=params, headers=h)


def test_daily_forecast_follows_the_known_series(server, daily):
    src, counts = daily
    r = forecast(server, src, horizon=14)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dataset"] == "transactions" and body["metric"] == "count"
    assert body["interval"] == "day" and body["season"] == 7 and body["horizon"] == 14
    assert body["season_reason"] == "weekly"
    hw, sn = body["methods"]["holt_winters"], body["methods"]["seasonal_naive"]
    # the trend makes last week's value a poor guess: Holt-Winters wins the backtest
    assert hw["mase"] < sn["mase"], body["methods"]
    assert body["method"] == "holt_winters"
    assert 0 <= hw["alpha"] <= 1 and 0 <= hw["beta"] <= 1 and 0 <= hw["gamma"] <= 1
    assert hw["mape"] is not None and hw["mape"] < 10
    assert body["backtest"]["folds"] == 5 and body["backtest"]["points_per_fold"] == 7
    # the history is the series as ingested, day by day up to yesterday
    assert [p["value"] for p in body["history"]] == counts
    assert body["history"][-1]["t"].startswith((today() - dt.timedelta(days=1)).strftime(
        "%Y-%m-%dT00:00:00"))
    assert len(body["points"]) == 14
    for h, p in enumerate(body["points"]):
        t = today() + dt.timedelta(days=h)
        assert p["t"].startswith(t.strftime("%Y-%m-%dT00:00:00")), p
        truth = daily_truth(DAYS + h)
        assert abs(p["value"] - truth) <= 3, (h, p, truth)
        assert p["lo95"] <= p["lo80"] <= p["value"] <= p["hi80"] <= p["hi95"], p
        assert p["lo95"] >= 0
        assert p["lo95"] - 1 <= truth <= p["hi95"] + 1, (h, p, truth)
    assert "Holt-Winters" in body["explain"] and "MASE" in body["explain"]
    # in Vietnamese
    r = forecast(server, src, horizon=3, **{})
    vi = server.get("/api/v1/forecast/transactions", params={"horizon": 3},
                    headers={**src.headers, "Accept-Language": "vi"}).json()
    assert "mùa vụ" in vi["explain"] and vi["points"] == r.json()["points"]


def test_metric_rate_and_where(server, daily):
    src, _ = daily
    r = forecast(server, src, metric="rate:status=failed", horizon=7,
                 where=f"system_code:eq:{src.code}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["metric"] == "rate:status=failed"
    assert all(p["value"] == 0 for p in body["history"])
    for p in body["points"]:
        assert 0 <= p["lo95"] <= p["value"] <= p["hi95"] <= 1
    # every actual is 0: MAPE has nothing to divide by
    assert body["methods"]["holt_winters"]["mape"] is None
    assert body["methods"]["seasonal_naive"]["mape"] is None


def test_too_little_history(server, sys_factory):
    src = sys_factory.add()
    first = today() - dt.timedelta(days=10)
    send(server, src, [r for d in range(10) for r in recs_at(first + dt.timedelta(days=d,
                                                                                   hours=8), 5)])
    r = forecast(server, src)
    problem(r, 422, "insufficient_history")
    assert "21 days" in r.json()["detail"] and "has 10" in r.json()["detail"], r.text
    # a system without records has no series at all
    r = forecast(server, sys_factory.add())
    problem(r, 422, "insufficient_history")
    assert "has 0" in r.json()["detail"]


@pytest.mark.parametrize("params,name", [
    ({"metric": "bogus"}, "metric"),
    ({"metric": "count,sum:amount"}, "metric"),
    ({"metric": "sum:nope"}, "metric"),
    ({"interval": "week"}, "interval"),
    ({"interval": "minute"}, "interval"),
    ({"horizon": "0"}, "horizon"),
    ({"horizon": "367"}, "horizon"),
    ({"horizon": "abc"}, "horizon"),
    ({"history": "5"}, "history"),
    ({"where": "nope:eq:x"}, "where"),
])
def test_bad_parameters_are_named(server, daily, params, name):
    src, _ = daily
    r = forecast(server, src, **params)
    problem(r, 400, "bad_parameter")
    assert f"'{name}'" in r.json()["detail"], r.text


def test_permissions(server, daily, sys_factory):
    src, _ = daily
    assert forecast(server, None).status_code == 401
    r = server.get("/api/v1/forecast/nosuchdataset", headers=src.headers)
    assert r.status_code == 404
    # another source sees its own (empty) series, never this one's
    other = sys_factory.add()
    r = forecast(server, other, where=f"system_code:eq:{src.code}")
    problem(r, 422, "insufficient_history")
    # a consumer without a grant of the dataset is refused
    consumer = sys_factory.add(role="consumer")
    assert forecast(server, consumer).status_code == 403
    # people: analysts and above; an auditor is refused
    analyst = Person(server, "fc-analyst-" + T.uid("u").lower()[-6:], "analyst")
    r = analyst.get("/api/v1/forecast/transactions",
                    params={"where": f"system_code:eq:{src.code}", "horizon": 7})
    assert r.status_code == 200, r.text
    assert r.json()["method"] == "holt_winters"
    auditor = Person(server, "fc-auditor-" + T.uid("u").lower()[-6:], "auditor")
    assert auditor.get("/api/v1/forecast/transactions").status_code == 403


def test_hourly_forecast(server, sys_factory):
    src = sys_factory.add()
    now = dt.datetime.now(TZ)
    cur = now.replace(minute=0, second=0, microsecond=0)
    recs = []
    for k in range(96, 0, -1):  # four days of hours before the current one
        h = cur - dt.timedelta(hours=k)
        recs += recs_at(h + dt.timedelta(minutes=5), 6 + round(4 * math.sin(h.hour / 24 * 2 *
                                                                            math.pi)))
    send(server, src, recs)
    r = forecast(server, src, interval="hour", horizon=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["season"] == 24 and len(body["history"]) == 96 and len(body["points"]) == 30
    # four days of hours hold too few weeks for the weekly season: the daily one, and why
    assert body["season_reason"] == "daily_short_history"
    assert "504" in body["explain"] and "has 96" in body["explain"], body["explain"]
    for p in body["points"]:
        t = dt.datetime.fromisoformat(p["t"])
        truth = 6 + round(4 * math.sin(t.astimezone(TZ).hour / 24 * 2 * math.pi))
        assert abs(p["value"] - truth) <= 1.5, (p, truth)


def weekly_hour_truth(h):
    """Transactions in hour h (UTC+07:00): a daily curve on weekdays, a quiet flat weekend."""
    if h.weekday() >= 5:
        return 2
    return 10 + round(4 * math.sin(h.hour / 24 * 2 * math.pi))


def test_hourly_forecast_weekly_season(server, sys_factory):
    """Four weeks of hours whose weekends differ from the weekdays: the default history (504
    hours, three weeks) gives the weekly season of 168 hours, whose forecast of the next week
    follows weekdays and weekend alike; a history of 300 hours falls back to the daily season."""
    src = sys_factory.add()
    cur = dt.datetime.now(TZ).replace(minute=0, second=0, microsecond=0)
    recs = []
    for k in range(4 * 168, 0, -1):
        h = cur - dt.timedelta(hours=k)
        recs += recs_at(h + dt.timedelta(minutes=5), weekly_hour_truth(h), prefix="W")
    send(server, src, recs)
    r = forecast(server, src, interval="hour", horizon=168)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["season"] == 168 and body["season_reason"] == "weekly", body["explain"]
    assert len(body["history"]) == 504 and len(body["points"]) == 168
    assert "week (168 hours)" in body["explain"], body["explain"]
    for p in body["points"]:
        truth = weekly_hour_truth(dt.datetime.fromisoformat(p["t"]).astimezone(TZ))
        assert abs(p["value"] - truth) <= 1.5, (p, truth, body["method"])
    # a shorter history: the daily season, and the answer says why
    r = forecast(server, src, interval="hour", horizon=24, history=300)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["season"] == 24 and body["season_reason"] == "daily_short_history"
    assert len(body["history"]) == 300 and "has 300" in body["explain"], body["explain"]


# ---- anomaly detection


HIST_DAYS = 10  # [anomaly] history_days; the window is one more day


def hourly_count(rng, hour):
    return max(0, round(30 + 15 * math.sin((hour - 8) / 24 * 2 * math.pi) + rng.gauss(0, 2)))


def anomaly_records(kind, cur, seed):
    """Hourly records from HIST_DAYS + 1 days before the current hour up to the last closed
    hour; kind "outage": the last four closed hours have none; "failing": all of their
    transactions failed; "normal": as usual. Returns (records, the outage hours' records)."""
    rng = random.Random(seed)
    recs, late = [], []
    for k in range((HIST_DAYS + 1) * 24, 0, -1):
        h = cur - dt.timedelta(hours=k)
        n = hourly_count(rng, h.hour)
        failed = round(n * 0.05 + rng.choice((0, 0, 1)))
        last4 = k <= 4
        if last4 and kind == "failing":
            failed = n
        rs = recs_at(h + dt.timedelta(minutes=3), n, failed=min(failed, n), prefix="A")
        (late if last4 and kind == "outage" else recs).extend(rs)
    return recs, late


def alerts_of(person, rule):
    r = person.get("/api/v1/alerts", params={"rule": rule, "limit": 100})
    assert r.status_code == 200, r.text
    return r.json()["alerts"]


def checks_done(srv):
    return len(re.findall(r'"msg":"anomaly check"', srv.log_text()))


def test_anomaly_alerts_once_per_episode(own_server):
    srv = own_server(start=False, https=False)
    append_conf(srv.data_dir, f"[anomaly]\ncheck_interval = 1\nconsecutive = 3\n"
                              f"min_history_days = 7\nhistory_days = {HIST_DAYS}\n"
                              f"min_transactions = 5\n")
    # no check before the history is in: the systems are added first, the server started after
    outage, failing, normal = (T.add_system(str(srv.data_dir)) for _ in range(3))
    srv.start(https=False)
    cur = dt.datetime.now(TZ).replace(minute=0, second=0, microsecond=0)
    late = None
    for i, (s, kind) in enumerate(((outage, "outage"), (failing, "failing"),
                                   (normal, "normal"))):
        recs, missing = anomaly_records(kind, cur, 1000 + i)
        assert len(recs) <= 10000
        send(srv, s, recs)
        if kind == "outage":
            late = missing
    op = Person(srv, "fc-operator", "operator")
    got = wait_until(lambda: alerts_of(op, "anomaly.transactions") and
                     alerts_of(op, "anomaly.error_rate"), timeout=60)
    assert got, srv.log_tail()
    # later checks raise nothing more for the same episodes
    n0 = checks_done(srv)
    assert wait_until(lambda: checks_done(srv) >= n0 + 3, timeout=30), srv.log_tail()
    counts = alerts_of(op, "anomaly.transactions")
    rates = alerts_of(op, "anomaly.error_rate")
    assert [a["key"] for a in counts] == [outage.code], counts
    assert [a["key"] for a in rates] == [failing.code], rates
    a = counts[0]
    assert a["state"] == "firing" and a["count"] == 1 and a["severity"] == "warning"
    d = a["detail"]
    assert d["system"] == outage.code and d["metric"] == "count" and d["hours"] >= 3
    assert d["observed"] == 0 and d["expected"] > d["lo95"] > 0 and d["hi95"] > d["expected"]
    assert all(w["observed"] == 0 and w["lo95"] > 0 for w in d["window"])
    assert "outside the forecast band" in a["title"]
    b = rates[0]
    assert b["count"] == 1 and b["detail"]["observed"] == 1 and b["detail"]["hi95"] < 0.5
    assert b["detail"]["metric"] == "rate:status=failed"
    # the missing hours arrive late: the series is back inside the band, the alert resolved
    send(srv, outage, late)
    assert wait_until(lambda: alerts_of(op, "anomaly.transactions")[0]["state"] == "resolved",
                      timeout=30), srv.log_tail()
    assert len(alerts_of(op, "anomaly.transactions")) == 1
    assert srv.stop() == 0


@pytest.mark.skipif(not pgcluster.enabled(), reason="two nodes share one store on PostgreSQL "
                    "(DTM_TEST_STORE=postgresql)")
def test_anomaly_check_runs_once_across_nodes(own_server, tmp_path):
    """Two `dtm serve` on one data dir and one PostgreSQL store: each round of the check is run
    by one node only (claimed in the store), and the outage raises one alert."""
    data = tmp_path / "data"
    T.dtm_init(str(data))
    append_conf(data, f"[anomaly]\ncheck_interval = 1\nconsecutive = 3\nmin_history_days = 7\n"
                      f"history_days = {HIST_DAYS}\nmin_transactions = 5\n")
    outage = T.add_system(str(data))
    a = own_server(data_dir=data, https=False, start=False)
    b = own_server(data_dir=data, https=False, start=False)
    b.log_path = tmp_path / "node-b.log"
    a.start(https=False)
    b.start(https=False)
    cur = dt.datetime.now(TZ).replace(minute=0, second=0, microsecond=0)
    send(a, outage, anomaly_records("outage", cur, 1000)[0])
    op = Person(b, "fc-operator2", "operator")
    assert wait_until(lambda: alerts_of(op, "anomaly.transactions"), timeout=60), b.log_tail()

    def rounds(srv):
        return [int(m) for m in re.findall(r'"msg":"anomaly check","round":(\d+)', srv.log_text())]

    assert wait_until(lambda: len(rounds(a)) + len(rounds(b)) >= 8, timeout=60)
    ra, rb = rounds(a), rounds(b)
    assert not set(ra) & set(rb), (ra, rb)  # no round run twice
    assert len(ra) == len(set(ra)) and len(rb) == len(set(rb))
    got = alerts_of(op, "anomaly.transactions")
    assert [x["key"] for x in got] == [outage.code] and got[0]["count"] == 1, got
    for s in (a, b):
        assert s.stop() == 0, s.log_tail()
