"""Early warning (T4.1, issue 5 item 7), end to end: the real server, real clients bound to
different loopback source addresses (Linux routes all of 127/8 to lo: 127.0.0.1, 127.0.1.x and
127.0.2.x are distinct /24 networks), and the alerts received by real channels — a webhook
receiver (http.server; signatures checked) and, for brute force, a UDP syslog listener too.

- a burst of 401 answers to one client → http.denied_burst, and the same bad API keys →
  auth.brute_force_ip; another client below the thresholds raises nothing;
- an API key used from a new /24 network once its system has a history → key.unusual_network
  (and not while it is still being learnt, nor from a known network);
- a traffic and error spike against a system's own EWMA baseline (buckets of 2 s) →
  traffic.spike and errors.spike, resolved once traffic is back to normal;
- a system silent longer than [systems] online_within → system.silent, resolved when it calls
  again;
- brute force on an account → lockout (429 login_locked) and auth.brute_force_account on two
  channels (webhook and syslog); failures across user names from one address →
  auth.brute_force_ip;
- an administrator signing in from a new address → auth.admin_new_address (the first sign-in
  ever and a known address do not alert), also right after a restart (the known addresses are
  learnt again from the audit trail).
Every threshold comes from the [warning] section of dtm.conf, set small here.
"""

import http.client
import json
import time

import pytest

import dtmtest as T
from alert_sinks import (SyslogSink, WebhookSink, append_conf, channels_conf, verify_signature,
                         wait_until)

SECRET = "whk-early-warning-signing-key-3b9d"

# rate limits off: the bursts below must reach the rules, not the token buckets
BASE_CONF = "\n[ratelimit]\nenabled = false\n"


class Client:
    """A keep-alive HTTP client whose connections leave from a given loopback address."""

    def __init__(self, srv, source="127.0.0.1"):
        self.srv = srv
        self.source = source
        self.conn = None

    def call(self, method, path, headers=None, body=None):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.srv.http_port,
                                                       timeout=15,
                                                       source_address=(self.source, 0))
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def start(own_server, hook, warning, extra="", syslog=None):
    srv = own_server(start=False, https=False)
    append_conf(srv.data_dir, BASE_CONF + "\n[warning]\n" + warning + "\n" + extra + "\n" +
                channels_conf(hook=hook, secret=SECRET, syslog=syslog))
    srv.start(https=False)
    return srv


def alerts(srv, rule):
    db = srv.db()
    try:
        db.row_factory = lambda c, r: {d[0]: v for d, v in zip(c.description, r)}
        return db.execute("SELECT * FROM alerts WHERE rule=? ORDER BY id", (rule,)).fetchall()
    finally:
        db.close()


def delivered(hook, rule, key=None):
    """The alerts of rule (and key) the webhook received, each signature checked."""
    out = []
    for _, headers, body, status in hook.received():
        assert verify_signature(SECRET, headers, body), headers
        a = json.loads(body)["alert"]
        if a["rule"] == rule and (key is None or a["key"] == key):
            out.append(a)
    return out


def wait_delivered(srv, hook, rule, key=None, timeout=15):
    got = wait_until(lambda: delivered(hook, rule, key), timeout=timeout)
    assert got, (f"no {rule} ({key}) delivered; webhook got "
                 f"{[json.loads(b)['alert']['rule'] for _, _, b, _ in hook.received()]}\n"
                 f"{srv.log_tail()}")
    return got[0]


@pytest.fixture
def hook():
    h = WebhookSink()
    yield h
    h.close()


