"""The audit trail (issue 5 item 5; S3, D6; CONTRACT §1 `dtm audit verify`): security-relevant
events are appended to a hash-chained log — CLI changes (systems, keys, grants, exports,
retention) and the server's own (start/stop, config reloads, record downloads, rejected keys);
`dtm audit verify` exits 0 on an intact chain and 1 naming the first broken entry after a row
was altered with the `sqlite3` CLI; the chain head goes to the server log; no secret is ever
written to the trail."""

import json
import re
import shutil
import signal
import sqlite3
import subprocess

import pytest

import dtmtest as T

pytestmark = pytest.mark.usefixtures("dtm_bin")


def audit_entries(data_dir, *args):
    p = T.run_dtm("audit", "list", "--data-dir", data_dir, "--format", "json", *args)
    return json.loads(p.stdout)


def verify(data_dir):
    return T.run_dtm("audit", "verify", "--data-dir", data_dir, check=False)


def assert_intact(data_dir):
    p = verify(data_dir)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert re.search(r"audit: \d+ entr(y|ies), chain intact", p.stdout), p.stdout
    return p


def audit_rows_text(data_dir):
    """Every text of every audit row (for the no-secret check)."""
    con = T.open_db(data_dir)
    try:
        rows = con.execute("SELECT actor_kind, actor, action, target, detail, source_ip "
                           "FROM audit_log").fetchall()
    finally:
        con.close()
    return "\n".join("\t".join(str(v) for v in r) for r in rows)


def sql(data_dir, statement):
    """Alters the database (no server running) with the sqlite3 CLI, else Python's sqlite3; on
    PostgreSQL with psql."""
    if T.pgcluster.enabled():
        T.open_db(data_dir).execute(statement)
        return
    db = str(data_dir / "dtm.db")
    if shutil.which("sqlite3"):
        subprocess.run(["sqlite3", db, statement], check=True, capture_output=True, timeout=30)
        return
    con = sqlite3.connect(db)
    try:
        con.execute(statement)
        con.commit()
    finally:
        con.close()


@pytest.fixture
def trail(tmp_path):
    """A data dir whose trail holds the entries of a few CLI changes."""
    d = tmp_path / "data"
    T.dtm_init(str(d))
    src = T.add_system(str(d), role="source")
    cons = T.add_system(str(d), role="consumer")
    rot = json.loads(T.run_dtm("key", "rotate", "--data-dir", d, "--system", src.code,
                               "--json").stdout)
    T.run_dtm("key", "revoke", "--data-dir", d, "--id", src.key_id)
    T.run_dtm("grant", "add", "--data-dir", d, "--system", cons.code, "--dataset", "transactions")
    T.run_dtm("grant", "revoke", "--data-dir", d, "--system", cons.code,
              "--dataset", "transactions")
    T.run_dtm("export", "--data-dir", d, "--dataset", "transactions", "--format", "csv",
              "-o", tmp_path / "out.csv")
    T.run_dtm("retention", "run", "--data-dir", d)
    return {"dir": d, "src": src, "cons": cons, "rotated": rot}


def test_cli_changes_are_recorded(trail):
    d, src, cons = trail["dir"], trail["src"], trail["cons"]
    entries = audit_entries(d)
    got = [(e["actor_kind"], e["action"], e["target"]) for e in entries]
    assert got == [
        ("cli", "user.created", "admin"),
        ("cli", "system.created", src.code),
        ("cli", "system.created", cons.code),
        ("cli", "key.rotated", src.code),
        ("cli", "key.revoked", src.key_id),
        ("cli", "grant.added", cons.code),
        ("cli", "grant.revoked", cons.code),
        ("cli", "export.local", "transactions"),
        ("cli", "retention.purged", "connection_logs"),
    ], got
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    for e in entries:
        assert e["actor"], e  # the OS user who ran the command
        assert re.fullmatch(r"[0-9a-f]{64}", e["hash"]), e
    assert entries[0]["detail"] == {"role": "admin"}
    assert entries[1]["detail"]["key_id"] == src.key_id
    assert entries[1]["detail"]["role"] == "source"
    assert entries[3]["detail"]["key_id"] == trail["rotated"]["key_id"]
    assert entries[5]["detail"]["dataset"] == "transactions"
    assert entries[7]["detail"]["dataset"] == "transactions"
    assert entries[7]["detail"]["records"] == 0
    assert entries[8]["detail"]["removed"] == 0
    # filters
    only = audit_entries(d, "--action", "grant.added")
    assert [e["target"] for e in only] == [cons.code]
    assert audit_entries(d, "--from", "2000-01-01", "--to", "2000-01-02") == []
    csv_out = T.run_dtm("audit", "list", "--data-dir", d).stdout.splitlines()
    assert csv_out[0].startswith("seq,at,actor_kind,actor,action,target,detail")
    assert len(csv_out) == len(entries) + 1
    p = assert_intact(d)
    assert f"audit: {len(entries)} entries, chain intact" in p.stdout


