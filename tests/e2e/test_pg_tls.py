"""TLS to the PostgreSQL database (issue 9 item 1): a throw-away cluster of its own (pgcluster.py
with ssl_dir) that accepts TLS connections only (`hostssl` rules; plain `host` connections are
refused), with a self-signed CA, a server certificate for 127.0.0.1/localhost and a client
certificate made here with the openssl CLI. The role dtm connects as must give its password
([store] password_file) AND a client certificate whose CN is its name.

- `dtm serve` with `dsn = … sslmode=verify-full` and [store] sslrootcert, sslcert, sslkey (files
  of the data dir) ingests over REST and reads back; pg_stat_ssl shows every connection of dtm
  (application_name "dtm") encrypted;
- `dtm drill` (backup, verify, pg_restore into a scratch database, serve, compare) passes the
  same settings to pg_dump and pg_restore, and the backup carries the TLS files;
- a DSN whose own sslrootcert is another CA, and one with sslmode=disable, make `dtm serve`
  refuse to start with a clear message that shows neither the password nor the DSN;
- a dtm.conf line too long for its reader (a DSN with long paths) is refused, not cut.

Runs with DTM_TEST_STORE=postgresql."""

import json
import subprocess

import pytest

import dtmtest as T
import pgcluster

pytestmark = pytest.mark.skipif(not pgcluster.enabled() or bool(T.EXTERNAL_URL),
                                reason="PostgreSQL over TLS: needs DTM_TEST_STORE=postgresql "
                                "and its own servers")

ROLE = "dtm_tls"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
            "-subj", f"/CN=DTM test {name}", cwd=d)


def make_cert(d, name, cn, ca="ca", san=None):
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
            cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext.name,
            cwd=d)
    (d / f"{name}.key").chmod(0o600)  # libpq refuses a client key others may read