def test_denied_burst_and_brute_force_from_an_address(own_server, hook):
    srv = start(own_server, hook, "denied_burst = 8\ndenied_window = 60\n"
                                  "ip_failures = 6\nip_window = 60\n")
    s = srv.add_system()
    # a client below both thresholds: nothing
    quiet = Client(srv, "127.0.0.3")
    for i in range(4):
        st, _, _ = quiet.call("POST", "/api/v1/heartbeat", {"X-API-Key": f"dtm_bad{i}"})
        assert st == 401
    # the attacker: wrong keys, each a 401
    bad = Client(srv, "127.0.0.1")
    for i in range(10):
        st, _, _ = bad.call("POST", "/api/v1/heartbeat", {"X-API-Key": f"dtm_guess{i:04d}"})
        assert st == 401
    a = wait_delivered(srv, hook, "http.denied_burst", "127.0.0.1")
    assert a["state"] == "firing" and a["severity"] == "warning"
    assert a["detail"]["address"] == "127.0.0.1" and a["detail"]["count"] >= 8
    assert a["detail"]["window_s"] == 60
    b = wait_delivered(srv, hook, "auth.brute_force_ip", "127.0.0.1")
    assert b["severity"] == "critical" and b["detail"]["count"] >= 6
    # one alert each, not one per request (the engine de-duplicates; the rule raises once)
    time.sleep(1)
    assert len(alerts(srv, "http.denied_burst")) == 1
    assert len(alerts(srv, "auth.brute_force_ip")) == 1
    assert not delivered(hook, "http.denied_burst", "127.0.0.3")
    # a valid key from the same address is still served
    st, _, _ = bad.call("POST", "/api/v1/heartbeat", s.headers)
    assert st == 200
    # 403s count as denied too (a system on a people-only route), from another address
    other = Client(srv, "127.0.0.4")
    for _ in range(8):
        st, _, _ = other.call("GET", "/api/v1/users", s.headers)
        assert st == 403
    wait_delivered(srv, hook, "http.denied_burst", "127.0.0.4")
    assert not delivered(hook, "auth.brute_force_ip", "127.0.0.4")  # 403s are no failed logins


def test_api_key_used_from_an_unusual_network(own_server, hook):
    srv = start(own_server, hook, "network_learning = 2\n")
    s = srv.add_system()
    fresh = srv.add_system()
    home = Client(srv, "127.0.0.1")
    for _ in range(3):
        assert home.call("POST", "/api/v1/heartbeat", s.headers)[0] == 200
    # still learning: a second network is only recorded
    assert Client(srv, "127.0.2.9").call("POST", "/api/v1/heartbeat", s.headers)[0] == 200
    time.sleep(2.2)
    # known networks: another address of 127.0.0.0/24, and the one learnt
    assert Client(srv, "127.0.0.77").call("POST", "/api/v1/heartbeat", s.headers)[0] == 200
    assert Client(srv, "127.0.2.10").call("POST", "/api/v1/heartbeat", s.headers)[0] == 200
    time.sleep(1)
    assert not delivered(hook, "key.unusual_network")
    # a new network once it has a history
    assert Client(srv, "127.0.1.2").call("POST", "/api/v1/heartbeat", s.headers)[0] == 200
    a = wait_delivered(srv, hook, "key.unusual_network", s.code)
    assert a["detail"]["system"] == s.code
    assert a["detail"]["address"] == "127.0.1.2"
    assert a["detail"]["network"] == "127.0.1.0/24"
    assert a["detail"]["known_networks"] == 2
    assert a["severity"] == "warning"
    # a system first seen now (no history yet) calling from two networks: nothing
    assert home.call("POST", "/api/v1/heartbeat", fresh.headers)[0] == 200
    assert Client(srv, "127.0.1.3").call("POST", "/api/v1/heartbeat", fresh.headers)[0] == 200
    time.sleep(1)
    assert not delivered(hook, "key.unusual_network", fresh.code)


def test_usual_networks_survive_a_restart(own_server, hook):
    """The networks learnt are kept in the store: after a restart a call from a new network is
    judged at once, without learning again from scratch."""
    srv = start(own_server, hook, "network_learning = 2\n")
    s = srv.add_system()
    home = Client(srv, "127.0.0.1")
    for _ in range(3):
        assert home.call("POST", "/api/v1/heartbeat", s.headers)[0] == 200
    time.sleep(2.2)
    home.close()
    assert srv.stop() == 0
    db = srv.db()
    try:
        rows = db.execute("SELECT system_code, hex(network) FROM warn_networks").fetchall()
    finally:
        db.close()
    assert rows == [(s.code, "00000000000000000000FFFF7F000000")], rows
    srv.start(https=False)
    assert Client(srv, "127.0.0.42").call("POST", "/api/v1/heartbeat", s.headers)[0] == 200
    time.sleep(0.5)
    assert not delivered(hook, "key.unusual_network")
    assert Client(srv, "127.0.3.4").call("POST", "/api/v1/heartbeat", s.headers)[0] == 200
    a = wait_delivered(srv, hook, "key.unusual_network", s.code)
    assert a["detail"]["network"] == "127.0.3.0/24" and a["detail"]["known_networks"] == 1