def test_no_secret_in_the_trail(trail):
    text = audit_rows_text(trail["dir"])
    for s in (trail["src"], trail["cons"]):
        assert s.api_key and s.api_key not in text
        assert s.client_secret and s.client_secret not in text
    assert trail["rotated"]["api_key"] not in text
    # nor anywhere in the database
    assert not T.files_containing(trail["dir"], trail["rotated"]["api_key"].encode())


def test_failed_change_is_not_recorded(trail):
    d = trail["dir"]
    n = len(audit_entries(d))
    p = T.run_dtm("key", "revoke", "--data-dir", d, "--id", "key_nosuchkey", check=False)
    assert p.returncode == 1
    p = T.run_dtm("grant", "revoke", "--data-dir", d, "--system", trail["cons"].code,
                  "--dataset", "transactions", check=False)
    assert p.returncode == 1
    assert len(audit_entries(d)) == n


@pytest.mark.parametrize("tamper, seq, words", [
    ("UPDATE audit_log SET detail='{\"dataset\":\"documents\"}' WHERE seq=5", 5,
     ["hash mismatch"]),
    ("DELETE FROM audit_log WHERE seq=4", 5, ["gap in seq", "entry 4 is missing"]),
    ("UPDATE audit_log SET hash=zeroblob(32) WHERE seq=3", 3, ["hash mismatch"]),
    ("UPDATE audit_log SET actor='someone-else' WHERE seq=1", 1, ["hash mismatch"]),
    ("UPDATE audit_log SET prev_hash=(SELECT hash FROM audit_log WHERE seq=1) WHERE seq=6", 6,
     ["prev_hash mismatch"]),
])
def test_tampering_is_detected(trail, tamper, seq, words):
    d = trail["dir"]
    assert_intact(d)
    sql(d, tamper)
    p = verify(d)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    err = p.stderr
    assert f"entry {seq} " in err, err
    for w in words:
        assert w in err, err
    assert "chain intact" not in p.stdout


def test_truncation_is_found_with_a_logged_head(trail):
    d = trail["dir"]
    m = re.search(r"head: seq (\d+) hash ([0-9a-f]{64})", assert_intact(d).stdout)
    assert m
    head = f"{m.group(1)}:{m.group(2)}"
    p = T.run_dtm("audit", "verify", "--data-dir", d, "--head", head, check=False)
    assert p.returncode == 0, p.stderr
    sql(d, f"DELETE FROM audit_log WHERE seq={m.group(1)}")
    assert_intact(d)  # what is left is still a valid chain …
    p = T.run_dtm("audit", "verify", "--data-dir", d, "--head", head, check=False)
    assert p.returncode == 1, (p.stdout, p.stderr)  # … but not the one the server logged
    assert "truncated" in p.stderr, p.stderr
    assert T.run_dtm("audit", "verify", "--data-dir", d, "--head", "12", check=False
                     ).returncode == 2


def test_verify_of_a_new_data_dir(tmp_path):
    d = tmp_path / "d"
    T.dtm_init(str(d))
    p = assert_intact(d)
    assert "audit: 1 entry, chain intact" in p.stdout  # user.created admin


