"""Alerts and channels (T5.3, issue 5 item 8), end to end with real receivers.

A vulnerability created past its deadline with `dtm vuln add` makes the running server raise the
alert vuln.overdue, which is delivered to three real channels at once: a webhook receiver
(http.server; its signature checked with hmac; it answers 500 first, so the delivery is retried
with backoff), an SMTP server (aiosmtpd requiring STARTTLS, a throw-away certificate made with
openssl) and a UDP syslog listener (RFC 5424). Then: de-duplication (later checks bump the
count, no new notification), resolution when the item is fixed, the suppression window (the same
rule and key again: recorded, not notified), survival across a restart, and configuration
checks. The alerts are read from the data dir's database (read-only); the API is tested in
test_vulns.py with a signed-in operator.
"""

import email
import email.policy
import json
import re
import time

import pytest

import dtmtest as T
from alert_sinks import (SmtpSink, SyslogSink, WebhookSink, append_conf, channels_conf,
                         verify_signature, wait_until)

SECRET = "whk-7f3a9c1e-very-secret-signing-key"


def alerts(srv, rule="vuln.overdue"):
    db = srv.db()
    try:
        db.row_factory = lambda c, r: {d[0]: v for d, v in zip(c.description, r)}
        return db.execute("SELECT * FROM alerts WHERE rule=? ORDER BY id", (rule,)).fetchall()
    finally:
        db.close()


def deliveries(srv, alert_id, event="fired"):
    db = srv.db()
    try:
        return {row[0]: row[1:] for row in db.execute(
            "SELECT channel,status,attempts,error FROM alert_deliveries WHERE alert_id=? AND "
            "event=?", (alert_id, event))}
    finally:
        db.close()


@pytest.fixture
def sinks(tmp_path):
    hook = WebhookSink(statuses=[500])  # the first attempt fails: retried with backoff
    smtp = SmtpSink(tmp_path)
    syslog = SyslogSink()
    yield hook, smtp, syslog
    hook.close()
    smtp.close()
    syslog.close()


def vuln_add(srv, **kw):
    args = ["vuln", "add", "--data-dir", str(srv.data_dir), "--json"]
    for k, v in kw.items():
        args += ["--" + k, v]
    return json.loads(T.run_dtm(*args).stdout)


