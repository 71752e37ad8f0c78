"""The PostgreSQL backend itself (issue 9, CONTRACT §8): clear errors that never show the
password, the schema migrated once when several processes start at once (advisory lock), and
the password taken from [store] password_file. Runs with DTM_TEST_STORE=postgresql (the rest of
the suite then runs on PostgreSQL too)."""

import subprocess
import threading

import pytest

import dtmtest as T
import pgcluster

pytestmark = pytest.mark.skipif(not pgcluster.enabled(),
                                reason="PostgreSQL backend: needs DTM_TEST_STORE=postgresql")


def psql(dsn, sql):
    p = subprocess.run(["psql", dsn, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_unreachable_database_named_without_password(tmp_path):
    secret = "Pw-" + T.uid("S")
    d = tmp_path / "data"
    p = subprocess.run([T.DTM_BIN, "init", "--data-dir", str(d), "--store-dsn",
                        f"host=127.0.0.1 port=1 dbname=nothing user=dtm password={secret}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "cannot connect to PostgreSQL at 127.0.0.1:1" in p.stderr, p.stderr
    assert secret not in p.stderr + p.stdout
    assert not d.exists(), "init wrote a data dir for a database it cannot reach"


def test_schema_migrated_once_by_processes_starting_together(tmp_path):
    dsn = pgcluster.CLUSTER.new_database()
    d = tmp_path / "data"
    T.run_dtm("init", "--data-dir", d)  # another database: this one is only for dtm.conf
    conf = (d / "dtm.conf").read_text()
    (d / "dtm.conf").write_text(conf + f"\n[store]\ndsn = {dsn}\n")
    results = []

    def one():
        results.append(subprocess.run([T.DTM_BIN, "system", "list", "--data-dir", str(d)],
                                      capture_output=True, text=True, timeout=60))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    # each step once: as many rows as distinct versions, and the newest is the count
    n, distinct, newest = psql(dsn, "SELECT count(*), count(DISTINCT version), max(version)"
                                    " FROM schema_version").split("|")
    assert n == distinct == newest, (n, distinct, newest)
    assert int(psql(dsn, "SELECT count(*) FROM pg_tables WHERE schemaname='public'")) >= 25


def test_password_file(tmp_path):
    """A role with a password and a server that asks for it: the password comes from
    [store] password_file, never from dtm.conf."""
    base = pgcluster.CLUSTER.base
    role, pw = T.uid("r").lower().replace("-", "_"), "Pw-" + T.uid("P")
    db = pgcluster.CLUSTER.new_database()
    name = db.split("dbname=")[1]
    # members of dtm_pw must give their password (pgcluster.py's pg_hba.conf)
    psql(base + " dbname=postgres", f"CREATE ROLE {role} LOGIN PASSWORD '{pw}' IN ROLE dtm_pw")
    psql(base + " dbname=postgres", f'ALTER DATABASE "{name}" OWNER TO {role}')
    d = tmp_path / "data"
    T.run_dtm("init", "--data-dir", d)
    (d / "pg.pass").write_text(pw + "\n")
    (d / "pg.pass").chmod(0o600)
    conf = (d / "dtm.conf").read_text()
    (d / "dtm.conf").write_text(conf + f"\n[store]\ndsn = {base.replace('user=postgres', '')} "
                                f"user={role} dbname={name}\npassword_file = pg.pass\n")
    p = T.run_dtm("system", "list", "--data-dir", d)
    assert pw not in p.stdout + p.stderr
    assert int(psql(db, "SELECT count(*) FROM schema_version")) >= 1
    # a wrong password is refused by the server, and not shown
    (d / "pg.pass").write_text("wrong-" + pw + "\n")
    p = T.run_dtm("system", "list", "--data-dir", d, check=False)
    assert p.returncode != 0 and "cannot connect to PostgreSQL at 127.0.0.1" in p.stderr, p.stderr
    assert "password authentication failed" in p.stderr and pw not in p.stderr
    # a missing password file is a clear error
    (d / "pg.pass").unlink()
    p = T.run_dtm("system", "list", "--data-dir", d, check=False)
    assert p.returncode != 0 and "password_file" in p.stderr, p.stderr
