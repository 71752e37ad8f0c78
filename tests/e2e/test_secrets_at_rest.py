"""Secrets at rest (T4.2, issue 5 item 6): TOTP seeds, the private keys that sign OAuth tokens
and the secrets of alert channels are sealed with AES-256-GCM under the data keys, which the
master key wraps — so `dtm key rotate-master` covers them, and an old master key no longer opens
them. Alert channels name their secret as store:NAME (`dtm secret set`), so dtm.conf holds none.

Checked from the files alone: no secret is found in clear in any file of the data dir, and each
one opens with the data keys (unwrapped from master.key by this test) and the associated data
that binds it to its place. Then the features that use them still work across a master-key
rotation and a restart, and stop working when the old master key is put back.
"""

import json
import random

from cryptography.hazmat.primitives import serialization

import base64
import dtmtest as T
import peoplelib as P
from alert_sinks import WebhookSink, append_conf, channels_conf, verify_signature, wait_until
from test_at_rest import grep_clear, files_of


def b64url_int(s):
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")


def token(srv, s):
    return srv.post("/oauth/token", data={"grant_type": "client_credentials",
                                          "client_id": s.client_id,
                                          "client_secret": s.client_secret})


def overdue_vuln(srv, title):
    """A vulnerability past its deadline: the alert vuln.overdue goes to the channels."""
    p = T.run_dtm("vuln", "add", "--data-dir", str(srv.data_dir), "--json", "--title", title,
                  "--severity", "high", "--found", "2026-01-05", "--deadline", "2026-02-01")
    return json.loads(p.stdout)["id"]


def signed_delivery(hook, vid, key):
    """The webhook delivery of the alert of vulnerability vid, checked against key."""
    def got():
        for _, headers, body, status in hook.received():
            if status == 200 and json.loads(body)["alert"]["key"] == f"vuln:{vid}":
                return headers, body
        return None
    d = wait_until(got, timeout=30)
    assert d, f"no webhook delivery for vuln:{vid}: {hook.received()}"
    assert verify_signature(key, *d)
    return d


def test_secrets_sealed_under_data_keys(own_server):
    hook = WebhookSink()
    try:
        run(own_server, hook)
    finally:
        hook.close()


