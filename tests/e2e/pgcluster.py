"""A throw-away PostgreSQL 15 cluster for the end-to-end suite on PostgreSQL (issue 9).

With DTM_TEST_STORE=postgresql, conftest.py starts one cluster for the session: `initdb` and
`pg_ctl` (as the `postgres` user when run as root — initdb refuses root) in a temporary
directory, listening on a free loopback port only, trust authentication (loopback, a throw-away
cluster). Every `dtm init` of the tests then gets a fresh database of its own
(dtmtest.run_dtm adds `--store-dsn`). The cluster is stopped and removed at the end.

DTM_TEST_PG_DSN instead names a running server to use (a libpq connection string of a role
that may CREATE DATABASE, without dbname): nothing is started then.
"""

import atexit
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile

PG_BIN = os.environ.get("DTM_TEST_PG_BIN", "/usr/lib/postgresql/15/bin")


def enabled():
    return os.environ.get("DTM_TEST_STORE", "sqlite") == "postgresql"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self):
        self.dir = None
        self.base = os.environ.get("DTM_TEST_PG_DSN")
        self._own = not self.base
        self._n = itertools.count(1)
        self._prefix = f"dtm_t{os.getpid()}_"

    def _as_owner(self, argv):
        # initdb refuses root: run the server's tools as the postgres user
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--"] + argv
        return argv

    def start(self):
        if not self._own:
            return
        if not os.path.exists(os.path.join(PG_BIN, "initdb")):
            raise RuntimeError(f"PostgreSQL 15 not found in {PG_BIN} (scripts/deps.sh installs "
                               "postgresql-15)")
        self.dir = tempfile.mkdtemp(prefix="dtm-pg-")
        os.chmod(self.dir, 0o700)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        port = _free_port()
        data = os.path.join(self.dir, "data")
        subprocess.run(self._as_owner([os.path.join(PG_BIN, "initdb"), "-D", data, "-A", "trust",
                                       "-U", "postgres", "-E", "UTF8", "--locale=C"]),
                       check=True, capture_output=True, timeout=120)
        # members of dtm_pw must give their password (test_pg.py: [store] password_file)
        hba = os.path.join(data, "pg_hba.conf")
        with open(hba) as f:
            rules = f.read()
        with open(hba, "w") as f:
            f.write("host all +dtm_pw 127.0.0.1/32 scram-sha-256\n" + rules)
        # fsync off: a throw-away cluster; the tests kill dtm, never the database's machine
        opts = (f"-p {port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=400 "
                "-c fsync=off -c full_page_writes=off "
                # a small WAL: tests search the store's files (T.store_bytes, test_at_rest)
                "-c max_wal_size=64MB -c min_wal_size=32MB -c checkpoint_timeout=60s")
        subprocess.run(self._as_owner([os.path.join(PG_BIN, "pg_ctl"), "-D", data, "-l",
                                       os.path.join(self.dir, "log"), "-w", "-o", opts, "start"]),
                       check=True, capture_output=True, timeout=120)
        self.base = f"host=127.0.0.1 port={port} user=postgres"
        subprocess.run(["psql", self.base + " dbname=postgres", "-qAtc",
                        "CREATE ROLE dtm_pw NOLOGIN"], check=True, capture_output=True, timeout=60)
        atexit.register(self.stop)  # also when pytest is interrupted

    def new_database(self):
        """Creates an empty database; returns its DSN."""
        name = f"{self._prefix}{next(self._n)}"
        subprocess.run(["psql", self.base + " dbname=postgres", "-qAtc",
                        f'CREATE DATABASE "{name}"'], check=True, capture_output=True, timeout=60)
        return f"{self.base} dbname={name}"

    def stop(self):
        if not self._own or not self.dir:
            return
        subprocess.run(self._as_owner([os.path.join(PG_BIN, "pg_ctl"), "-D",
                                       os.path.join(self.dir, "data"), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


CLUSTER = Cluster() if enabled() else None


def dsn_of(data_dir):
    """The [store] dsn that `dtm init --store-dsn` wrote into the data dir's dtm.conf."""
    from pathlib import Path
    dsn = None
    for line in (Path(data_dir) / "dtm.conf").read_text().splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip() == "dsn" and v.strip():
            dsn = v.strip()
    if not dsn:
        raise RuntimeError(f"{data_dir}/dtm.conf names no PostgreSQL dsn")
    return dsn


class _Rows:
    def __init__(self, rows):
        self._rows = rows

    def fetchall(self):
        return list(self._rows)

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def __iter__(self):
        return iter(self._rows)


def _value(v):
    # BYTEA comes back from json as "\\x…" hex text
    if isinstance(v, str) and v.startswith("\\x"):
        try:
            return bytes.fromhex(v[2:])
        except ValueError:
            return v
    return v


class PgCon:
    """What the tests do with sqlite3.connect(dtm.db) — execute(sql, params), fetchall,
    fetchone, iterate, commit, close — done with the psql client on the data dir's PostgreSQL
    database. `?` placeholders become psql variables (quoted by psql; bytes as hex, decoded in
    SQL); a SELECT comes back through json_agg, so integers, text and BYTEA keep their types."""

    def __init__(self, dsn):
        self.dsn = dsn
        self.row_factory = None  # as sqlite3's: f(cursor, row) with cursor.description

    def execute(self, sql, params=()):
        import json
        args, parts = [], sql.split("?")
        if len(parts) - 1 != len(params):
            raise ValueError(f"{len(parts) - 1} placeholders, {len(params)} parameters: {sql}")
        text = parts[0]
        for i, (p, rest) in enumerate(zip(params, parts[1:])):
            name = f"p{i}"
            if p is None:
                text += "NULL"
            elif isinstance(p, (bytes, bytearray, memoryview)):
                args += ["-v", f"{name}={bytes(p).hex()}"]
                text += f"decode(:'{name}','hex')"
            elif isinstance(p, bool) or isinstance(p, int):
                text += str(int(p))
            else:
                args += ["-v", f"{name}={p}"]
                text += f":'{name}'"
            text += rest
        # the SQLite functions the tests use, in PostgreSQL's words
        text = re.sub(r"\bzeroblob\((\d+)\)", r"decode(repeat('00', \1), 'hex')", text)
        text = re.sub(r"\bhex\((\w+)\)", r"upper(encode(\1, 'hex'))", text)
        query = text.strip().rstrip(";")
        select = query.split(None, 1)[0].upper() in ("SELECT", "WITH", "VALUES")
        if select:
            query = f"SELECT coalesce(json_agg(t), '[]') FROM ({query}) t"
        p = subprocess.run(["psql", self.dsn, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            *args], input=query + ";\n", capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"psql: {p.stderr.strip()} in: {query}")
        if not select:
            return _Rows([])
        rows = json.loads(p.stdout.strip() or "[]")
        out = [tuple(_value(v) for v in r.values()) for r in rows]
        if self.row_factory and rows:
            cur = type("Cursor", (), {"description": [(k,) for k in rows[0]]})()
            out = [self.row_factory(cur, r) for r in out]
        return _Rows(out)

    def commit(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
