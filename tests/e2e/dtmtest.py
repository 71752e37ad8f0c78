"""Helpers shared by the end-to-end tests: running the `dtm` CLI, starting and stopping
`dtm serve`, talking to it with `requests` and the `curl` CLI, building valid records, and
reading the data dir's SQLite database read-only.

Everything here talks to the real binary over real sockets (STYLE.md, Tests).
"""

import json
import os
import random
import re
import signal
import socket
import sqlite3
import string
import subprocess
import time
from pathlib import Path

import requests
import urllib3

import pgcluster

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

REPO = Path(__file__).resolve().parents[2]
DTM_BIN = os.environ.get("DTM_BIN") or str(REPO / "build" / "dtm")

# Targeting an already running server (Redis's --host/--port): DTM_URL is its base URL
# (http:// or https://), DTM_DATA_DIR its data dir (for the CLI and the database checks).
# DTM_HTTPS_URL optionally names its TLS listener, DTM_LOG the file its stderr goes to.
EXTERNAL_URL = os.environ.get("DTM_URL")
EXTERNAL_DATA_DIR = os.environ.get("DTM_DATA_DIR")
EXTERNAL_HTTPS_URL = os.environ.get("DTM_HTTPS_URL")
EXTERNAL_LOG = os.environ.get("DTM_LOG")

PROBLEM_CT = "application/problem+json"
TIMEOUT = 30  # seconds, per HTTP request


# ---------------------------------------------------------------------------------------------
# small utilities