def test_overdue_vulnerability_alert_on_three_channels(own_server, sinks, tmp_path):
    hook, smtp, syslog = sinks
    srv = own_server(start=False, https=False)
    append_conf(srv.data_dir, channels_conf(hook=hook, secret=SECRET, smtp=smtp, syslog=syslog))
    srv.start(https=False)

    v = vuln_add(srv, title="SQL injection in /legacy/search", severity="high",
                 found="2026-01-05", deadline="2026-02-01",
                 plan="parameterise the query; WAF rule meanwhile")
    key = f"vuln:{v['id']}"

    # the webhook: first answered 500, then delivered on the retry, signed
    got = wait_until(lambda: [r for r in hook.received() if r[3] == 200], timeout=30)
    assert got, f"no successful webhook delivery; got {hook.received()}\n{srv.log_tail()}"
    reqs = hook.received()
    assert reqs[0][3] == 500 and len(reqs) >= 2
    for path, headers, body, _ in reqs:
        assert path == "/hook"
        assert verify_signature(SECRET, headers, body), headers
        assert headers.get("Content-Type", "").startswith("application/json")
    msg = json.loads(reqs[-1][2])
    a = msg["alert"]
    assert a["rule"] == "vuln.overdue" and a["key"] == key
    assert a["severity"] == "critical"  # a high vulnerability
    assert a["state"] == "firing" and a["count"] >= 1
    assert a["detail"]["vulnerability"] == v["id"]
    assert a["detail"]["deadline"] == "2026-02-01"
    # a body altered in transit does not verify
    assert not verify_signature(SECRET, reqs[-1][1], reqs[-1][2] + b" ")
    assert not verify_signature("another-secret", reqs[-1][1], reqs[-1][2])

    # e-mail over SMTP with STARTTLS (the server refuses MAIL before it)
    mails = wait_until(smtp.received, timeout=30)
    assert mails, f"no e-mail received\n{srv.log_tail()}"
    m = mails[0]
    assert m["tls"] is True
    assert m["mail_from"] == "dtm-alerts@example.vn"
    assert sorted(m["rcpt_tos"]) == ["oncall@example.vn", "soc@example.vn"]
    parsed = email.message_from_bytes(m["data"], policy=email.policy.default)
    for h in ("From", "To", "Subject", "Date", "Message-ID"):
        assert parsed[h], f"header {h} missing: {m['data'][:500]!r}"
    assert "[DTM critical]" in str(parsed["Subject"])
    assert "SQL injection in /legacy/search" in str(parsed["Subject"])
    assert parsed.get_content_charset() == "utf-8"
    assert key in parsed.get_content()

    # syslog: RFC 5424 over UDP, local0 (16) × 8 + crit (2) = 130
    dgrams = wait_until(syslog.received, timeout=30)
    assert dgrams, f"no syslog datagram\n{srv.log_tail()}"
    line = dgrams[0].decode("utf-8")
    assert re.match(r"^<130>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z \S+ dtm \d+ alert \[dtm@32473 ",
                    line), line
    assert f'key="{key}"' in line and 'rule="vuln.overdue"' in line
    assert 'severity="critical"' in line
    assert "SQL injection in /legacy/search" in line

    # stored: one alert, each channel's delivery state
    rows = wait_until(lambda: [r for r in alerts(srv) if r["key"] == key])
    assert len(rows) == 1
    aid = rows[0]["id"]
    d = wait_until(lambda: (lambda x: x if len(x) == 3 and all(
        s[0] == "delivered" for s in x.values()) else None)(deliveries(srv, aid)), timeout=30)
    assert d, deliveries(srv, aid)
    assert d["hook"][1] == 2  # two attempts: 500 then 200
    assert d["mail"][1] == 1 and d["siem"][1] == 1

    # de-duplication: later checks (every second) bump count and last_seen, no new delivery
    n_hook, n_mail, n_sys = len(hook.received()), len(smtp.received()), len(syslog.received())
    assert wait_until(lambda: alerts(srv)[0]["count"] >= 3, timeout=30), alerts(srv)
    rows = alerts(srv)
    assert len(rows) == 1 and rows[0]["state"] == "firing"
    assert rows[0]["last_seen"] > rows[0]["first_seen"]
    assert (len(hook.received()), len(smtp.received()), len(syslog.received())) == (
        n_hook, n_mail, n_sys)

    # the fix resolves the alert (the rule clears it; nobody resolved it by hand) and the same
    # channels are told
    T.run_dtm("vuln", "set", "--data-dir", str(srv.data_dir), "--id", str(v["id"]),
              "--status", "fixed")
    assert wait_until(lambda: alerts(srv)[0]["state"] == "resolved", timeout=30), alerts(srv)
    rows = alerts(srv)
    assert rows[0]["resolved_at"] > 0 and rows[0]["resolved_by"] == ""
    assert wait_until(lambda: len(hook.received()) == n_hook + 1 and len(smtp.received()) ==
                      n_mail + 1 and len(syslog.received()) == n_sys + 1, timeout=30)
    done = json.loads(hook.received()[-1][2])
    assert done["event"] == "alert.resolved" and done["alert"]["id"] == aid
    assert done["alert"]["state"] == "resolved" and done["alert"]["resolved_at"]
    assert hook.received()[-1][1].get("X-DTM-Event") == "alert.resolved"
    assert verify_signature(SECRET, hook.received()[-1][1], hook.received()[-1][2])
    resolved_mail = email.message_from_bytes(smtp.received()[-1]["data"],
                                             policy=email.policy.default)
    assert str(resolved_mail["Subject"]).startswith("[DTM resolved] ")
    assert 'state="resolved"' in syslog.received()[-1].decode()
    assert wait_until(lambda: len(deliveries(srv, aid, "resolved")) == 3 and all(
        x[0] == "delivered" for x in deliveries(srv, aid, "resolved").values()))
    n_hook, n_mail, n_sys = len(hook.received()), len(smtp.received()), len(syslog.received())

    # suppression: open again within [alert] suppress_minutes → recorded, not notified
    T.run_dtm("vuln", "set", "--data-dir", str(srv.data_dir), "--id", str(v["id"]),
              "--status", "open")
    assert wait_until(lambda: len(alerts(srv)) == 2, timeout=30), alerts(srv)
    second = alerts(srv)[1]
    assert second["state"] == "firing" and second["suppressed"] == 1
    time.sleep(2.5)  # a delivery would have happened by now
    assert (len(hook.received()), len(smtp.received()), len(syslog.received())) == (
        n_hook, n_mail, n_sys)
    assert deliveries(srv, second["id"]) == {}

    # the secret never reaches the log
    assert SECRET not in srv.log_text()
    assert srv.stop() == 0

    # alerts survive a restart, and the open one keeps de-duplicating (no new alert)
    srv.start(https=False)
    assert wait_until(lambda: alerts(srv)[1]["count"] > second["count"], timeout=30)
    assert len(alerts(srv)) == 2
    assert (len(hook.received()), len(smtp.received()), len(syslog.received())) == (
        n_hook, n_mail, n_sys)

    # audit: the fired alerts are on the trail
    db = srv.db()
    try:
        actions = [r[0] for r in db.execute("SELECT action FROM audit_log")]
    finally:
        db.close()
    assert actions.count("alert.fired") == 2
    assert "vulnerability.created" in actions and "vulnerability.updated" in actions