def run(own_server, hook):
    srv = own_server(start=False)
    data = srv.data_dir
    hook_key = "hk-" + "".join(random.choices("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=24))

    # the webhook's key goes into the store from standard input; dtm.conf only names it
    p = T.run_dtm("secret", "set", "ops-hook", "--data-dir", str(data), input=hook_key + "\n")
    out = T.parse_kv(p.stdout)
    assert out == {"name": "ops-hook", "config_value": "store:ops-hook"}, p.stdout
    assert hook_key not in p.stdout + p.stderr
    append_conf(data, channels_conf(hook=hook, secret="store:ops-hook"))
    srv.start()

    # an admin enrols TOTP; a system obtains a token (the first signing key is made)
    admin = P.Person(srv, srv.admin["admin_username"], srv.admin["admin_password"])
    admin.login_ok()
    seed, _, _ = P.enrol(admin)
    s = srv.add_system()
    r = token(srv, s)
    assert r.status_code == 200, r.text
    kid = json.loads(base64.urlsafe_b64decode(r.json()["access_token"].split(".")[0] + "=="))[
        "kid"]

    # an alert reaches the webhook, signed with the key from the store
    signed_delivery(hook, overdue_vuln(srv, "first"), hook_key)

    # ---- at rest: each secret opens with the data keys, bound to its place, and none is in
    # clear anywhere in the data dir
    con = T.open_db(data)
    try:
        keys = T.data_keys(data, con)
        (blob,) = con.execute("SELECT sealed FROM secrets WHERE name='ops-hook'").fetchone()
        (seed_blob,) = con.execute("SELECT mfa_secret FROM users WHERE username=?",
                                   (admin.username,)).fetchone()
        (key_blob,) = con.execute("SELECT sealed FROM signing_keys WHERE kid=?",
                                  (kid,)).fetchone()
    finally:
        con.close()
    assert T.open_sealed(keys, blob, b"dtm secret\nops-hook").decode() == hook_key
    raw_seed = base64.b32decode(seed)
    assert T.open_sealed(keys, seed_blob, b"dtm totp seed\n" + admin.username.encode()) == \
        raw_seed
    pem = T.open_sealed(keys, key_blob, kid.encode())
    assert bytes(key_blob)[:1] == b"\x01" and pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    priv = serialization.load_pem_private_key(pem, password=None)
    jwk = [k for k in srv.get("/oauth/jwks.json").json()["keys"] if k["kid"] == kid][0]
    pub = priv.public_key().public_numbers()
    assert (pub.x, pub.y) == (b64url_int(jwk["x"]), b64url_int(jwk["y"]))
    pem_body = b"".join(pem.split(b"\n")[1:-2]).decode()
    clear = [("webhook key", hook_key), ("seed base32", seed),
             ("private key", pem_body[20:60]), ("private key tail", pem_body[-40:])]
    assert grep_clear(data, clear) == {}, files_of(data)
    assert raw_seed not in T.store_bytes(data)  # dtm.db, or PostgreSQL's files and WAL

    # the list names secrets, never their values; setting one is on the audit trail
    p = T.run_dtm("secret", "list", "--data-dir", str(data), "--json")
    assert [x["name"] for x in json.loads(p.stdout)] == ["ops-hook"] and hook_key not in p.stdout
    rows = P.audit_actions(srv, "secret.set")
    assert rows and rows[0]["target"] == "ops-hook" and hook_key not in json.dumps(rows)

    # ---- after a rotation of the master key and a restart everything still opens
    old_key = (data / "master.key").read_bytes()
    T.run_dtm("key", "rotate-master", "--data-dir", str(data))
    assert srv.stop() == 0
    srv.start()
    admin2 = P.Person(srv, admin.username, admin.password)
    admin2.login_ok(totp=P.totp(seed, 30))
    assert admin2.get("/api/v1/users").status_code == 200  # an admin action: MFA held
    assert token(srv, s).status_code == 200
    signed_delivery(hook, overdue_vuln(srv, "second"), hook_key)

    # ---- the old master key given back: none of the secrets opens with it
    assert srv.stop() == 0
    keep = (data / "master.key").read_bytes()
    (data / "master.key").write_bytes(old_key)
    try:
        srv.start()
        admin3 = P.Person(srv, admin.username, admin.password)
        assert admin3.login(totp=P.totp(seed, 60)).status_code >= 500
        assert token(srv, s).status_code >= 500
        log = srv.log_text()
        assert "cannot be opened" in log
        assert hook_key not in log and seed not in log
        srv.stop()
    finally:
        (data / "master.key").write_bytes(keep)


def test_secret_cli_and_clear_secret_warning(own_server):
    srv = own_server(start=False, https=False)
    data = str(srv.data_dir)
    # generated: printed once, stored sealed; replaced; deleted; unknown and bad names refused
    p = T.run_dtm("secret", "set", "gen", "--generate", "--data-dir", data, "--json")
    out = json.loads(p.stdout)
    assert len(out["secret"]) == 64 and out["config_value"] == "store:gen"
    assert grep_clear(srv.data_dir, [("generated", out["secret"])]) == {}
    T.run_dtm("secret", "set", "gen", "--data-dir", data, input="other\n")
    T.run_dtm("secret", "delete", "gen", "--data-dir", data)
    p = T.run_dtm("secret", "delete", "gen", "--data-dir", data, check=False)
    assert p.returncode == 1 and "no secret named gen" in p.stderr
    p = T.run_dtm("secret", "set", "../x", "--data-dir", data, input="v\n", check=False)
    assert p.returncode == 2
    p = T.run_dtm("secret", "set", "empty", "--data-dir", data, input="", check=False)
    assert p.returncode == 2 and "standard input" in p.stderr
    p = T.run_dtm("secret", "set", "long", "--data-dir", data, input="x" * 300, check=False)
    assert p.returncode == 2 and "longer than" in p.stderr
    assert json.loads(T.run_dtm("secret", "list", "--data-dir", data, "--json").stdout) == []
    actions = [r["action"] for r in P.audit_actions(srv, None, until=lambda rows: len(rows) >= 3)
               if r["action"].startswith("secret.")]
    assert actions.count("secret.set") == 2 and actions.count("secret.deleted") == 1

    # a channel whose secret is written in clear in dtm.conf: the server says so (not the
    # secret); one naming a secret that is not in the store fails its deliveries, saying why
    hook = WebhookSink()
    try:
        append_conf(srv.data_dir, channels_conf(hook=hook, secret="in-clear-secret-value"))
        srv.start(https=False)
        log = wait_until(lambda: "keeps a secret in clear" in srv.log_text() and
                         srv.log_text(), timeout=10)
        assert log and "in-clear-secret-value" not in log
        assert srv.stop() == 0
        conf = (srv.data_dir / "dtm.conf").read_text()
        (srv.data_dir / "dtm.conf").write_text(
            conf.replace("secret = in-clear-secret-value", "secret = store:missing"))
        srv.start(https=False)
        vid = overdue_vuln(srv, "no key")
        row = wait_until(lambda: alert_delivery(srv, vid), timeout=30)
        assert row and row[0] == "failed" and "dtm secret set missing" in row[1], row
        assert not [r for r in hook.received() if r[3] == 200]
    finally:
        hook.close()


def alert_delivery(srv, vid):
    con = T.open_db(srv.data_dir)
    try:
        return con.execute(
            "SELECT d.status, d.error FROM alert_deliveries d JOIN alerts a ON a.id=d.alert_id "
            "WHERE a.key=? AND d.status='failed'", (f"vuln:{vid}",)).fetchone()
    finally:
        con.close()


def test_alert_channels_listed_without_secrets(own_server):
    """GET /api/v1/alert-channels (operators): the channels as configured, whether each secret is
    sealed in the store or in clear in dtm.conf — never a secret, nor a URL's user or query."""
    srv = own_server(start=False)
    append_conf(srv.data_dir,
                "[alert]\nchannels = hook, mail\n"
                "[channel.hook]\ntype = webhook\n"
                "url = https://u:pw-in-url@hooks.example/path?token=tok-in-query#frag\n"
                "secret = store:hook-key\n"
                "[channel.mail]\ntype = email\nurl = smtp://mail.example:587\n"
                "from = dtm@example.vn\nto = soc@example.vn\nusername = dtm\n"
                "password = clear-smtp-password\n")
    srv.start()
    op = P.Person(srv, "op.channels", P.add_user(srv, "op.channels", "operator"))
    op.login_ok()
    r = op.get("/api/v1/alert-channels")
    assert r.status_code == 200, r.text
    body = r.json()
    ch = {c["name"]: c for c in body["channels"]}
    assert ch["hook"]["target"] == "https://hooks.example/path" and ch["hook"]["secret"] == "sealed"
    assert ch["mail"]["secret"] == "clear" and ch["mail"]["to"] == "soc@example.vn"
    assert body["routes"]["default"] == "hook, mail"
    for leaked in ("pw-in-url", "tok-in-query", "frag", "clear-smtp-password", "hook-key"):
        assert leaked not in r.text, leaked
    an = P.Person(srv, "an.channels", P.add_user(srv, "an.channels", "analyst"))
    an.login_ok()
    assert an.get("/api/v1/alert-channels").status_code == 403
