"""Push sharing by subscription (F3, CONTRACT §6 "Subscriptions"; issue 8 item 4), end to end.

A consumer subscribes to hourly aggregates of `transactions`; a real receiver (http.server in a
thread of the test) gets each closed bucket as a signed webhook POST. The receiver checks the
HMAC-SHA-256 signature the way a receiver would (and a tampered body or signature fails that
check); the numbers of each bucket are those GET /api/v1/stats gives the consumer for the same
range (pull sharing works for it too, as do record exports); a 500 answer is retried and the
delivery log shows both attempts; across a server restart with the receiver down, records of
more closed buckets arrive and then every bucket is delivered, in order, none skipped, and the
cursor moves on. Refusals: no grant (403), not a consumer (403), bad or private URLs (400 naming
url). Records are dated in past hours, so their buckets are closed already ([subscriptions]
settle_seconds = 1 here).
"""

import datetime as dt
import hashlib
import hmac
import http.server
import json
import re
import shutil
import threading

import pytest

import dtmtest as T
import pgcluster
from alert_sinks import append_conf, wait_until
from peoplelib import Person, add_user

SECRET = "sub-secret-5c1d7e2a-signing-key-of-the-receiver"
TZ = dt.timezone(dt.timedelta(hours=7))
CONF = ("[subscriptions]\nsettle_seconds = 1\nretry_initial = 1\nretry_max = 1\n"
        "allow_private = true\ntimeout = 5\n")


