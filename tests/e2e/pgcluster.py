"""A throw-away PostgreSQL 15 cluster for the end-to-end suite on PostgreSQL (issue 9).

With DTM_TEST_STORE=postgresql, conftest.py starts one cluster for the session: `initdb` and
`pg_ctl` (as the `postgres` user when run as root — initdb refuses root) in a temporary
directory, listening on a free loopback port only, trust authentication (loopback, a throw-away
cluster). Every `dtm init` of the tests then gets a fresh database of its own
(dtmtest.run_dtm adds `--store-dsn`). The cluster is stopped and removed at the end.

DTM_TEST_PG_DSN instead names a running server to use (a libpq connection string of a role
that may CREATE DATABASE, without dbname): nothing is started then.

Speed (the suite runs `dtm init` a few hundred times): the session first migrates a template
database with the binary under test — schema only, checked to hold no row but the schema
version — and a thread keeps two copies of it made ahead (CREATE DATABASE … TEMPLATE), so a
test's `dtm init` neither waits for CREATE DATABASE nor runs the migrations.
"""

import atexit
import itertools
import os
import pwd
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

PG_BIN = os.environ.get("DTM_TEST_PG_BIN", "/usr/lib/postgresql/15/bin")


def enabled():
    return os.environ.get("DTM_TEST_STORE", "sqlite") == "postgresql"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, ssl_dir=None):
        """ssl_dir (test_pg_tls.py): a directory holding ca.pem, server.pem and server.key; the
        cluster is then always started here, with ssl=on and hostssl rules only (a connection
        without TLS is refused), client certificates checked against ca.pem, no template."""
        self.dir = None
        self.ssl_dir = ssl_dir
        self.base = None if ssl_dir else os.environ.get("DTM_TEST_PG_DSN")
        self._own = not self.base
        self._n = itertools.count(1)
        self._prefix = f"dtm_t{os.getpid()}_"
        self._tpl = None  # the migrated template database, when there is one
        self._pool = None  # names of copies of it made ahead (or an exception)
        self._stopping = threading.Event()
        self._paused = threading.Event()  # the server is stopped on purpose (stop_server)

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
            if self.ssl_dir:
                # TLS only: no `host` rule is left; dtm_pw's members give their password and a
                # client certificate whose CN is their name
                rules = "".join(r for r in rules.splitlines(True) if not r.startswith("host"))
                f.write("hostssl all +dtm_pw 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n"
                        "hostssl all all 127.0.0.1/32 trust\n" + rules)
            else:
                f.write("host all +dtm_pw 127.0.0.1/32 scram-sha-256\n" + rules)
        # fsync off: a throw-away cluster; the tests kill dtm, never the database's machine.
        # synchronous_commit stays on (the default): COMMIT returns once the commit is in the
        # WAL as PostgreSQL writes it, so a 2xx the durability tests see still means committed —
        # only the flush to the disk's platters is skipped, which no test can observe.
        opts = (f"-p {port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=400 "
                "-c fsync=off -c full_page_writes=off "
                # a small WAL: tests search the store's files (T.store_bytes, test_at_rest)
                "-c max_wal_size=64MB -c min_wal_size=32MB -c checkpoint_timeout=60s")
        if self.ssl_dir:
            # the server's copies, owned by the user it runs as (it refuses a key others read)
            for name in ("ca.pem", "server.pem", "server.key"):
                dst = os.path.join(self.dir, name)
                shutil.copyfile(os.path.join(self.ssl_dir, name), dst)
                os.chmod(dst, 0o600)
                if os.geteuid() == 0:
                    os.chown(dst, pw.pw_uid, pw.pw_gid)
            opts += (f" -c ssl=on -c ssl_cert_file={self.dir}/server.pem"
                     f" -c ssl_key_file={self.dir}/server.key -c ssl_ca_file={self.dir}/ca.pem")
        self._opts = opts
        self.start_server()
        self.base = f"host=127.0.0.1 port={port} user=postgres"
        if self.ssl_dir:
            self.base += f" sslmode=verify-full sslrootcert={self.ssl_dir}/ca.pem"
        subprocess.run(["psql", self.base + " dbname=postgres", "-qAtc",
                        "CREATE ROLE dtm_pw NOLOGIN"], check=True, capture_output=True, timeout=60)
        atexit.register(self.stop)  # also when pytest is interrupted
        if not self.ssl_dir:
            self._make_template()

    def _psql(self, sql, db="postgres"):
        return subprocess.run(["psql", f"{self.base} dbname={db}", "-X", "-qAt", "-v",
                               "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True,
                              text=True, timeout=60).stdout.strip()

    def _make_template(self):
        """Migrates a template database with the binary under test: a data dir made on a
        scratch database, its dtm.conf pointed at the template, and `dtm system list` (opening
        the store migrates it). Used only when it then holds no row but schema_version's."""
        dtm = os.environ.get("DTM_BIN") or os.path.join(os.path.dirname(__file__), "..", "..",
                                                         "build", "dtm")
        tpl = f"{self._prefix}tpl"
        self._psql(f'CREATE DATABASE "{tpl}"')
        with tempfile.TemporaryDirectory(prefix="dtm-tpl-") as d:
            data = os.path.join(d, "data")
            scratch = self.new_database()
            p = subprocess.run([dtm, "init", "--data-dir", data, "--store-dsn", scratch],
                               capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                return  # the tests say why, with their own `dtm init`
            with open(os.path.join(data, "dtm.conf"), "a") as f:
                f.write(f"\n[store]\ndsn = {self.base} dbname={tpl}\n")
            p = subprocess.run([dtm, "system", "list", "--data-dir", data],
                               capture_output=True, text=True, timeout=120)
            self._psql(f'DROP DATABASE "{scratch.split("dbname=")[1]}"')
            if p.returncode != 0:
                return
        counts = self._psql(
            "SELECT string_agg(format('SELECT %L, count(*) FROM %I.%I', relname, "
            "schemaname, relname), ' UNION ALL ') FROM pg_stat_user_tables", tpl)
        rows = [r.split("|") for r in self._psql(counts, tpl).splitlines()] if counts else []
        if any(int(n) and t != "schema_version" for t, n in rows):
            return  # opening the store wrote something of an installation: no template
        self._tpl = tpl
        self._pool = queue.Queue(maxsize=2)
        threading.Thread(target=self._fill, daemon=True, name="pg-template-copies").start()

    def _fill(self):
        failures = 0
        while not self._stopping.is_set():
            if self._paused.is_set():
                time.sleep(0.2)
                continue
            name = f"{self._prefix}{next(self._n)}"
            try:
                self._psql(f'CREATE DATABASE "{name}" TEMPLATE "{self._tpl}"')
                item, failures = name, 0
            except (subprocess.SubprocessError, OSError) as e:
                failures += 1
                if failures < 100 or self._paused.is_set():
                    time.sleep(0.2)
                    continue
                item = RuntimeError(f"CREATE DATABASE from the template fails: {e}")
            while not self._stopping.is_set():
                try:
                    self._pool.put(item, timeout=0.5)
                    break
                except queue.Full:
                    pass

    def start_server(self):
        """pg_ctl start (again, after stop_server): the same port and settings."""
        subprocess.run(self._as_owner([os.path.join(PG_BIN, "pg_ctl"), "-D",
                                       os.path.join(self.dir, "data"), "-l",
                                       os.path.join(self.dir, "log"), "-w", "-o", self._opts,
                                       "start"]),
                       check=True, capture_output=True, timeout=120)
        self._paused.clear()

    def stop_server(self):
        """pg_ctl stop -m fast: the database goes away under the servers (test_pg_outage.py);
        clients are disconnected, their open transactions rolled back."""
        if not self._own:
            raise RuntimeError("DTM_TEST_PG_DSN names a server this suite does not own")
        self._paused.set()
        subprocess.run(self._as_owner([os.path.join(PG_BIN, "pg_ctl"), "-D",
                                       os.path.join(self.dir, "data"), "-m", "fast", "-w",
                                       "stop"]),
                       check=True, capture_output=True, timeout=120)

    def new_database(self, migrated=False):
        """Creates an empty database; returns its DSN. migrated: one that holds dtm's schema
        and nothing else (a copy of the template made ahead) when there is a template — what
        `dtm init` makes of an empty one, without its migrations."""
        if migrated and self._pool is not None:
            item = self._pool.get(timeout=120)
            if isinstance(item, Exception):
                raise item
            return f"{self.base} dbname={item}"
        name = f"{self._prefix}{next(self._n)}"
        subprocess.run(["psql", self.base + " dbname=postgres", "-qAtc",
                        f'CREATE DATABASE "{name}"'], check=True, capture_output=True, timeout=60)
        return f"{self.base} dbname={name}"

    def stop(self):
        self._stopping.set()
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