def free_port():
    """A currently free TCP port on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uid(prefix="T"):
    """A unique identifier usable as txn_id (letters, digits and '-')."""
    return prefix + "-" + "".join(random.choices(string.ascii_uppercase + string.digits, k=12))


def system_code(prefix="S"):
    """A unique system code (upper-case letters and digits)."""
    return prefix + "".join(random.choices(string.ascii_uppercase + string.digits, k=8))


def citizen_id():
    """A random 12-digit citizen id that is very unlikely to appear anywhere by chance."""
    return str(random.randrange(10**11, 10**12))


def masked_partial(v):
    """CONTRACT §4, mask `partial`: first 4 and last 2 characters kept, '*' between."""
    return v[:4] + "*" * (len(v) - 6) + v[-2:]


def txn(**overrides):
    """A valid `transactions` record (the example of the brief), with a unique txn_id.
    A key set to None is removed."""
    r = {
        "txn_id": uid("T"),
        "service_code": "SV01",
        "channel": "web",
        "status": "success",
        "started_at": "2026-11-20T10:00:00+07:00",
        "finished_at": "2026-11-20T10:00:01+07:00",
        "response_ms": 850,
        "citizen_id": citizen_id(),
        "amount": "150000",
        "region_code": "HN",
        "agency_code": "BO-KHCN",
        "priority": "normal",
        "classification": "internal",
    }
    r.update(overrides)
    return {k: v for k, v in r.items() if v is not None}


def parse_kv(text):
    """`name: value` lines (CONTRACT §1) → dict."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*):\s?(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def wait_for(pred, timeout=5.0, interval=0.05):
    """Polls pred() until it returns a truthy value or timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# the CLI


def run_dtm(*args, check=True, timeout=60, input=None):
    """Runs `dtm ARGS…`; returns the CompletedProcess (text). check=True asserts exit 0.
    On PostgreSQL (DTM_TEST_STORE=postgresql), `dtm init` gets a fresh database (pgcluster), and
    `dtm restore` and `dtm drill` an empty one (--store-dsn) unless the test names one."""
    if args and args[0] == "init" and pgcluster.CLUSTER and "--help" not in args:
        args = (*args, "--store-dsn", pgcluster.CLUSTER.new_database(migrated=True))
    # a PostgreSQL backup is restored into an empty database (the drill's into a scratch one)
    if (args and args[0] in ("restore", "drill") and pgcluster.CLUSTER and "--help" not in args
            and "--store-dsn" not in args):
        args = (*args, "--store-dsn", pgcluster.CLUSTER.new_database())
    p = subprocess.run([DTM_BIN, *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, input=input)
    if check:
        assert p.returncode == 0, (
            f"dtm {' '.join(map(str, args))} exited {p.returncode}\n"
            f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def dtm_init(data_dir, json_out=False):
    """`dtm init --data-dir D`; returns {"admin_username", "admin_password"}."""
    args = ["init", "--data-dir", data_dir] + (["--json"] if json_out else [])
    p = run_dtm(*args)
    return json.loads(p.stdout) if json_out else parse_kv(p.stdout)


class System:
    """A connected system registered with `dtm system add`."""

    def __init__(self, code, info, role, parent=None, masked=False):
        self.code = code
        self.role = role
        self.parent = parent
        self.masked = masked
        self.key_id = info.get("key_id")
        self.api_key = info.get("api_key")
        self.client_id = info.get("client_id")
        self.client_secret = info.get("client_secret")
        self.info = info

    @property
    def headers(self):
        return {"X-API-Key": self.api_key}

    def __repr__(self):
        return f"<System {self.code} {self.role}>"


def add_system(data_dir, code=None, name=None, role="source", parent=None, masked=False,
               org="Bo KH&CN"):
    code = code or system_code()
    args = ["system", "add", "--data-dir", data_dir, "--code", code,
            "--name", name or f"He thong {code}", "--org", org, "--role", role, "--json"]
    if parent:
        args += ["--parent", parent]
    if masked:
        args += ["--masked"]
    p = run_dtm(*args)
    info = json.loads(p.stdout)
    assert info.get("api_key"), f"system add printed no api_key: {p.stdout!r}"
    return System(code, info, role, parent, masked)


# ---------------------------------------------------------------------------------------------
# the server


class DtmServer:
    """One `dtm serve` process (owned) or an already running server (external)."""

    def __init__(self, data_dir, base_url=None, https_url=None, log_path=None):
        self.data_dir = Path(data_dir)
        self.proc = None
        self.http_port = None
        self.https_port = None
        self.base_url = base_url
        self.https_url = https_url
        self.log_path = Path(log_path) if log_path else None
        self.external = base_url is not None
        self.session = new_session()
        self.returncodes = []

    # -- lifecycle (owned servers only)
    def start(self, https=True, extra_args=(), ready_timeout=20):
        assert not self.external
        if self.http_port is None:
            self.http_port = free_port()
            self.https_port = free_port() if https else None
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        self.https_url = f"https://127.0.0.1:{self.https_port}" if self.https_port else None
        if self.log_path is None:
            self.log_path = self.data_dir.parent / (self.data_dir.name + ".stderr.log")
        args = [DTM_BIN, "serve", "--data-dir", str(self.data_dir),
                "--http", f"127.0.0.1:{self.http_port}",
                "--https", f"127.0.0.1:{self.https_port}" if self.https_port else "off",
                *extra_args]
        # Appending keeps the log of earlier runs on the same data dir (restarts).
        self._log_f = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log_f, stderr=self._log_f,
                                     stdin=subprocess.DEVNULL)
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"dtm serve exited with {self.proc.returncode} before it was ready; log:\n"
                    + self.log_tail())
            try:
                r = self.session.get(self.base_url + "/healthz", timeout=2)
                if r.status_code == 200:
                    return
                last = f"status {r.status_code}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError(f"dtm serve not ready after {timeout}s ({last}); log:\n"
                             + self.log_tail())

    def signal(self, sig):
        assert self.proc is not None and self.proc.poll() is None, "server is not running"
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = f"still running {timeout}s after SIGTERM (killed)"
        self._close()
        return rc

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._close()

    def _close(self):
        if self.proc is not None:
            self.returncodes.append(self.proc.returncode)
        self.proc = None
        f = getattr(self, "_log_f", None)
        if f:
            f.close()
            self._log_f = None
        self.session.close()
        self.session = new_session()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    # -- the log
    def log_text(self):
        if not self.log_path or not self.log_path.exists():
            return ""
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def log_bytes(self):
        if not self.log_path or not self.log_path.exists():
            return b""
        return self.log_path.read_bytes()

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    # -- HTTP
    def url(self, path):
        return self.base_url + path

    def request(self, method, path, **kw):
        kw.setdefault("timeout", TIMEOUT)
        return self.session.request(method, self.url(path), **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def ingest(self, system, records, dataset="transactions", params=None, headers=None,
               **kw):
        """POST /api/v1/ingest/{dataset} with JSON (records: a dict or a list) or, when
        `data` is given in kw, that body with the given headers."""
        h = dict(system.headers) if system is not None else {}
        if headers:
            h.update(headers)
        if "data" in kw:
            return self.post(f"/api/v1/ingest/{dataset}", params=params, headers=h, **kw)
        return self.post(f"/api/v1/ingest/{dataset}", params=params, headers=h,
                         json=records, **kw)

    def record(self, system, txn_id, sys_code=None, dataset="transactions"):
        params = {"txn_id": txn_id}
        if sys_code is not None:
            params["system_code"] = sys_code
        return self.get(f"/api/v1/datasets/{dataset}/record", params=params,
                        headers=system.headers)

    def receipt(self, system, rid):
        return self.get(f"/api/v1/receipts/{rid}", headers=system.headers)

    # -- the CLI on this data dir
    def dtm(self, *args, **kw):
        return run_dtm(*args, **kw)

    def add_system(self, **kw):
        return add_system(str(self.data_dir), **kw)

    # -- the database, read-only
    def db(self):
        return open_db(self.data_dir)


def new_session():
    s = requests.Session()
    s.trust_env = False  # never a proxy for loopback
    s.verify = False     # the self-signed certificate of the data dir
    return s


def open_db(data_dir):
    """The data dir's SQLite database, opened read-only (the server may be running). On
    PostgreSQL (DTM_TEST_STORE=postgresql): its database through psql (pgcluster.PgCon)."""
    if pgcluster.enabled():
        return pgcluster.PgCon(pgcluster.dsn_of(data_dir))
    path = Path(data_dir) / "dtm.db"
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    con.execute("PRAGMA busy_timeout = 10000")
    return con


def open_cubes(data_dir):
    """The rollups: SQLite keeps them in dtm.cubes.db (read-write here: no server running);
    PostgreSQL in the store's database."""
    if pgcluster.enabled():
        return open_db(data_dir)
    return sqlite3.connect(str(Path(data_dir) / "dtm.cubes.db"))