class Receiver:
    """A webhook receiver on 127.0.0.1 (a given port, or one the kernel picks) that keeps every
    POST and answers the statuses it is told in order, then 200."""

    def __init__(self, port=0, statuses=()):
        self.statuses = list(statuses)
        self.requests = []  # (headers, body, status answered)
        self.lock = threading.Lock()
        rcv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with rcv.lock:
                    status = rcv.statuses.pop(0) if rcv.statuses else 200
                    rcv.requests.append(({k.lower(): v for k, v in self.headers.items()}, body,
                                         status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/dtm/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def acknowledged(self):
        """The bodies answered 2xx, each delivery once (at least once: receivers dedupe on
        X-DTM-Delivery), in arrival order."""
        seen, out = set(), []
        with self.lock:
            for h, body, status in self.requests:
                if 200 <= status < 300 and h["x-dtm-delivery"] not in seen:
                    seen.add(h["x-dtm-delivery"])
                    out.append((h, body))
        return out

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def verify(secret, headers, body):
    """What a receiver does: X-DTM-Signature = sha256=<hex HMAC-SHA-256 of the raw body>."""
    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("x-dtm-signature", ""), want)


def hour_start(t):
    return t.replace(minute=0, second=0, microsecond=0)


def iso(t):
    return t.isoformat(timespec="seconds")


def records(system, hour, n, status="success"):
    out = []
    for i in range(n):
        t = hour + dt.timedelta(minutes=5 + i)
        out.append(T.txn(system_code=system.code, started_at=iso(t),
                         finished_at=iso(t + dt.timedelta(seconds=1)), status=status,
                         error_code="E42" if status == "failed" else None,
                         response_ms=100 + 10 * i))
    return out


def start(own_server, conf=CONF, https=False):
    srv = own_server(start=False)
    append_conf(srv.data_dir, conf)
    srv.start(https=https)
    return srv


def consumer(srv, grant=True):
    c = srv.add_system(role="consumer")
    if grant:
        srv.dtm("grant", "add", "--data-dir", srv.data_dir, "--system", c.code, "--dataset",
                "transactions")
    return c


def subscribe(srv, system, headers=None, **body):
    return srv.post("/api/v1/subscriptions", headers=headers or system.headers, json=body)


def stats_of(srv, system, sub, frm, to):
    """GET /api/v1/stats for a bucket, with the subscription's parameters, as the consumer."""
    r = srv.get("/api/v1/stats/transactions", headers=system.headers,
                params={"metrics": sub["metrics"], "group_by": sub["group_by"] or None,
                        "from": frm, "to": to, "where": sub["where"]})
    assert r.status_code == 200, r.text
    return r.json()


def deliveries(srv, system, sid):
    r = srv.get(f"/api/v1/subscriptions/{sid}/deliveries", headers=system.headers)
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def check_buckets(srv, system, sub, got, first, n):
    """The first n acknowledged deliveries are the n hourly buckets from `first`, in order,
    each with exactly the numbers GET /api/v1/stats gives; any later one is the next bucket."""
    assert len(got) >= n
    for i, (h, body) in enumerate(got):
        assert verify(SECRET, h, body), "the receiver's signature check failed"
        p = json.loads(body)
        start_t = first + dt.timedelta(hours=i)
        assert p["subscription"] == sub["id"] and p["dataset"] == "transactions"
        assert p["interval"] == "hour"
        assert p["delivery"] == h["x-dtm-delivery"] == f"{sub['id']}.{int(start_t.timestamp())}"
        assert h["x-dtm-subscription"] == sub["id"]
        assert int(h["x-dtm-timestamp"]) > 0
        assert dt.datetime.fromisoformat(p["from"]) == start_t, (i, p["from"])
        assert dt.datetime.fromisoformat(p["to"]) == start_t + dt.timedelta(hours=1)
        assert p["bucket"] == start_t.strftime("%Y-%m-%dT%H:00+07:00")
        want = stats_of(srv, system, sub, p["from"], p["to"])
        assert p["columns"] == want["columns"]
        assert sorted(map(json.dumps, p["rows"])) == sorted(map(json.dumps, want["rows"])), (
            i, p["rows"], want["rows"])
    return [json.loads(b) for _, b in got]


def test_subscription_delivers_signed_buckets_with_retry(own_server):
    srv = start(own_server)
    con = consumer(srv)
    src1, src2 = srv.add_system(), srv.add_system()
    h0 = hour_start(dt.datetime.now(TZ))
    first = h0 - dt.timedelta(hours=3)
    # 3 closed hours: 4+2, 0+3 (one failed), 5+0 records
    T.assert_ok(srv.ingest(src1, records(src1, first, 4)))
    T.assert_ok(srv.ingest(src2, records(src2, first, 2)))
    T.assert_ok(srv.ingest(src2, records(src2, first + dt.timedelta(hours=1), 2)
                           + records(src2, first + dt.timedelta(hours=1, minutes=30), 1,
                                     status="failed")))
    T.assert_ok(srv.ingest(src1, records(src1, first + dt.timedelta(hours=2), 5)))
    rcv = Receiver(statuses=[500])  # the first attempt fails: retried
    try:
        r = subscribe(srv, con, dataset="transactions", url=rcv.url, secret=SECRET,
                      **{"from": iso(first + dt.timedelta(minutes=17))})
        assert r.status_code == 201, r.text
        sub = r.json()
        assert r.headers["Location"] == f"/api/v1/subscriptions/{sub['id']}"
        assert sub["id"].startswith("sub_") and sub["created_at"]
        assert "secret" not in sub and SECRET not in r.text  # never shown again
        # defaults: count per system per hour, no conditions; the cursor at the first bucket
        assert (sub["metrics"], sub["group_by"], sub["interval"], sub["where"]) == (
            "count", "system_code", "hour", [])
        assert dt.datetime.fromisoformat(sub["cursor"]) == first
        assert sub["delivered"] == 0 and sub["last_delivered_bucket"] is None

        got = wait_until(lambda: len(rcv.acknowledged()) >= 3 and rcv.acknowledged(), 30)
        assert got, f"deliveries: {rcv.requests}; log:\n{srv.log_tail()}"
        bodies = check_buckets(srv, con, sub, got, first, 3)
        assert {tuple(r) for r in bodies[0]["rows"]} == {(src1.code, 4), (src2.code, 2)}
        assert bodies[1]["rows"] == [[src2.code, 3]]
        assert bodies[2]["rows"] == [[src1.code, 5]]

        # every POST was signed; the first (answered 500) and its retry carry one delivery id
        reqs = rcv.requests
        assert all(verify(SECRET, h, b) for h, b, _ in reqs)
        assert reqs[0][2] == 500 and reqs[1][2] == 200
        assert reqs[0][0]["x-dtm-delivery"] == reqs[1][0]["x-dtm-delivery"]
        # a receiver detects tampering: an altered body, or a signature under another key
        h, body = got[0]
        assert not verify(SECRET, h, body.replace(b'"rows":[[', b'"rows":[[ '))
        assert not verify(SECRET, h, body[:-1] + b" }")
        forged = dict(h, **{"x-dtm-signature": "sha256=" + hmac.new(
            b"not-the-secret", body, hashlib.sha256).hexdigest()})
        assert not verify(SECRET, forged, body)

        # the delivery log: the 500, then the acknowledged retry, then one attempt per bucket
        log = deliveries(srv, con, sub["id"])
        assert [(d["attempt"], d["status"], d["ok"]) for d in log[:2]] == [(1, 500, False),
                                                                           (2, 200, True)]
        assert log[0]["error"] == "HTTP 500" and log[1]["error"] is None
        assert log[0]["bucket"] == log[1]["bucket"] == first.strftime("%Y-%m-%dT%H:00+07:00")
        assert [(d["attempt"], d["status"], d["ok"]) for d in log[2:4]] == [(1, 200, True)] * 2
        assert all(d["at"] for d in log)
        page = srv.get(f"/api/v1/subscriptions/{sub['id']}/deliveries",
                       params={"after": log[0]["seq"], "limit": 1}, headers=con.headers).json()
        assert [d["seq"] for d in page["deliveries"]] == [log[1]["seq"]]

        # Prometheus counters of the attempts
        m = srv.get("/metrics")
        assert m.status_code == 200
        counts = dict(re.findall(
            r'^dtm_subscription_deliveries_total\{outcome="(\w+)"\} (\d+)', m.text, re.M))
        assert int(counts["ok"]) >= 3 and int(counts["failed"]) >= 1, counts

        # the cursor moved past the delivered buckets
        cur = srv.get(f"/api/v1/subscriptions/{sub['id']}", headers=con.headers).json()
        assert dt.datetime.fromisoformat(cur["cursor"]) >= h0
        assert cur["delivered"] >= 3 and cur["failed_attempts"] == 0
        assert dt.datetime.fromisoformat(cur["last_delivered_bucket"]) >= first + dt.timedelta(
            hours=2)

        # late records (after their bucket was delivered) are not sent again: a second
        # subscription's delivery shows the server went round after them
        late = records(src1, first + dt.timedelta(hours=1, minutes=40), 1)
        T.assert_ok(srv.ingest(src1, late))
        rcv2 = Receiver()
        try:
            r2 = subscribe(srv, con, dataset="transactions", url=rcv2.url, secret=SECRET,
                           interval="hour", metrics="count,avg:response_ms", group_by="",
                           where="status:eq:success",
                           **{"from": iso(first + dt.timedelta(hours=1))})
            assert r2.status_code == 201, r2.text
            sub2 = r2.json()
            got2 = wait_until(lambda: len(rcv2.acknowledged()) >= 2 and rcv2.acknowledged(), 30)
            assert got2, srv.log_tail()
            b2 = check_buckets(srv, con, sub2, got2, first + dt.timedelta(hours=1), 2)
            assert b2[0]["columns"] == ["count", "avg:response_ms"]
            assert b2[0]["rows"][0][0] == 3  # 2 + the late one; the failed one is filtered out
        finally:
            rcv2.close()
        again = [d for d in deliveries(srv, con, sub["id"]) if d["ok"]]
        assert len({d["bucket"] for d in again}) == len(again)  # each bucket acknowledged once
        assert sum(1 for _, b in rcv.acknowledged()
                   if json.loads(b)["bucket"] == bodies[1]["bucket"]) == 1

        # pull sharing for the granted consumer: statistics and record exports
        assert stats_of(srv, con, sub, iso(first), iso(h0))["rows"]
        r = srv.get("/api/v1/datasets/transactions/records", headers=con.headers,
                    params={"from": iso(first), "to": iso(h0)})
        assert r.status_code == 200, r.text

        # listing: the consumer's own; another consumer sees none of them
        mine = srv.get("/api/v1/subscriptions", headers=con.headers).json()["subscriptions"]
        assert {s["id"] for s in mine} == {sub["id"], sub2["id"]}
        other = consumer(srv)
        assert srv.get("/api/v1/subscriptions", headers=other.headers).json() == {
            "subscriptions": []}
        assert srv.get(f"/api/v1/subscriptions/{sub['id']}",
                       headers=other.headers).status_code == 404
        assert srv.request("DELETE", f"/api/v1/subscriptions/{sub['id']}",
                           headers=other.headers).status_code == 404

        # operators: `dtm subscription list` (a server may be running)
        p = srv.dtm("subscription", "list", "--data-dir", srv.data_dir, "--json")
        listed = {s["id"]: s for s in json.loads(p.stdout)}
        assert set(listed) == {sub["id"], sub2["id"]} and SECRET not in p.stdout
        assert listed[sub["id"]]["cursor"] == cur["cursor"] or listed[sub["id"]]["delivered"] >= 3
        p = srv.dtm("subscription", "list", "--data-dir", srv.data_dir, "--system", other.code)
        assert sub["id"] not in p.stdout
    finally:
        rcv.close()
    # the secret is kept sealed, never in clear in the store nor in the log
    assert SECRET.encode() not in T.store_bytes(srv.data_dir)
    assert SECRET not in srv.log_text()


def test_refusals_and_delete(own_server):
    """Default configuration (allow_private = false): loopback and private URLs are refused."""
    srv = start(own_server, "", https=True)  # people sign in over HTTPS (Secure cookies)
    con = consumer(srv)
    url = "https://198.51.100.7/dtm/hook"  # public (no name to resolve here)

    # a consumer without a grant of the dataset, and a system that is not a consumer: 403
    r = subscribe(srv, consumer(srv, grant=False), dataset="transactions", url=url,
                  secret=SECRET)
    assert T.assert_problem(r, 403)["type"] == "urn:dtm:problem:not_granted"
    r = subscribe(srv, srv.add_system(), dataset="transactions", url=url, secret=SECRET)
    T.assert_problem(r, 403)
    # bad URLs: 400 naming url
    for bad in ["ftp://receiver.example.gov.vn/x", "http://user:pw@receiver.example.gov.vn/x",
                "receiver.example.gov.vn/x", "http:///x", "http://127.0.0.1:9/x",
                "http://localhost/x", "http://10.1.2.3/x", "http://[::1]/x",
                "http://169.254.169.254/latest/meta-data", "http://192.168.1.1/x", "",
                "http://a b/"]:
        r = subscribe(srv, con, dataset="transactions", url=bad, secret=SECRET)
        T.assert_problem(r, 400)
        assert "url" in r.json()["detail"], (bad, r.json())
    r = subscribe(srv, con, dataset="transactions", secret=SECRET)
    assert r.status_code == 400 and "url" in r.json()["detail"]
    # other members are named too
    for body, name in [({"secret": "short"}, "secret"), ({"interval": "week"}, "interval"),
                       ({"where": "nofield:eq:1"}, "where"), ({"metrics": "bogus"}, "metrics"),
                       ({"group_by": "txn_id"}, "group_by"),
                       ({"from": "2001-01-01T00:00:00+07:00"}, "from")]:
        full = {"dataset": "transactions", "url": url, "secret": SECRET, **body}
        r = subscribe(srv, con, **full)
        T.assert_problem(r, 400)
        assert name in r.json()["detail"], (body, r.json())
    r = subscribe(srv, con, dataset="nosuchdataset", url=url, secret=SECRET)
    T.assert_problem(r, 422)

    # an OAuth bearer token of the consumer works as its API key does
    tok = srv.post("/oauth/token", data={"grant_type": "client_credentials",
                                         "client_id": con.client_id,
                                         "client_secret": con.client_secret})
    assert tok.status_code == 200, tok.text
    r = subscribe(srv, con, headers={"Authorization": "Bearer " + tok.json()["access_token"]},
                  dataset="transactions", url=url, secret=SECRET, interval="day")
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.json()["interval"] == "day"
    cursor = dt.datetime.fromisoformat(r.json()["cursor"])
    assert cursor == dt.datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)

    # operators (and admins) see every subscription and may end one
    other = subscribe(srv, consumer(srv), dataset="transactions", url=url, secret=SECRET)
    assert other.status_code == 201, other.text
    op = Person(srv, "op-subs", add_user(srv, "op-subs", "operator"))
    op.login_ok()
    listed = op.get("/api/v1/subscriptions")
    assert listed.status_code == 200, listed.text
    assert {x["id"] for x in listed.json()["subscriptions"]} == {sid, other.json()["id"]}
    assert op.get("/api/v1/subscriptions", params={"system": con.code}).json()[
        "subscriptions"][0]["id"] == sid
    assert op.get(f"/api/v1/subscriptions/{sid}/deliveries").status_code == 200
    assert op.req("DELETE", f"/api/v1/subscriptions/{other.json()['id']}").status_code == 204
    # people may not subscribe: consumers do
    assert op.post("/api/v1/subscriptions", json={"dataset": "transactions", "url": url,
                                                  "secret": SECRET}).status_code in (401, 403)

    # delete: 204, then gone; created and deleted are audited (without the secret)
    r = srv.request("DELETE", f"/api/v1/subscriptions/{sid}", headers=con.headers)
    assert r.status_code == 204, r.text
    assert srv.get(f"/api/v1/subscriptions/{sid}", headers=con.headers).status_code == 404
    assert srv.request("DELETE", f"/api/v1/subscriptions/{sid}",
                       headers=con.headers).status_code == 404
    db = srv.db()
    try:
        rows = db.execute("SELECT actor, action, detail FROM audit_log WHERE target=? "
                          "ORDER BY seq", (sid,)).fetchall()
    finally:
        db.close()
    assert [(a, b) for a, b, _ in rows] == [(con.code, "subscription.created"),
                                            (con.code, "subscription.deleted")]
    assert SECRET not in json.dumps(rows)
    assert json.loads(rows[0][2])["host"] == "198.51.100.7"