def test_traffic_and_error_spike_against_the_baseline(own_server, hook):
    srv = start(own_server, hook, "spike_bucket = 2\nspike_warmup = 2\nspike_factor = 3\n"
                                  "spike_alpha = 0.5\nspike_floor = 30\nerror_floor = 20\n")
    s = srv.add_system()
    c = Client(srv)
    # a steady baseline: 3 calls per 2 s bucket for 4 buckets
    t_end = time.monotonic() + 8
    while time.monotonic() < t_end:
        for _ in range(3):
            assert c.call("POST", "/api/v1/heartbeat", s.headers)[0] == 200
        time.sleep(2)
    assert not delivered(hook, "traffic.spike")
    # the spike: 70 calls at once, each refused (400: not JSON) — requests and errors alike.
    # The server's buckets are CLOCK_MONOTONIC / 2 s, as is time.monotonic() here: start just
    # after a bucket begins, so that a slow (sanitizer) build cannot split the calls over two
    # buckets, each under its threshold (the first part raises the baseline of the second).
    time.sleep(2 - time.monotonic() % 2 + 0.05)
    hdr = dict(s.headers, **{"Content-Type": "application/json"})
    for _ in range(70):
        st, _, _ = c.call("POST", "/api/v1/ingest/transactions", hdr, b"{not json")
        assert st == 400
    a = wait_delivered(srv, hook, "traffic.spike", s.code)
    assert a["detail"]["system"] == s.code and a["detail"]["requests"] > a["detail"]["threshold"]
    assert a["detail"]["threshold"] >= 30 and a["detail"]["bucket_s"] == 2
    e = wait_delivered(srv, hook, "errors.spike", s.code)
    assert e["detail"]["errors"] > e["detail"]["threshold"] >= 20
    # back to normal (a quiet bucket): both are resolved by their rule
    ok = wait_until(lambda: all(x["state"] == "resolved" for r in ("traffic.spike",
                                                                    "errors.spike")
                                for x in alerts(srv, r)) and alerts(srv, "traffic.spike"),
                    timeout=10)
    assert ok, (alerts(srv, "traffic.spike"), alerts(srv, "errors.spike"))
    assert alerts(srv, "traffic.spike")[0]["resolved_by"] == ""


def test_system_silent_longer_than_expected(own_server, hook):
    srv = start(own_server, hook, "",
                extra="[systems]\nonline_within = 2\ncheck_interval = 1\n")
    s = srv.add_system()
    c = Client(srv)
    assert c.call("POST", "/api/v1/heartbeat", s.headers)[0] == 200
    a = wait_delivered(srv, hook, "system.silent", s.code, timeout=15)
    assert a["severity"] == "warning" and a["detail"]["system"] == s.code
    assert a["detail"]["online_within_s"] == 2
    assert alerts(srv, "system.silent")[0]["state"] == "firing"
    # it calls again: online, and the alert is resolved by its rule
    assert c.call("POST", "/api/v1/heartbeat", s.headers)[0] == 200
    ok = wait_until(lambda: alerts(srv, "system.silent")[0]["state"] == "resolved", timeout=10)
    assert ok, alerts(srv, "system.silent")
    # a system never seen is not silent
    never = srv.add_system()
    time.sleep(2.5)
    assert not [x for x in alerts(srv, "system.silent") if x["key"] == never.code]


def login(client, username, password):
    st, headers, body = client.call("POST", "/api/v1/session",
                                    {"Content-Type": "application/json"},
                                    json.dumps({"username": username, "password": password}))
    return st, headers, json.loads(body or b"{}")


def add_user(srv, username, role):
    p = T.run_dtm("user", "add", "--data-dir", srv.data_dir, "--username", username, "--role",
                  role, "--json")
    return json.loads(p.stdout)["password"]


