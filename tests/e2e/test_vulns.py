"""The vulnerability register (T4.4, issue 5 item 10) and the alerts API (T5.3, item 8), through
the HTTP API with signed-in people (POST /api/v1/session: cookie + X-CSRF-Token).

- GET/POST/PATCH /api/v1/vulnerabilities: validation with 400s naming the member, who may read
  (operators, auditors, admins) and write (operators, admins), audit entries, CSV;
- an item created past its deadline through the API raises vuln.overdue, delivered to a real
  webhook receiver; GET /api/v1/alerts lists it (filters, CSV, each channel's delivery); an
  operator acknowledges and resolves it (audited with their name); fixing the item clears it.
"""

import csv
import io
import json

import pytest

import dtmtest as T
from alert_sinks import WebhookSink, append_conf, channels_conf, verify_signature, wait_until

SECRET = "whk-api-test-secret-0f9e8d"


class Person:
    """A signed-in person: the session cookie and CSRF token, sent by hand (the cookie is
    Secure, which a cookie jar would not send over plain HTTP)."""

    def __init__(self, srv, username, role):
        info = json.loads(T.run_dtm("user", "add", "--data-dir", str(srv.data_dir),
                                    "--username", username, "--role", role, "--json").stdout)
        self.srv, self.username, self.role = srv, username, role
        r = srv.post("/api/v1/session", json={"username": username,
                                              "password": info["password"]})
        assert r.status_code == 201, r.text
        self.csrf = r.json()["csrf_token"]
        self.cookie = r.cookies.get("dtm_session")
        assert self.cookie

    def headers(self, csrf=True):
        h = {"Cookie": f"dtm_session={self.cookie}", "Accept-Language": "en"}
        if csrf:
            h["X-CSRF-Token"] = self.csrf
        return h

    def _h(self, csrf, kw):
        return {**self.headers(csrf), **kw.pop("headers", {})}

    def get(self, path, **kw):
        return self.srv.get(path, headers=self._h(False, kw), **kw)

    def post(self, path, csrf=True, **kw):
        return self.srv.post(path, headers=self._h(csrf, kw), **kw)

    def patch(self, path, csrf=True, **kw):
        return self.srv.request("PATCH", path, headers=self._h(csrf, kw), **kw)


@pytest.fixture(scope="module")
def api(own_server_module):
    return own_server_module


@pytest.fixture(scope="module")
def own_server_module(dtm_bin, tmp_path_factory):
    """A server of this module with a webhook channel and checks every second."""
    if T.EXTERNAL_URL:
        pytest.skip("configures its own alert channels")
    root = tmp_path_factory.mktemp("vulns")
    data = root / "data"
    T.dtm_init(str(data))
    hook = WebhookSink()
    append_conf(data, channels_conf(hook=hook, secret=SECRET))
    srv = T.DtmServer(data, log_path=root / "serve.stderr.log")
    srv.start(https=False)
    srv.hook = hook
    srv.op = Person(srv, "op_vuln", "operator")
    srv.auditor = Person(srv, "aud_vuln", "auditor")
    srv.analyst = Person(srv, "ana_vuln", "analyst")
    try:
        yield srv
    finally:
        rc = srv.stop()
        hook.close()
        assert rc == 0, srv.log_tail()


GOOD = {"title": "Outdated OpenSSL on the API gateway", "severity": "medium",
        "found": "2026-11-01", "remediation_plan": "upgrade to 3.0.15",
        "deadline": "2099-12-31"}


def audit_actions(srv):
    db = srv.db()
    try:
        return [(r[0], r[1], r[2]) for r in db.execute(
            "SELECT actor, action, target FROM audit_log ORDER BY seq")]
    finally:
        db.close()