def test_private_address_refused_when_connecting(own_server):
    """A subscription made while allow_private was on (and nothing was due yet) is refused at
    connection time once it is off: the address is checked after name resolution, before any
    packet is sent, so the receiver sees nothing and the log says why."""
    srv = start(own_server, CONF.replace("settle_seconds = 1", "settle_seconds = 86400"))
    con = consumer(srv)
    rcv = Receiver()
    try:
        first = hour_start(dt.datetime.now(TZ)) - dt.timedelta(hours=2)
        r = subscribe(srv, con, dataset="transactions", secret=SECRET, **{"from": iso(first)},
                      url=rcv.url.replace("127.0.0.1", "localhost"))
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        assert srv.stop() == 0
        append_conf(srv.data_dir, "[subscriptions]\nsettle_seconds = 1\nallow_private = false\n")
        srv.start(https=False)
        assert wait_until(lambda: deliveries(srv, con, sid), 30), srv.log_tail()
        d = deliveries(srv, con, sid)[0]
        assert not d["ok"] and d["status"] is None and "not public" in d["error"], d
        assert rcv.requests == []
    finally:
        rcv.close()


def test_restart_with_receiver_down_delivers_every_bucket(own_server):
    srv = start(own_server)
    con = consumer(srv)
    src = srv.add_system()
    h0 = hour_start(dt.datetime.now(TZ))
    first = h0 - dt.timedelta(hours=4)
    port = T.free_port()  # nothing listens there yet: the receiver is down
    r = subscribe(srv, con, dataset="transactions", url=f"http://127.0.0.1:{port}/dtm/hook",
                  secret=SECRET, **{"from": iso(first)})
    assert r.status_code == 201, r.text
    sub = r.json()
    # attempts fail and are logged; the cursor stays
    assert wait_until(lambda: len(deliveries(srv, con, sub["id"])) >= 2, 30), srv.log_tail()
    log = deliveries(srv, con, sub["id"])
    assert all(not d["ok"] and d["status"] is None and d["error"] for d in log)
    assert {d["bucket"] for d in log} == {first.strftime("%Y-%m-%dT%H:00+07:00")}
    assert [d["attempt"] for d in log[:2]] == [1, 2]
    assert srv.stop() == 0

    # the restarted server receives records of more closed buckets while the receiver is down
    srv.start(https=False)
    T.assert_ok(srv.ingest(src, records(src, first + dt.timedelta(hours=1), 2)))
    T.assert_ok(srv.ingest(src, records(src, first + dt.timedelta(hours=3), 3)))
    cur = srv.get(f"/api/v1/subscriptions/{sub['id']}", headers=con.headers).json()
    assert dt.datetime.fromisoformat(cur["cursor"]) == first and cur["delivered"] == 0
    assert cur["failed_attempts"] >= 2 and cur["last_error"]

    rcv = Receiver(port=port)
    try:
        got = wait_until(lambda: len(rcv.acknowledged()) >= 4 and rcv.acknowledged(), 30)
        assert got, f"{rcv.requests}; log:\n{srv.log_tail()}"
        bodies = check_buckets(srv, con, sub, got, first, 4)  # in order, none skipped
        assert [b["rows"] for b in bodies[:4]] == [[], [[src.code, 2]], [], [[src.code, 3]]]
    finally:
        rcv.close()
    cur = srv.get(f"/api/v1/subscriptions/{sub['id']}", headers=con.headers).json()
    assert dt.datetime.fromisoformat(cur["cursor"]) >= h0 and cur["delivered"] >= 4
    assert cur["failed_attempts"] == 0 and cur["last_error"] is None
    ok = [d for d in deliveries(srv, con, sub["id"]) if d["ok"]]
    assert [d["bucket"] for d in ok[:4]] == [
        (first + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:00+07:00") for i in range(4)]


@pytest.mark.skipif(not pgcluster.enabled(),
                    reason="two nodes share one store on PostgreSQL (DTM_TEST_STORE=postgresql)")
def test_two_nodes_sharing_postgresql_send_each_bucket_once(own_server):
    """Two `dtm serve` nodes on one PostgreSQL database (the same data dir copied: same master
    key, same dtm.conf) race for the same subscription: the lease in the store lets one node
    send each bucket, so with a receiver that always acknowledges, each bucket arrives once."""
    srv = own_server(start=False)
    append_conf(srv.data_dir, CONF)
    twin_dir = srv.data_dir.parent / (srv.data_dir.name + "-twin")
    shutil.copytree(srv.data_dir, twin_dir)
    twin = own_server(data_dir=twin_dir, start=False)
    con = consumer(srv)
    h0 = hour_start(dt.datetime.now(TZ))
    first = h0 - dt.timedelta(hours=8)
    rcv = Receiver()
    try:
        srv.start(https=False)
        twin.start(https=False)
        r = subscribe(twin, con, dataset="transactions", url=rcv.url, secret=SECRET,
                      **{"from": iso(first)})
        assert r.status_code == 201, r.text
        sub = r.json()
        got = wait_until(lambda: len(rcv.acknowledged()) >= 8 and rcv.acknowledged(), 30)
        assert got, f"{rcv.requests}; log:\n{srv.log_tail()}\n{twin.log_tail()}"
        check_buckets(srv, con, sub, got, first, 8)
        ids = [h["x-dtm-delivery"] for h, _, _ in rcv.requests]
        assert len(ids) == len(set(ids)), f"a bucket was sent twice: {ids}"
        log = deliveries(srv, con, sub["id"])
        assert all(d["ok"] and d["attempt"] == 1 for d in log)
    finally:
        rcv.close()
