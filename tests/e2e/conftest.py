"""pytest fixtures of the end-to-end suite.

- `server` (per test module): a fresh data dir (`dtm init`) and `dtm serve` on free loopback
  ports (HTTP and HTTPS), its stderr captured to a file; stopped with SIGTERM at the end of the
  module, and the exit status must be 0.  With DTM_URL (+ DTM_DATA_DIR) set, the tests target
  that already running server instead and nothing is started.
- `own_server` (per test): a factory for servers the test starts, signals, kills and restarts
  itself; such tests are skipped against an external server.
- `sys_factory`: registers connected systems on the server's data dir with `dtm system add`.

Run from the repo root with Debian's interpreter:  /usr/bin/python3 -m pytest tests/e2e
The binary is $DTM_BIN, default build/dtm.
"""

import os
import signal
from pathlib import Path

import pytest

import dtmtest as T
import pgcluster


@pytest.fixture(scope="session", autouse=True)
def postgresql_cluster():
    """DTM_TEST_STORE=postgresql: one throw-away PostgreSQL cluster for the session
    (pgcluster.py); every `dtm init` gets a database of its own."""
    if not pgcluster.CLUSTER:
        yield None
        return
    pgcluster.CLUSTER.start()
    yield pgcluster.CLUSTER
    pgcluster.CLUSTER.stop()


# Tests that read the bytes of dtm.db itself, in modules whose owners have not marked them yet
# (T.store_bytes(data_dir) reads the store's files on either backend). None left.
SQLITE_ONLY = ()


def pytest_collection_modifyitems(config, items):
    # tests that read the SQLite files of the data dir directly cannot run on PostgreSQL
    if not pgcluster.enabled():
        return
    skip = pytest.mark.skip(reason="sqlite_only: reads the SQLite database files directly; the "
                            "store is PostgreSQL (DTM_TEST_STORE=postgresql)")
    for item in items:
        if item.get_closest_marker("sqlite_only") or item.nodeid.endswith(SQLITE_ONLY):
            item.add_marker(skip)


def pytest_report_header(config):
    if T.EXTERNAL_URL:
        return f"dtm: external server {T.EXTERNAL_URL} data dir {T.EXTERNAL_DATA_DIR}"
    return f"dtm: binary {T.DTM_BIN}"


@pytest.fixture(scope="session")
def dtm_bin():
    if not (os.path.isfile(T.DTM_BIN) and os.access(T.DTM_BIN, os.X_OK)):
        pytest.fail(f"dtm binary not found at {T.DTM_BIN} (build it with `make`, or set DTM_BIN)",
                    pytrace=False)
    return T.DTM_BIN


@pytest.fixture(scope="session")
def external():
    return bool(T.EXTERNAL_URL)


def _external_server():
    if not T.EXTERNAL_DATA_DIR:
        pytest.fail("DTM_URL is set but DTM_DATA_DIR is not", pytrace=False)
    base = T.EXTERNAL_URL.rstrip("/")
    https = T.EXTERNAL_HTTPS_URL or (base if base.startswith("https://") else None)
    return T.DtmServer(T.EXTERNAL_DATA_DIR, base_url=base, https_url=https,
                       log_path=T.EXTERNAL_LOG)


@pytest.fixture(scope="module")
def server(dtm_bin, tmp_path_factory):
    """The module's server: fresh data dir, HTTP + HTTPS on free loopback ports."""
    if T.EXTERNAL_URL:
        yield _external_server()
        return
    root = tmp_path_factory.mktemp("dtm")
    data_dir = root / "data"
    admin = T.dtm_init(str(data_dir))
    srv = T.DtmServer(data_dir, log_path=root / "serve.stderr.log")
    srv.admin = admin
    srv.start()
    try:
        yield srv
    finally:
        rc = srv.stop()
        assert rc == 0, f"dtm serve exited with {rc} after SIGTERM; log:\n{srv.log_tail()}"


@pytest.fixture
def own_server(dtm_bin, tmp_path):
    """Factory: own_server(data_dir=None, https=True) → a started DtmServer on a fresh (or the
    given) data dir. Anything still running at the end of the test is killed."""
    if T.EXTERNAL_URL:
        pytest.skip("needs its own server process (DTM_URL targets an external one)")
    started = []

    def make(data_dir=None, https=True, start=True, extra_args=()):
        if data_dir is None:
            data_dir = tmp_path / f"data{len(started)}"
            admin = T.dtm_init(str(data_dir))
        else:
            admin = None
        srv = T.DtmServer(data_dir, log_path=Path(str(data_dir) + ".stderr.log"))
        srv.admin = admin
        started.append(srv)
        if start:
            srv.start(https=https, extra_args=extra_args)
        return srv

    yield make
    for s in started:
        if s.proc is not None and s.proc.poll() is None:
            s.proc.send_signal(signal.SIGKILL)
            s.proc.wait()
        s._close()


class SystemFactory:
    def __init__(self, srv):
        self.srv = srv
        self._default = None

    def add(self, **kw):
        return self.srv.add_system(**kw)

    @property
    def default(self):
        """One `source` system shared by the tests of a module that need any caller."""
        if self._default is None:
            self._default = self.add()
        return self._default


@pytest.fixture(scope="module")
def sys_factory(server):
    return SystemFactory(server)


@pytest.fixture(scope="module")
def src(sys_factory):
    """A `source` system of the module's server."""
    return sys_factory.default


@pytest.fixture
def needs_log(server):
    if not server.log_path:
        pytest.skip("the server's stderr log is not known (set DTM_LOG)")
    return server


@pytest.fixture
def needs_https(server):
    if not server.https_url:
        pytest.skip("no HTTPS listener known (set DTM_HTTPS_URL)")
    return server
