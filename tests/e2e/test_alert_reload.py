"""SIGHUP reloads the alert rules and channels live (issue 10, item 4): an alert raised while no
channel is configured is routed nowhere; a webhook channel added to dtm.conf and a SIGHUP later,
the next alert reaches it, signed — without a restart."""

import json
import signal

import pytest

import dtmtest as T
from alert_sinks import WebhookSink, append_conf, channels_conf, verify_signature, wait_until

pytestmark = pytest.mark.owns_server

SECRET = "whk-reload-6d1f0b7e-signing-key"


def vuln_add(srv, title):
    return json.loads(T.run_dtm("vuln", "add", "--data-dir", str(srv.data_dir), "--json",
                                "--title", title, "--severity", "high", "--found", "2026-01-05",
                                "--deadline", "2026-02-01").stdout)


def test_sighup_adds_an_alert_channel_live(own_server):
    hook = WebhookSink()
    try:
        srv = own_server(start=False, https=False)
        append_conf(srv.data_dir, "[alert]\ncheck_interval = 1\nretry_initial = 1\n")
        srv.start(https=False)
        first = vuln_add(srv, "Before the reload")
        assert wait_until(lambda: "alert routed to no channel" in srv.log_text(), timeout=30), \
            srv.log_tail()
        assert hook.received() == []
        # a channel added to the configuration, then SIGHUP: the running server uses it
        text = (srv.data_dir / "dtm.conf").read_text()
        (srv.data_dir / "dtm.conf").write_text(
            text.replace("[alert]\ncheck_interval = 1\nretry_initial = 1\n", ""))
        append_conf(srv.data_dir, channels_conf(hook=hook, secret=SECRET))
        before = len(srv.log_text())
        srv.signal(signal.SIGHUP)
        assert wait_until(lambda: "configuration reloaded" in srv.log_text()[before:], timeout=10)
        second = vuln_add(srv, "After the reload")
        got = wait_until(lambda: [r for r in hook.received() if r[3] == 200], timeout=30)
        assert got, srv.log_tail()
        msg = json.loads(got[0][2])
        assert msg["alert"]["key"] == f"vuln:{second['id']}", msg
        assert verify_signature(SECRET, got[0][1], got[0][2])
        # the alert raised before the channel existed was not sent afterwards
        assert all(json.loads(r[2])["alert"]["key"] != f"vuln:{first['id']}"
                   for r in hook.received())
        assert srv.stop() == 0
    finally:
        hook.close()