def test_create_get_patch_list(api):
    op = api.op
    r = op.post("/api/v1/vulnerabilities", json=GOOD)
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["status"] == "open" and v["overdue"] is False and v["created_by"] == "op_vuln"
    for k in GOOD:
        assert v[k] == GOOD[k]
    r = op.get(f"/api/v1/vulnerabilities/{v['id']}")
    assert r.status_code == 200 and r.json()["title"] == GOOD["title"]
    r = op.patch(f"/api/v1/vulnerabilities/{v['id']}", json={"status": "in_progress"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "in_progress" and r.json()["title"] == GOOD["title"]
    listed = op.get("/api/v1/vulnerabilities").json()["vulnerabilities"]
    assert any(x["id"] == v["id"] and x["status"] == "in_progress" for x in listed)
    only = op.get("/api/v1/vulnerabilities", params={"status": "fixed"}).json()
    assert all(x["status"] == "fixed" for x in only["vulnerabilities"])
    # CSV
    r = op.get("/api/v1/vulnerabilities", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert any(x["id"] == str(v["id"]) and x["status"] == "in_progress" for x in rows)
    # audited with who did it
    acts = audit_actions(api)
    assert ("op_vuln", "vulnerability.created", f"vulnerability:{v['id']}") in acts
    assert ("op_vuln", "vulnerability.updated", f"vulnerability:{v['id']}") in acts


@pytest.mark.parametrize("body, needle", [
    ({**GOOD, "severity": "urgent"}, "severity"),
    ({**GOOD, "status": "done"}, "status"),
    ({**GOOD, "found": "2026-13-01"}, "found"),
    ({**GOOD, "deadline": "2026-02-30"}, "deadline"),
    ({**GOOD, "deadline": "31/12/2026"}, "deadline"),
    ({**GOOD, "deadline": "2026-10-01"}, "before found"),
    ({**GOOD, "title": ""}, "title"),
    ({**GOOD, "title": "two\nlines"}, "title"),
    ({**GOOD, "title": "x" * 300}, "title"),
    ({**GOOD, "severity": 3}, "severity must be a string"),
    ({**GOOD, "owner": "me"}, "Unknown member owner"),
    ({k: v for k, v in GOOD.items() if k != "deadline"}, "deadline is required"),
    ({k: v for k, v in GOOD.items() if k != "title"}, "title is required"),
])
def test_create_validation(api, body, needle):
    r = api.op.post("/api/v1/vulnerabilities", json=body)
    T.assert_problem(r, 400)
    assert needle in r.json()["detail"], r.json()


def test_problems_in_vietnamese(api):
    r = api.op.post("/api/v1/vulnerabilities", json={**GOOD, "severity": "urgent"},
                    headers={"Accept-Language": "vi"})
    T.assert_problem(r, 400)
    assert r.json()["detail"] == "Trường severity phải là low, medium, high hoặc critical."
    r = api.op.post("/api/v1/vulnerabilities", json={**GOOD, "deadline": "2026-10-01"},
                    headers={"Accept-Language": "vi"})
    assert r.json()["detail"] == "Trường deadline (2026-10-01) sớm hơn ngày phát hiện found " \
                                 "(2026-11-01)."


def test_bad_bodies(api):
    op = api.op
    # an unknown member's long non-ASCII name is cut on a character boundary
    r = op.post("/api/v1/vulnerabilities", json={**GOOD, "x" + "Đ" * 40: 1})
    T.assert_problem(r, 400)
    assert "Unknown member x" + "Đ" * 31 + ";" in r.json()["detail"]
    for data in (b"", b"not json", b"[1,2]", b'{"title":"a"', b"\xff\xfe{}"):
        r = op.post("/api/v1/vulnerabilities", data=data,
                    headers={"Content-Type": "application/json"})
        T.assert_problem(r, 400)
    dup = b'{"title":"a","title":"b","severity":"low","found":"2026-01-01","deadline":"2026-02-01"}'
    r = op.post("/api/v1/vulnerabilities", data=dup, headers={"Content-Type": "application/json"})
    T.assert_problem(r, 400)
    assert "given twice" in r.json()["detail"]


def test_patch_and_get_unknown_or_bad(api):
    op = api.op
    T.assert_problem(op.patch("/api/v1/vulnerabilities/999999", json={"status": "fixed"}), 404)
    T.assert_problem(op.get("/api/v1/vulnerabilities/999999"), 404)
    T.assert_problem(op.get("/api/v1/vulnerabilities/abc"), 404)
    v = op.post("/api/v1/vulnerabilities", json=GOOD).json()
    r = op.patch(f"/api/v1/vulnerabilities/{v['id']}", json={"deadline": "2020-01-01"})
    T.assert_problem(r, 400)
    assert "before found" in r.json()["detail"]
    r = op.patch(f"/api/v1/vulnerabilities/{v['id']}", json={"status": "closed"})
    T.assert_problem(r, 400)
    T.assert_problem(api.get("/api/v1/alerts", params={"state": "open"},
                             headers=op.headers(False)), 400)


def test_sql_injection_strings_are_stored_verbatim(api):
    evil = {"title": "a'); DROP TABLE vulnerabilities; --",
            "remediation_plan": "\" OR 1=1 -- ; SELECT * FROM users",
            "severity": "low", "found": "2026-11-01", "deadline": "2099-01-01"}
    v = api.op.post("/api/v1/vulnerabilities", json=evil).json()
    got = api.op.get(f"/api/v1/vulnerabilities/{v['id']}").json()
    assert got["title"] == evil["title"] and got["remediation_plan"] == evil["remediation_plan"]
    assert api.op.get("/api/v1/vulnerabilities").status_code == 200


def test_who_may_read_and_write(api, sys_factory_local):
    aud, ana, op = api.auditor, api.analyst, api.op
    assert aud.get("/api/v1/vulnerabilities").status_code == 200
    T.assert_problem(aud.post("/api/v1/vulnerabilities", json=GOOD), 403)
    T.assert_problem(ana.get("/api/v1/vulnerabilities"), 403)
    T.assert_problem(ana.post("/api/v1/vulnerabilities", json=GOOD), 403)
    T.assert_problem(ana.get("/api/v1/alerts"), 403)
    T.assert_problem(api.get("/api/v1/vulnerabilities"), 401)
    T.assert_problem(api.get("/api/v1/alerts"), 401)
    T.assert_problem(api.post("/api/v1/alerts/1/ack"), 401)
    # a connected system's key is not a person
    s = sys_factory_local
    T.assert_problem(api.get("/api/v1/vulnerabilities", headers=s.headers), 403)
    T.assert_problem(api.post("/api/v1/vulnerabilities", json=GOOD, headers=s.headers), 403)
    # a state change with the cookie but without the CSRF token
    T.assert_problem(op.post("/api/v1/vulnerabilities", json=GOOD, csrf=False), 403)


@pytest.fixture(scope="module")
def sys_factory_local(api):
    return api.add_system()


def test_overdue_item_alert_api_ack_resolve(api):
    op, hook = api.op, api.hook
    r = op.post("/api/v1/vulnerabilities", json={
        "title": "Admin panel reachable from the Internet", "severity": "critical",
        "found": "2026-01-10", "deadline": "2026-01-20", "status": "in_progress"})
    assert r.status_code == 201 and r.json()["overdue"] is True
    vid = r.json()["id"]
    key = f"vuln:{vid}"

    def mine():
        return [a for a in op.get("/api/v1/alerts", params={"rule": "vuln.overdue"})
                .json()["alerts"] if a["key"] == key]

    got = wait_until(lambda: [x for x in hook.received()
                              if json.loads(x[2])["alert"]["key"] == key], timeout=30)
    assert got and verify_signature(SECRET, got[0][1], got[0][2])
    alerts = wait_until(lambda: (lambda a: a if a and a[0]["deliveries"] else None)(mine()))
    assert alerts, mine()
    a = alerts[0]
    assert a["state"] == "firing" and a["severity"] == "critical"
    assert a["deliveries"][0]["channel"] == "hook"
    assert a["deliveries"][0]["status"] == "delivered"
    aid = a["id"]
    one = op.get(f"/api/v1/alerts/{aid}")
    assert one.status_code == 200 and one.json()["id"] == aid and one.json()["deliveries"]
    T.assert_problem(op.get("/api/v1/alerts/99999999"), 404)
    T.assert_problem(op.get("/api/v1/alerts/x"), 404)
    T.assert_problem(api.analyst.get(f"/api/v1/alerts/{aid}"), 403)

    # filters and CSV
    firing = op.get("/api/v1/alerts", params={"state": "firing", "severity": "critical"}).json()
    assert any(x["id"] == aid for x in firing["alerts"])
    assert all(x["state"] == "firing" for x in firing["alerts"])
    none = op.get("/api/v1/alerts", params={"severity": "info", "rule": "vuln.overdue"}).json()
    assert not any(x["id"] == aid for x in none["alerts"])
    old = op.get("/api/v1/alerts", params={"to": "2020-01-01"}).json()
    assert old["alerts"] == []
    r = op.get("/api/v1/alerts", params={"format": "csv", "from": "2020-01-01"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert any(x["id"] == str(aid) and x["key"] == key for x in rows)
    page = op.get("/api/v1/alerts", params={"limit": 1}).json()
    assert len(page["alerts"]) == 1
    for bad in ({"limit": 0}, {"from": "yesterday"}, {"format": "xml"}, {"before": "x"}):
        T.assert_problem(op.get("/api/v1/alerts", params=bad), 400)

    # acknowledge, then resolve; a second resolve is a conflict
    T.assert_problem(op.post(f"/api/v1/alerts/{aid}/ack", csrf=False), 403)
    T.assert_problem(api.auditor.post(f"/api/v1/alerts/{aid}/ack"), 403)
    r = op.post(f"/api/v1/alerts/{aid}/ack")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "acknowledged" and r.json()["acknowledged_by"] == "op_vuln"
    assert op.post(f"/api/v1/alerts/{aid}/ack").json()["state"] == "acknowledged"
    # an acknowledged alert still de-duplicates: the next checks bump its count
    c0 = r.json()["count"]
    assert wait_until(lambda: mine()[0]["count"] > c0, timeout=30)
    assert mine()[0]["state"] == "acknowledged"
    r = op.post(f"/api/v1/alerts/{aid}/resolve")
    assert r.status_code == 200 and r.json()["state"] == "resolved"
    assert r.json()["resolved_by"] == "op_vuln" and r.json()["resolved_at"]
    T.assert_problem(op.post(f"/api/v1/alerts/{aid}/resolve"), 409)
    T.assert_problem(op.post(f"/api/v1/alerts/{aid}/ack"), 409)
    T.assert_problem(op.post("/api/v1/alerts/99999999/ack"), 404)
    T.assert_problem(op.post("/api/v1/alerts/abc/resolve"), 404)
    acts = audit_actions(api)
    assert ("op_vuln", "alert.acknowledged", f"alert:{aid}") in acts
    assert ("op_vuln", "alert.resolved", f"alert:{aid}") in acts

    # the resolution is notified to the same channel
    told = wait_until(lambda: [x for x in hook.received()
                               if json.loads(x[2])["event"] == "alert.resolved"
                               and json.loads(x[2])["alert"]["id"] == aid], timeout=30)
    assert told and json.loads(told[0][2])["alert"]["resolved_by"] == "op_vuln"
    assert wait_until(lambda: [d for d in op.get(f"/api/v1/alerts/{aid}").json()["deliveries"]
                               if d["event"] == "resolved" and d["status"] == "delivered"])

    # still overdue: raised again within the suppression window → recorded, not notified
    n = len(hook.received())
    again = wait_until(lambda: [x for x in mine() if x["id"] != aid], timeout=30)
    assert again and again[0]["suppressed"] is True and again[0]["state"] == "firing"
    # fixing the item clears that alert at once
    r = op.patch(f"/api/v1/vulnerabilities/{vid}", json={"status": "fixed"})
    assert r.status_code == 200 and r.json()["overdue"] is False
    assert wait_until(lambda: all(x["state"] == "resolved" for x in mine()), timeout=30), mine()
    assert len(hook.received()) == n