def store_bytes(data_dir):
    """The bytes of the store's files, to search for what must never be there in clear: dtm.db,
    or on PostgreSQL the files of the test's database and the cluster's WAL (committed rows are
    there at once, before a checkpoint writes the tables)."""
    if not pgcluster.enabled():
        return (Path(data_dir) / "dtm.db").read_bytes()
    files = [p for d in store_dirs(data_dir) for p in Path(d).rglob("*") if p.is_file()]
    return b"".join(p.read_bytes() for p in files)


def store_dirs(data_dir):
    """Where the store keeps data outside the data dir: nothing for SQLite; on PostgreSQL the
    directory of the test's database and the cluster's WAL."""
    if not pgcluster.enabled():
        return []
    con = open_db(data_dir)
    (oid,) = con.execute("SELECT oid FROM pg_database WHERE datname=current_database()").fetchone()
    root = Path(pgcluster.CLUSTER.dir) / "data"
    return [str(root / "base" / str(oid)), str(root / "pg_wal")]


# ---- encryption at rest (T4.2): record content is sealed with AES-256-GCM under data keys
# wrapped by the master key (gate/datakey.c). These helpers open it the way the server does,
# from the files alone (an independent implementation of the format).


def master_kek(path):
    """The key-encryption key of a master key file (32 bytes before T4.2, else "DTK1" | KEK |
    sealed root)."""
    b = Path(path).read_bytes()
    if len(b) == 32:
        return b
    assert len(b) == 96 and b[:4] == b"DTK1", f"unexpected master key format ({len(b)} bytes)"
    return b[4:36]


