"""GET /api/v1/live (CONTRACT §6): the dashboard KPIs as text/event-stream, one event a second.
Read with requests (stream=True): the fields of an event, transactions today growing after an
ingest, the cap on concurrent streams ([systems] max_live_streams → 503) and its release when a
client goes away, and SIGTERM stopping the server promptly while a stream is open."""

import datetime as dt
import json
import signal
import subprocess
import time

import pytest

import dtmtest as T
from test_systems import RFC3339_7, away_from_midnight, local_now, start_server

pytestmark = pytest.mark.owns_server

KPIS = ["time", "transactions_today", "error_rate_today", "avg_response_ms_today",
        "p95_response_ms_today", "transactions_last_minute", "systems"]


@pytest.fixture(scope="module")
def srv(dtm_bin, tmp_path_factory):
    if T.EXTERNAL_URL:
        pytest.skip("needs its own server (max_live_streams)")
    s = start_server(tmp_path_factory.mktemp("live"), {"max_live_streams": "2"})
    yield s
    rc = s.stop()
    assert rc == 0, f"dtm serve exited with {rc} after SIGTERM; log:\n{s.log_tail()}"


def open_stream(srv, who):
    sess = T.new_session()
    r = sess.get(srv.url("/api/v1/live"), headers=who.headers, stream=True, timeout=10)
    return sess, r


def open_ok(srv, who, timeout=6):
    """A stream once there is room (a stream closed by an earlier test is noticed at its next
    event)."""
    def attempt():
        s, r = open_stream(srv, who)
        if r.status_code == 200:
            return s, r
        r.close()
        s.close()
        return None
    got = T.wait_for(attempt, timeout=timeout, interval=0.3)
    assert got, "no room for a live stream"
    return got


def events(r):
    """Each event's data, parsed, as it arrives."""
    data = []
    for line in r.iter_lines(decode_unicode=True):
        if line == "":
            if data:
                yield json.loads("\n".join(data))
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def test_events_and_growth(srv):
    away_from_midnight()
    src = srv.add_system()
    sess, r = open_ok(srv, src)
    try:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        it = events(r)
        t0 = time.monotonic()
        e1 = next(it)
        e2 = next(it)
        assert time.monotonic() - t0 < 4
        for e in (e1, e2):
            assert list(e) == KPIS, e
            assert RFC3339_7.match(e["time"])
            assert set(e["systems"]) == {"online", "degraded", "offline", "never"}
            assert sum(e["systems"].values()) >= 1
        assert e2["time"] > e1["time"]
        # records started a few seconds ago: today and in the last minute
        now = local_now()
        recs = []
        for i in range(7):
            rec = T.txn(status="failed" if i == 0 else "success", response_ms=100 * (i + 1),
                        started_at=(now - dt.timedelta(seconds=5)).isoformat(timespec="seconds"),
                        finished_at=None)
            if i == 0:
                rec["error_code"] = "TIMEOUT"
            recs.append(rec)
        T.assert_ok(srv.ingest(src, recs))
        deadline = time.monotonic() + 6
        for e in it:
            if e["transactions_today"] >= e2["transactions_today"] + 7:
                break
            assert time.monotonic() < deadline, "transactions_today did not grow"
        assert e["transactions_last_minute"] >= 7
        assert 0 < e["error_rate_today"] <= 1
        assert e["avg_response_ms_today"] > 0 and e["p95_response_ms_today"] > 0
        assert e["systems"]["online"] + e["systems"]["degraded"] >= 1
    finally:
        r.close()
        sess.close()


def test_stream_cap_and_release(srv):
    src = srv.add_system(role="consumer")
    s1, r1 = open_ok(srv, src)
    s2, r2 = open_ok(srv, src)
    try:
        next(events(r1))
        r = srv.get("/api/v1/live", headers=src.headers)
        T.assert_problem(r, 503)
        assert r.headers.get("Retry-After")
        # a client that goes away frees its place (noticed at the next event)
        r2.close()
        s2.close()

        got = open_ok(srv, src)  # fails when the place of the closed stream is not freed
        next(events(got[1]))
        got[1].close()
        got[0].close()
    finally:
        r1.close()
        s1.close()
    T.assert_problem(srv.get("/api/v1/live"), 401)


def test_sigterm_with_open_stream(own_server):
    srv = own_server(https=False)
    src = srv.add_system()
    sess, r = open_stream(srv, src)
    try:
        it = events(r)
        next(it)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        try:
            rc = srv.proc.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail("the server did not stop within 10 s of SIGTERM with a live stream open")
        assert time.monotonic() - t0 < 5, "SIGTERM waited for the live stream"
        assert rc == 0, srv.log_tail()
        rest = list(it)  # the stream ended cleanly (a terminating chunk, no error)
        assert len(rest) <= 1
    finally:
        r.close()
        sess.close()
    srv._close()
