"""The command line (CONTRACT §1): init, system add/list, key rotate/revoke, version, help,
exit codes 0 / 1 / 2, `name: value` lines or one JSON object with --json."""

import json
import os
import stat

import pytest

import dtmtest as T

pytestmark = pytest.mark.usefixtures("dtm_bin")


def mode_of(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_version_and_help_exit_0():
    p = T.run_dtm("version")
    assert p.stdout.strip(), "dtm version printed nothing"
    p = T.run_dtm("help")
    assert p.stdout.strip() or p.stderr.strip(), "dtm help printed nothing"


def test_unknown_command_exits_2():
    p = T.run_dtm("no-such-command", check=False)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), "a usage error must say something on stderr"


def test_missing_required_option_exits_2(tmp_path):
    d = tmp_path / "d"
    T.dtm_init(str(d))
    p = T.run_dtm("system", "add", "--data-dir", d, "--name", "No code", check=False)
    assert p.returncode == 2, ("system add without --code", p.returncode, p.stderr)
    assert p.stderr.strip()


def test_init_prints_admin_and_creates_data_dir(tmp_path):
    d = tmp_path / "data"
    p = T.run_dtm("init", "--data-dir", d)
    kv = T.parse_kv(p.stdout)
    assert kv.get("admin_username") == "admin", p.stdout
    assert len(kv.get("admin_password", "")) >= 12, f"weak or missing admin_password: {p.stdout!r}"
    pg = T.pgcluster.enabled()  # the store is then a PostgreSQL database, not dtm.db
    for f in ("dtm.conf", "master.key", "tls.crt", "tls.key") + (() if pg else ("dtm.db",)):
        assert (d / f).is_file(), f"{f} missing after init; data dir has {os.listdir(d)}"
    assert mode_of(d / "master.key") == 0o600, oct(mode_of(d / "master.key"))
    assert mode_of(d / "tls.key") == 0o600, oct(mode_of(d / "tls.key"))
    if pg:
        assert T.open_db(d).execute("SELECT max(version) FROM schema_version").fetchone()[0] >= 1
        assert not (d / "dtm.db").exists()
    else:
        assert (d / "dtm.db").read_bytes()[:16] == b"SQLite format 3\x00"
    assert b"-----BEGIN CERTIFICATE-----" in (d / "tls.crt").read_bytes()
    assert (d / "dtm.conf").stat().st_size > 0
    # The password is printed once, never stored in clear.
    assert not T.files_containing(d, kv["admin_password"].encode()), \
        "the admin password is stored in clear in the data dir"


def test_init_json(tmp_path):
    d = tmp_path / "data"
    p = T.run_dtm("init", "--data-dir", d, "--json")
    obj = json.loads(p.stdout)
    assert obj["admin_username"] == "admin"
    assert obj["admin_password"]


def test_init_into_existing_empty_dir(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    T.dtm_init(str(d))
    if T.pgcluster.enabled():
        assert T.open_db(d).execute("SELECT count(*) FROM users").fetchone()[0] == 1
    else:
        assert (d / "dtm.db").is_file()


def test_init_refuses_non_empty_dir(tmp_path):
    d = tmp_path / "busy"
    d.mkdir()
    (d / "keep.txt").write_text("precious")
    p = T.run_dtm("init", "--data-dir", d, check=False)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), "refusal must be explained on stderr"
    assert "admin_password" not in p.stdout
    assert (d / "keep.txt").read_text() == "precious"
    assert sorted(os.listdir(d)) == ["keep.txt"], os.listdir(d)