def kek_id(kek):
    import hashlib
    import hmac
    return hmac.new(kek, b"dtm kek id v1", hashlib.sha256).hexdigest()[:16]


def unwrap_data_keys(con, keks):
    """data key id → key, unwrapped with the KEKs given (kek_id → KEK)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    out = {}
    for kid, wrapped, kek in con.execute("SELECT id, wrapped, kek_id FROM data_keys"):
        aad = b"dtm data key v1" + int(kid).to_bytes(4, "big")
        out[kid] = AESGCM(keks[kek]).decrypt(bytes(wrapped[:12]), bytes(wrapped[12:]), aad)
    return out


def data_keys(data_dir, con):
    keks = {}
    for name in ("master.key", "master.key.next"):
        p = Path(data_dir) / name
        if p.exists():
            k = master_kek(p)
            keks[kek_id(k)] = k
    return unwrap_data_keys(con, keks)


def open_sealed(keys, blob, aad):
    """The plaintext of a sealed blob (version 1 | key id | nonce | ciphertext | tag); content
    stored before T4.2 (plain JSON) as is."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    blob, aad = bytes(blob), bytes(aad)
    if blob[:1] != b"\x01":
        return blob
    kid = int.from_bytes(blob[1:5], "big")
    return AESGCM(keys[kid]).decrypt(blob[5:17], blob[17:], aad)


def stored_contents(data_dir, dataset=None):
    """Stored JSON of the current records (of one dataset, or all), opened and parsed."""
    return [json.loads(t) for t in stored_texts(data_dir, dataset)]


def stored_texts(data_dir, dataset=None):
    """Stored JSON texts of the current records (of one dataset, or all), opened."""
    con = open_db(data_dir)
    try:
        keys = data_keys(data_dir, con)
        if dataset:
            rows = con.execute("SELECT content, key_hash FROM records WHERE ds=(SELECT id FROM "
                               "dataset_ids WHERE code=?)", (dataset,)).fetchall()
        else:
            rows = con.execute("SELECT content, key_hash FROM records").fetchall()
    finally:
        con.close()
    return [open_sealed(keys, c, kh).decode("utf-8") for (c, kh) in rows]


def stored_containing(data_dir, needle):
    """Stored JSON (records.content, opened), parsed, of the rows whose content contains
    needle."""
    return [json.loads(t) for t in stored_texts(data_dir) if needle in t]


def stored_by_txn(data_dir, txn_id):
    """Stored rows of a txn_id (current version, and older ones if the table keeps them)."""
    return [r for r in stored_containing(data_dir, txn_id) if r.get("txn_id") == txn_id]


def stored_txn_ids(data_dir, prefix):
    """txn_id → number of stored rows, for txn_ids starting with prefix."""
    ids = {}
    for r in stored_containing(data_dir, prefix):
        t = r.get("txn_id", "")
        if t.startswith(prefix):
            ids[t] = ids.get(t, 0) + 1
    return ids


# ---------------------------------------------------------------------------------------------
# assertions


def assert_problem(r, status, code=None):
    """An RFC 9457 problem with the given status; returns the parsed body."""
    assert r.status_code == status, (
        f"expected {status}, got {r.status_code}: {r.text[:600]}")
    ct = r.headers.get("Content-Type", "")
    assert ct.split(";")[0].strip() == PROBLEM_CT, f"Content-Type {ct!r}, body {r.text[:300]}"
    body = r.json()
    for m in ("type", "title", "status", "detail"):
        assert m in body, f"problem without {m!r}: {body}"
    assert body["status"] == status, body
    if code is not None:
        codes = [e.get("code") for e in body.get("errors", [])]
        assert code in codes, f"expected an error with code {code!r}, got {body}"
    return body