def test_webhook_gives_up_after_max_attempts(own_server, tmp_path):
    hook = WebhookSink(statuses=[503] * 10)
    try:
        srv = own_server(start=False, https=False)
        append_conf(srv.data_dir, channels_conf(hook=hook, secret=SECRET, max_attempts=3))
        srv.start(https=False)
        v = vuln_add(srv, title="Old TLS on the gateway", severity="medium",
                     found="2026-01-01", deadline="2026-01-02")
        rows = wait_until(lambda: alerts(srv))
        assert rows and rows[0]["severity"] == "warning"  # medium → warning
        aid = rows[0]["id"]
        # attempts after 0, 1 and 2 seconds (retry_initial = 1, doubled), then failed
        d = wait_until(lambda: deliveries(srv, aid).get("hook", ("",))[0] == "failed",
                       timeout=30)
        assert d, deliveries(srv, aid)
        status, attempts, error = deliveries(srv, aid)["hook"]
        assert attempts == 3 and error == "HTTP 503"
        assert len(hook.received()) == 3
        assert v["id"] >= 1
    finally:
        hook.close()


def test_pending_delivery_resumed_after_restart(own_server):
    """A delivery waiting for its retry when the server stops is resumed at the next start."""
    hook = WebhookSink(statuses=[500])
    try:
        srv = own_server(start=False, https=False)
        append_conf(srv.data_dir, channels_conf(hook=hook, secret=SECRET, retry_initial=3600))
        srv.start(https=False)
        vuln_add(srv, title="Default credentials on a switch", severity="critical",
                 found="2026-01-01", deadline="2026-01-02")
        assert wait_until(lambda: len(hook.received()) == 1, timeout=30)
        aid = wait_until(lambda: alerts(srv))[0]["id"]
        assert wait_until(lambda: deliveries(srv, aid).get("hook", ("",))[:2] == ("pending", 1))
        assert srv.stop() == 0
        assert "alert deliveries left pending" in srv.log_text()
        srv.start(https=False)
        assert wait_until(lambda: deliveries(srv, aid)["hook"][0] == "delivered", timeout=30), \
            deliveries(srv, aid)
        assert deliveries(srv, aid)["hook"][1] == 2
        reqs = hook.received()
        assert [r[3] for r in reqs] == [500, 200]
        assert json.loads(reqs[1][2])["alert"]["id"] == aid
        assert verify_signature(SECRET, reqs[1][1], reqs[1][2])
    finally:
        hook.close()


@pytest.mark.parametrize("trusted", [True, False])
def test_https_webhook_verifies_the_certificate(own_server, tmp_path, trusted):
    """An https:// webhook is verified against ca_file: with the receiver's CA it is delivered;
    without it (a self-signed certificate the system does not trust) it is not."""
    from alert_sinks import make_cert
    cert, key = make_cert(tmp_path)
    hook = WebhookSink(tls_cert=cert, tls_key=key)
    try:
        srv = own_server(start=False, https=False)
        append_conf(srv.data_dir, channels_conf(hook=hook, secret=SECRET, max_attempts=2,
                                                hook_ca=cert if trusted else None))
        srv.start(https=False)
        vuln_add(srv, title="Exposed debug endpoint", severity="high", found="2026-01-01",
                 deadline="2026-01-02")
        aid = wait_until(lambda: alerts(srv))[0]["id"]
        final = wait_until(lambda: deliveries(srv, aid).get("hook", ("",))[0]
                           in ("delivered", "failed"), timeout=30)
        assert final, deliveries(srv, aid)
        status, attempts, error = deliveries(srv, aid)["hook"]
        if trusted:
            assert status == "delivered" and attempts == 1
            body = hook.received()[0]
            assert verify_signature(SECRET, body[1], body[2])
        else:
            assert status == "failed" and attempts == 2
            assert "certificate" in error.lower() or "SSL" in error, error
            assert hook.received() == []
    finally:
        hook.close()