def test_init_twice_refused(tmp_path):
    d = tmp_path / "data"
    T.dtm_init(str(d))
    before = (d / "master.key").read_bytes()
    p = T.run_dtm("init", "--data-dir", d, check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert (d / "master.key").read_bytes() == before, "init overwrote the master key"


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli") / "data"
    T.dtm_init(str(d))
    return d


def test_system_add_text_output(cli_dir):
    code = T.system_code("TX")
    p = T.run_dtm("system", "add", "--data-dir", cli_dir, "--code", code, "--name", "Hệ thống A",
                  "--org", "Bộ KH&CN", "--role", "source")
    kv = T.parse_kv(p.stdout)
    for k in ("system_code", "key_id", "api_key", "client_id", "client_secret"):
        assert kv.get(k), f"`{k}:` line missing in {p.stdout!r}"
    assert kv["system_code"] == code
    assert kv["api_key"] != kv["client_secret"]
    assert not T.files_containing(cli_dir, kv["api_key"].encode()), \
        "the API key is stored in clear in the data dir"
    assert not T.files_containing(cli_dir, kv["client_secret"].encode()), \
        "the client secret is stored in clear in the data dir"


def test_system_add_json_and_duplicate(cli_dir):
    code = T.system_code("JS")
    p = T.run_dtm("system", "add", "--data-dir", cli_dir, "--code", code, "--name", "B", "--json")
    obj = json.loads(p.stdout)
    for k in ("system_code", "key_id", "api_key", "client_id", "client_secret"):
        assert obj.get(k), f"{k} missing in {obj}"
    p = T.run_dtm("system", "add", "--data-dir", cli_dir, "--code", code, "--name", "B again",
                  check=False)
    assert p.returncode == 1, ("duplicate system code", p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip()
    assert "api_key" not in p.stdout


def test_system_list_json(cli_dir):
    agg = T.add_system(str(cli_dir), role="aggregator", code=T.system_code("AG"))
    child = T.add_system(str(cli_dir), role="source", parent=agg.code, code=T.system_code("CH"))
    msk = T.add_system(str(cli_dir), role="source", masked=True, code=T.system_code("MS"),
                       org="UBND tỉnh X")
    cons = T.add_system(str(cli_dir), role="consumer", code=T.system_code("CO"))
    p = T.run_dtm("system", "list", "--data-dir", cli_dir, "--json")
    arr = json.loads(p.stdout)
    assert isinstance(arr, list)
    by = {s["code"]: s for s in arr}
    for s in (agg, child, msk, cons):
        assert s.code in by, f"{s.code} not listed: {arr}"
        for k in ("code", "name", "org", "role", "parent", "masked", "last_seen"):
            assert k in by[s.code], f"{k} missing in {by[s.code]}"
        assert by[s.code]["last_seen"] is None, by[s.code]
    assert by[agg.code]["role"] == "aggregator"
    assert by[child.code]["role"] == "source"
    assert by[child.code]["parent"] == agg.code
    assert by[agg.code]["parent"] is None
    assert by[msk.code]["masked"] is True
    assert by[child.code]["masked"] is False
    assert by[msk.code]["org"] == "UBND tỉnh X"
    assert by[cons.code]["role"] == "consumer"


def test_key_rotate_output(cli_dir):
    s = T.add_system(str(cli_dir))
    p = T.run_dtm("key", "rotate", "--data-dir", cli_dir, "--system", s.code)
    kv = T.parse_kv(p.stdout)
    assert kv.get("key_id") and kv.get("api_key"), p.stdout
    assert kv["api_key"] != s.api_key
    assert kv["key_id"] != s.key_id
    p = T.run_dtm("key", "rotate", "--data-dir", cli_dir, "--system", s.code, "--grace", "0",
                  "--json")
    obj = json.loads(p.stdout)
    assert obj["key_id"] and obj["api_key"]


def test_key_rotate_unknown_system_fails(cli_dir):
    p = T.run_dtm("key", "rotate", "--data-dir", cli_dir, "--system", "NOSUCHSYSTEM", check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.strip()


def test_key_revoke(cli_dir):
    s = T.add_system(str(cli_dir))
    T.run_dtm("key", "revoke", "--data-dir", cli_dir, "--id", s.key_id)