def test_brute_force_lockout_and_alert_on_two_channels(own_server, hook):
    syslog = SyslogSink()
    try:
        srv = start(own_server, hook, "account_failures = 3\naccount_window = 120\n"
                                      "ip_failures = 8\nip_window = 120\n",
                    extra="[session]\nlockout_after = 3\nlockout_minutes = 5\n",
                    syslog=syslog)
        add_user(srv, "nguyenvana", "operator")
        c = Client(srv, "127.0.0.1")
        locked = False
        for _ in range(12):
            st, headers, body = login(c, "nguyenvana", "wrong password 123!")
            if st == 429 and body.get("type", "").endswith("login_locked"):
                locked = True
                break
            if st == 429:  # login_delayed: the progressive delay
                time.sleep(float(headers.get("retry-after", "1")))
                continue
            assert st == 401, body
        assert locked, "the account was not locked"
        a = wait_delivered(srv, hook, "auth.brute_force_account", "nguyenvana")
        assert a["severity"] == "critical" and a["detail"]["count"] >= 3
        assert a["detail"]["username"] == "nguyenvana"
        dgrams = wait_until(lambda: [d for d in syslog.received()
                                     if b'rule="auth.brute_force_account"' in d], timeout=15)
        assert dgrams, f"no syslog datagram; got {syslog.received()}"
        assert b'key="nguyenvana"' in dgrams[0] and b'severity="critical"' in dgrams[0]
        # the password is never in an alert
        for _, _, body, _ in hook.received():
            assert b"wrong password" not in body
        # failures across (unknown) names from one address: brute force from the address; an
        # unknown name is never an account alert (it may be a password typed as a name)
        spray = Client(srv, "127.0.0.5")
        for i in range(8):
            st, headers, _ = login(spray, f"guess{i}", "Password-guess-1")
            assert st in (401, 429)
        b = wait_delivered(srv, hook, "auth.brute_force_ip", "127.0.0.5")
        assert b["detail"]["count"] >= 8
        assert not [x for x in alerts(srv, "auth.brute_force_account") if x["key"] != "nguyenvana"]
    finally:
        syslog.close()


def test_refused_attempts_still_count_as_brute_force(own_server, hook):
    """Attempts answered 429 (progressive delay) never reach the password check, yet they are
    attempts: a client hammering without waiting still raises the account alert."""
    srv = start(own_server, hook, "account_failures = 6\naccount_window = 120\n"
                                  "ip_failures = 1000\nip_window = 120\n",
                extra="[session]\nlockout_after = 50\nlockout_minutes = 5\n")
    add_user(srv, "tranthib", "analyst")
    c = Client(srv, "127.0.0.6")
    statuses = [login(c, "tranthib", "wrong password 456!")[0] for _ in range(8)]
    assert statuses[0] == 401 and statuses.count(429) >= 5, statuses
    a = wait_delivered(srv, hook, "auth.brute_force_account", "tranthib")
    assert a["detail"]["count"] >= 6


def test_admin_sign_in_from_a_new_address(own_server, hook):
    srv = start(own_server, hook, "")
    pw = add_user(srv, "quantri", "admin")
    op = add_user(srv, "vanhanh", "operator")
    home = Client(srv, "127.0.0.1")
    # the first sign-in ever: recorded, not alerted; then the same address again
    assert login(home, "quantri", pw)[0] == 201
    home.close()
    assert login(Client(srv, "127.0.0.1"), "quantri", pw)[0] == 201
    # an operator from anywhere: not the rule's business
    assert login(home, "vanhanh", op)[0] == 201
    assert login(Client(srv, "127.0.3.1"), "vanhanh", op)[0] == 201
    time.sleep(1)
    assert not delivered(hook, "auth.admin_new_address")
    # the administrator from a new address
    assert login(Client(srv, "127.0.3.7"), "quantri", pw)[0] == 201
    a = wait_delivered(srv, hook, "auth.admin_new_address")
    assert a["key"] == "quantri@127.0.3.7"
    assert a["detail"] == {"username": "quantri", "address": "127.0.3.7"}
    # known from now on
    assert login(Client(srv, "127.0.3.7"), "quantri", pw)[0] == 201
    time.sleep(1)
    assert len(alerts(srv, "auth.admin_new_address")) == 1

    # after a restart the known addresses come back from the audit trail: the first sign-in
    # since then, from yet another address, is still a new address
    assert srv.stop() == 0
    srv.start(https=False)
    assert login(Client(srv, "127.0.0.1"), "quantri", pw)[0] == 201
    assert login(Client(srv, "127.0.3.7"), "quantri", pw)[0] == 201
    time.sleep(1)
    assert len(alerts(srv, "auth.admin_new_address")) == 1
    assert login(Client(srv, "127.0.4.4"), "quantri", pw)[0] == 201
    wait_delivered(srv, hook, "auth.admin_new_address", "quantri@127.0.4.4")


def test_rules_off(own_server, hook):
    srv = start(own_server, hook, "enabled = false\ndenied_burst = 3\nip_failures = 3\n")
    bad = Client(srv, "127.0.0.1")
    for i in range(6):
        assert bad.call("POST", "/api/v1/heartbeat", {"X-API-Key": f"dtm_guess{i}"})[0] == 401
    time.sleep(1.5)
    assert not alerts(srv, "http.denied_burst") and not alerts(srv, "auth.brute_force_ip")
    assert not hook.received()