@pytest.mark.parametrize("password_ok", [True, False])
def test_smtp_login(own_server, tmp_path, password_ok):
    """SMTP AUTH after STARTTLS with the channel's username and password; a wrong password is a
    failed delivery; the password is never logged."""
    pw = "smtp-P4ss-never-logged"
    smtp = SmtpSink(tmp_path, auth=("dtm-alerts", pw))
    try:
        srv = own_server(start=False, https=False)
        append_conf(srv.data_dir, channels_conf(
            smtp=smtp, max_attempts=2,
            smtp_login=("dtm-alerts", pw if password_ok else "wrong-" + pw)))
        srv.start(https=False)
        vuln_add(srv, title="Unpatched CMS", severity="medium", found="2026-01-01",
                 deadline="2026-01-02")
        aid = wait_until(lambda: alerts(srv))[0]["id"]
        assert wait_until(lambda: deliveries(srv, aid).get("mail", ("",))[0]
                          in ("delivered", "failed"), timeout=30), deliveries(srv, aid)
        status, attempts, error = deliveries(srv, aid)["mail"]
        if password_ok:
            assert status == "delivered", error
            assert smtp.received() and smtp.received()[0]["tls"]
            assert smtp.logins[-1][2] is True
        else:
            assert status == "failed" and attempts == 2, error
            assert smtp.received() == [] and smtp.logins and not smtp.logins[-1][2]
        assert pw not in srv.log_text()
    finally:
        smtp.close()


def test_routing_by_severity_and_min_severity(own_server, tmp_path):
    """[alert] channels_<severity> overrides channels; a channel's min_severity filters."""
    hook = WebhookSink()
    syslog = SyslogSink()
    try:
        srv = own_server(start=False, https=False)
        append_conf(srv.data_dir, channels_conf(
            hook=hook, secret=SECRET, syslog=syslog,
            extra="channels_info = siem\n") + "min_severity = warning\n")
        # the last line belongs to [channel.siem]: it takes warning and above only, and info
        # alerts are routed to siem only → an info alert goes nowhere
        srv.start(https=False)
        vuln_add(srv, title="Verbose server banner", severity="low", found="2026-01-01",
                 deadline="2026-01-02")
        vuln_add(srv, title="Weak password policy", severity="critical", found="2026-01-01",
                 deadline="2026-01-03")
        assert wait_until(lambda: len(alerts(srv)) == 2, timeout=30)
        assert wait_until(lambda: len(hook.received()) >= 1 and len(syslog.received()) >= 1,
                          timeout=30)
        time.sleep(1.5)
        bodies = [json.loads(r[2])["alert"]["severity"] for r in hook.received()]
        assert bodies == ["critical"]
        assert len(syslog.received()) == 1 and b'severity="critical"' in syslog.received()[0]
        assert wait_until(lambda: "alert routed to no channel" in srv.log_text(), timeout=5)
    finally:
        hook.close()
        syslog.close()


@pytest.mark.parametrize("conf, needle", [
    ("[alert]\nchannels = nowhere\n", "names channel 'nowhere'"),
    ("[channel.x]\ntype = pager\n", "type must be webhook, email or syslog"),
    ("[channel.x]\ntype = webhook\nurl = ftp://h/\n", "webhook needs url"),
    ("[channel.x]\ntype = email\nurl = smtp://h:25\n", "needs from and to"),
    ("[channel.x]\ntype = syslog\naddress = nohost\n", "syslog channel needs address"),
    ("[channel.x]\ntype = webhook\nurl = http://h/\ncolour = red\n",
     "unknown setting 'colour' in section [channel.x]"),
    ("[channel.bad name]\ntype = webhook\n", "channel names are"),
])
def test_bad_channel_configuration_is_refused(tmp_path, dtm_bin, conf, needle):
    d = tmp_path / "data"
    T.dtm_init(str(d))
    append_conf(d, conf)
    p = T.run_dtm("vuln", "list", "--data-dir", str(d), check=False)
    assert p.returncode != 0
    assert needle in p.stderr, p.stderr


def test_cli_vuln_validation(tmp_path, dtm_bin):
    d = tmp_path / "data"
    T.dtm_init(str(d))
    base = ["vuln", "add", "--data-dir", str(d), "--title", "X", "--severity", "low",
            "--found", "2026-01-05"]
    p = T.run_dtm(*base, "--deadline", "2026-02-30", check=False)
    assert p.returncode == 2 and "--deadline must be a date" in p.stderr
    p = T.run_dtm(*base, "--deadline", "2026-01-01", check=False)
    assert p.returncode == 2 and "before the day it was found" in p.stderr
    p = T.run_dtm(*base[:-4], "--severity", "urgent", "--found", "2026-01-05", "--deadline",
                  "2026-03-01", check=False)
    assert p.returncode == 2 and "--severity must be" in p.stderr
    # SQL-looking text is stored and listed verbatim
    evil = "x'); DROP TABLE vulnerabilities;--"
    out = json.loads(T.run_dtm("vuln", "add", "--data-dir", str(d), "--title", evil,
                               "--severity", "low", "--found", "2026-01-05", "--deadline",
                               "2026-03-01", "--json").stdout)
    listed = json.loads(T.run_dtm("vuln", "list", "--data-dir", str(d), "--json").stdout)
    assert [x["title"] for x in listed["vulnerabilities"]] == [evil]
    assert out["status"] == "open"