def psql(dsn, sql):
    p = subprocess.run(["psql", dsn, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    d = tmp_path_factory.mktemp("pgtls")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_cert(d, "server", "localhost", san="IP:127.0.0.1,DNS:localhost")
    make_cert(d, "client", ROLE)
    cluster = pgcluster.Cluster(ssl_dir=str(d))
    cluster.start()
    password = "Pw-" + T.uid("TLS")
    admin = cluster.base + " dbname=postgres"
    # a member of dtm_pw: password and client certificate (pgcluster.py's hostssl rules)
    psql(admin, f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}' IN ROLE dtm_pw")
    try:
        yield {"dir": d, "cluster": cluster, "password": password, "admin": admin}
    finally:
        cluster.stop()


def new_database(tls):
    name = "dtm_tls_" + T.uid("D").lower()
    psql(tls["admin"], f'CREATE DATABASE "{name}" OWNER {ROLE}')
    return name


def dsn(tls, db, mode="verify-full", extra=""):
    """A dsn of the TLS cluster (no password: that is in password_file)."""
    port = tls["cluster"].base.split("port=")[1].split()[0]
    return f"host=127.0.0.1 port={port} dbname={db} user={ROLE} sslmode={mode}{extra}"


def data_dir(tls, tmp_path, store_dsn, files=True):
    """A data dir (dtm init) whose store is then the TLS cluster's database, password from
    [store] password_file; files: the CA and the client's certificate and key in the data dir,
    named by [store] sslrootcert, sslcert and sslkey."""
    d = tmp_path / "data"
    T.run_dtm("init", "--data-dir", d)
    (d / "pg.pass").write_text(tls["password"] + "\n")
    (d / "pg.pass").chmod(0o600)
    conf = f"\n[store]\nbackend = postgresql\ndsn = {store_dsn}\npassword_file = pg.pass\n"
    if files:
        for src, dst in (("ca.pem", "pg-ca.pem"), ("client.pem", "pg-client.pem"),
                         ("client.key", "pg-client.key")):
            (d / dst).write_bytes((tls["dir"] / src).read_bytes())
            (d / dst).chmod(0o600)
        conf += "sslrootcert = pg-ca.pem\nsslcert = pg-client.pem\nsslkey = pg-client.key\n"
    with open(d / "dtm.conf", "a") as f:
        f.write(conf)
    return d


def dtm_connections(tls, db):
    """(application_name, ssl, TLS version) of every client connection to db."""
    out = psql(tls["admin"],
               "SELECT a.application_name, s.ssl, coalesce(s.version, '') FROM pg_stat_activity a"
               f" JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '{db}'"
               " AND a.backend_type = 'client backend'")
    return [tuple(r.split("|")) for r in out.splitlines() if r]


def test_serve_ingest_and_drill_over_verified_tls(tls, tmp_path, own_server):
    db = new_database(tls)
    d = data_dir(tls, tmp_path, dsn(tls, db))
    srv = own_server(data_dir=d, https=False)
    s = srv.add_system()
    recs = [T.txn(system_code=s.code) for _ in range(20)]
    assert T.counts(T.assert_ok(srv.ingest(s, recs))) == (20, 0, 0, 0)
    for r in recs[:3]:
        got = srv.record(s, r["txn_id"])
        assert got.status_code == 200, got.text
        T.assert_same_record(r, got.json()["record"])
    # every connection of the server is dtm's and encrypted (the cluster refuses any other)
    conns = dtm_connections(tls, db)
    assert conns and all(app == "dtm" for app, _, _ in conns), conns
    assert all(ssl == "t" and version.startswith("TLSv1.") for _, ssl, version in conns), conns
    assert tls["password"] not in srv.log_text()

    # the recovery drill (backup, verify, restore, serve, compare): pg_dump and pg_restore
    # reach the cluster over TLS too, and the restored server as well — its dtm.conf names the
    # scratch database and keeps the [store] TLS files and password file, which the backup holds
    scratch = new_database(tls)
    rep = tmp_path / "drill.json"
    p = T.run_dtm("drill", "--data-dir", d, "--report", rep, "--scratch", tmp_path,
                  "--store-dsn", dsn(tls, scratch), timeout=180)
    assert "PASS" in p.stdout, p.stdout + p.stderr
    r = json.loads(rep.read_text())
    assert r["result"] == "PASS", r
    by = {x["dataset"]: x for x in r["datasets"]}
    assert by["transactions"]["same"] and by["transactions"]["restored"] == 20
    assert tls["password"] not in p.stdout + p.stderr
    assert int(psql(tls["cluster"].base + f" dbname={scratch}",
                    "SELECT count(*) FROM schema_version")) >= 1
    assert srv.stop() == 0


@pytest.mark.parametrize("ca, mode, words", [
    # libpq checks the server's certificate against the CA the DSN names: another CA's is
    # refused
    ("other-ca.pem", "verify-full", "certificate verify failed"),
    # the cluster accepts TLS connections only
    ("ca.pem", "disable", "no encryption"),
])
def test_serve_refuses_to_start(tls, tmp_path, own_server, ca, mode, words):
    db = new_database(tls)
    secret = "Dsn-" + T.uid("S")
    # the TLS settings in the DSN itself this time, and a password in it too: neither it nor
    # the password file's may be shown
    d = data_dir(tls, tmp_path, dsn(tls, db, mode, f" sslrootcert={tls['dir'] / ca}"
                                    f" password={secret}"), files=False)
    srv = own_server(data_dir=d, https=False, start=False)
    with pytest.raises(AssertionError, match="exited with [1-9]"):
        srv.start(https=False)
    log = srv.log_text()
    assert "cannot connect to PostgreSQL at 127.0.0.1:" in log and words in log, log
    assert secret not in log and tls["password"] not in log
    assert "sslrootcert" not in log and "dbname=" not in log, "the DSN is shown: " + log
    assert not dtm_connections(tls, db)


def test_long_dsn_line_is_refused_not_cut(tls, tmp_path):
    """dtm.conf's reader (libinih) takes lines in pieces of 199 bytes: a longer line — a DSN with
    long certificate paths — is refused with its line number instead of being cut silently."""
    db = new_database(tls)
    long_path = tls["dir"] / ("x" * 200) / "ca.pem"
    d = data_dir(tls, tmp_path, dsn(tls, db, extra=f" sslrootcert={long_path}"), files=False)
    p = T.run_dtm("system", "list", "--data-dir", d, check=False)
    assert p.returncode != 0
    assert "line longer than 199 characters" in p.stderr, p.stderr
    assert tls["password"] not in p.stderr + p.stdout
    # nor does `dtm init --store-dsn` write such a line
    p = subprocess.run([T.DTM_BIN, "init", "--data-dir", str(tmp_path / "init"), "--store-dsn",
                        dsn(tls, db, extra=f" sslrootcert={long_path}")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "--store-dsn is longer than 193 characters" in p.stderr, p.stderr
    assert not (tmp_path / "init").exists()