def test_audit_usage_errors(tmp_path):
    d = tmp_path / "d"
    T.dtm_init(str(d))
    assert T.run_dtm("audit", "--data-dir", d, check=False).returncode == 2
    assert T.run_dtm("audit", "list", "--data-dir", d, "--format", "xml",
                     check=False).returncode == 2
    assert T.run_dtm("audit", "list", "--data-dir", d, "--from", "yesterday",
                     check=False).returncode == 2


def head_lines(srv):
    out = []
    for line in srv.log_text().splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if o.get("msg") == "audit chain head":
            out.append(o)
    return out


def test_server_events_and_chain_head(own_server):
    srv = own_server(start=False)
    conf = srv.data_dir / "dtm.conf"
    text = conf.read_text()
    assert "head_log_interval = 300" in text
    conf.write_text(text.replace("head_log_interval = 300", "head_log_interval = 1"))
    src = srv.add_system(role="source")
    srv.start()
    d = srv.data_dir

    # a download of records: who, what, which filters, how many
    r = T.txn(started_at="2026-11-20T10:00:00+07:00", citizen_id="012345678901")
    T.assert_ok(srv.ingest(src, [r]))
    g = srv.get("/api/v1/datasets/transactions/records",
                params={"from": "2026-11-20", "where": "status:eq:success", "format": "json"},
                headers=src.headers)
    assert g.status_code == 200, g.text
    assert g.json()["count"] == 1

    def downloads():
        return [e for e in audit_entries(d, "--action", "export.records")]
    got = T.wait_for(downloads, timeout=10)
    assert got, "no export.records entry after a download"
    e = got[-1]
    assert (e["actor_kind"], e["actor"], e["target"]) == ("system", src.code, "transactions")
    assert e["detail"]["records"] == 1
    assert e["detail"]["key_id"] == src.key_id
    assert e["detail"]["from"] == "2026-11-20"
    assert e["detail"]["where"] == [{"field": "status", "values": ["success"]}]
    assert e["source_ip"] == "127.0.0.1"

    # a known but revoked key
    T.run_dtm("key", "revoke", "--data-dir", d, "--id", src.key_id)
    g = srv.get("/api/v1/datasets/transactions/records", headers=src.headers)
    assert g.status_code == 401
    rej = T.wait_for(lambda: audit_entries(d, "--action", "auth.key_rejected"), timeout=10)
    assert rej, "no auth.key_rejected entry"
    assert (rej[-1]["actor"], rej[-1]["target"]) == (src.code, src.key_id)
    assert rej[-1]["detail"]["reason"] == "revoked"
    # an unknown key is not an entry
    srv.get("/api/v1/datasets/transactions/records", headers={"X-API-Key": "dtm_nope"})

    # SIGHUP
    srv.signal(signal.SIGHUP)
    assert T.wait_for(lambda: audit_entries(d, "--action", "config.reloaded"), timeout=10)

    # the chain head in the log, every second
    assert T.wait_for(lambda: len(head_lines(srv)) >= 2, timeout=10), srv.log_tail()
    assert srv.stop() == 0
    entries = audit_entries(d)
    actions = [x["action"] for x in entries]
    assert actions[:2] == ["user.created", "system.created"]
    assert "server.started" in actions and actions[-1] == "server.stopped", actions
    assert len([x for x in entries if x["action"] == "auth.key_rejected"]) == 1
    started = [x for x in entries if x["action"] == "server.started"][0]
    assert started["actor_kind"] == "server"
    # the last head line is the head as the server left it
    last = head_lines(srv)[-1]
    assert last["seq"] == entries[-1]["seq"], (last, entries[-1])
    assert last["hash"] == entries[-1]["hash"]
    p = assert_intact(d)
    assert f"head: seq {last['seq']} hash {last['hash']}" in p.stdout
    T.run_dtm("audit", "verify", "--data-dir", d, "--head", f"{last['seq']}:{last['hash']}")
    # no secret and no personal value
    text = audit_rows_text(d)
    assert src.api_key not in text and src.client_secret not in text
    assert "012345678901" not in text