def assert_ok(r):
    """200 with the ingest answer; returns the parsed body."""
    assert r.status_code == 200, f"expected 200, got {r.status_code}: {r.text[:800]}"
    ct = r.headers.get("Content-Type", "")
    assert ct.split(";")[0].strip() == "application/json", ct
    body = r.json()
    for m in ("accepted", "duplicates", "updated", "rejected", "errors", "receipt"):
        assert m in body, f"ingest answer without {m!r}: {body}"
    return body


def counts(body):
    return (body["accepted"], body["duplicates"], body["updated"], body["rejected"])


def check_error_items(errors):
    for e in errors:
        for m in ("index", "field", "code", "message"):
            assert m in e, f"error item without {m!r}: {e}"
        assert isinstance(e["index"], int), e


# ---------------------------------------------------------------------------------------------
# curl, a real client


def curl(*args, timeout=60):
    """Runs curl (no proxy, silent, -k for the self-signed certificate); returns (http_code:int, body:bytes, headers:str,
    exit_status:int, stderr:str). http_code is 0 when no HTTP answer was received."""
    import tempfile
    with tempfile.NamedTemporaryFile() as body_f, tempfile.NamedTemporaryFile() as hdr_f:
        cmd = ["curl", "--noproxy", "*", "-k", "-sS", "-o", body_f.name, "-D", hdr_f.name,
               "-w", "%{http_code}", "--max-time", str(timeout), *map(str, args)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
        code = int(p.stdout.strip() or 0) if p.stdout.strip().isdigit() else 0
        return code, Path(body_f.name).read_bytes(), Path(hdr_f.name).read_text(
            errors="replace"), p.returncode, p.stderr


def files_containing(root, needle: bytes):
    """Files under root whose bytes contain needle."""
    hits = []
    for p in Path(root).rglob("*"):
        if p.is_file():
            try:
                if needle in p.read_bytes():
                    hits.append(str(p))
            except OSError:
                pass
    return hits


# ---------------------------------------------------------------------------------------------
# bodies in the four formats of CONTRACT §5


def body_json(records):
    return json.dumps(records, ensure_ascii=False).encode("utf-8")


def body_ndjson(records):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def body_xml(records):
    from xml.sax.saxutils import escape
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<records>\n']
    for r in records:
        out.append("  <record>")
        for k, v in r.items():
            out.append(f"<{k}>{escape(str(v))}</{k}>")
        out.append("</record>\n")
    out.append("</records>\n")
    return "".join(out).encode("utf-8")


def body_csv(records, lineterminator="\r\n"):
    import csv
    import io
    cols = []
    for r in records:
        for k in r:
            if k not in cols:
                cols.append(k)
    s = io.StringIO()
    w = csv.DictWriter(s, fieldnames=cols, lineterminator=lineterminator)
    w.writeheader()
    for r in records:
        w.writerow({k: str(v) for k, v in r.items()})
    return s.getvalue().encode("utf-8")


FORMATS = {
    "json": ("application/json", body_json),
    "ndjson": ("application/x-ndjson", body_ndjson),
    "xml": ("application/xml", body_xml),
    "csv": ("text/csv", body_csv),
}


def encode(fmt, records):
    """(content_type, body bytes) of records in one of the four formats."""
    ct, f = FORMATS[fmt]
    return ct, f(records)


def _norm(v):
    """A value in a comparable form: numbers as Decimal, RFC 3339 times as aware datetimes."""
    from datetime import datetime
    from decimal import Decimal, InvalidOperation
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return Decimal(str(v))
    if isinstance(v, str):
        if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", v):
            try:
                return Decimal(v)
            except InvalidOperation:
                pass
        if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)", v):
            return datetime.fromisoformat(v.replace("Z", "+00:00"))
    return v


def assert_same_record(sent, stored, masked=("citizen_id",)):
    """Every field sent is stored with the same value (up to canonical number/time forms);
    personal fields are stored masked."""
    for k, v in sent.items():
        assert k in stored, f"field {k} missing in the stored record {stored}"
        if k in masked:
            assert stored[k] == masked_partial(str(v)), (k, v, stored[k])
        else:
            assert _norm(stored[k]) == _norm(v), f"{k}: sent {v!r}, stored {stored[k]!r}"
