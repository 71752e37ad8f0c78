"""Limits (CONTRACT §5): ≤ 10 000 records per request (exact counts at the limit), 413 for more
records or for a body over [ingest] max_body (default 32 MiB), whatever the framing."""

import json

import pytest
import requests

import dtmtest as T

MAX_RECORDS = 10_000
MAX_BODY = 32 * 1024 * 1024

pytestmark = pytest.mark.slow


def count_prefix(server, prefix):
    return len(T.stored_txn_ids(server.data_dir, prefix))


def small(prefix, i, **kw):
    return T.txn(txn_id=f"{prefix}-{i:05d}", **kw)


def test_10000_records_exact_counts(server, src):
    prefix = T.uid("BIG")
    recs = [small(prefix, i) for i in range(MAX_RECORDS)]
    r = server.ingest(src, recs, timeout=120)
    b = T.assert_ok(r)
    assert T.counts(b) == (MAX_RECORDS, 0, 0, 0), {k: b[k] for k in b if k != "errors"}
    assert count_prefix(server, prefix) == MAX_RECORDS
    rc = server.receipt(src, b["receipt"])
    assert rc.status_code == 200
    rcj = rc.json()
    assert rcj["accepted"] == MAX_RECORDS
    assert len(rcj["records"]) == MAX_RECORDS

    # 10 000 again: 9 900 new, 50 duplicates, 25 updates, 25 invalid — exact counts and indexes.
    prefix2 = T.uid("BIG2")
    mixed = []
    bad_idx = []
    for i in range(MAX_RECORDS):
        if i % 200 == 0:
            mixed.append(recs[i])                                   # duplicate (50)
        elif i % 200 == 1:
            mixed.append(dict(recs[i], response_ms=1))              # update (50)
        elif i % 400 == 2:
            mixed.append(small(prefix2, i, channel="carrier-pigeon"))  # invalid (25)
            bad_idx.append(i)
        else:
            mixed.append(small(prefix2, i))
    b2 = T.assert_ok(server.ingest(src, mixed, timeout=120))
    n_dup, n_upd, n_bad = 50, 50, 25
    assert T.counts(b2) == (MAX_RECORDS - n_dup - n_bad, n_dup, n_upd, n_bad), \
        {k: b2[k] for k in b2 if k != "errors"}
    assert sorted({e["index"] for e in b2["errors"]}) == bad_idx
    assert count_prefix(server, prefix2) == MAX_RECORDS - n_dup - n_upd - n_bad


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv", "xml"])
def test_10001_records_is_413(server, src, fmt):
    prefix = T.uid("OVER")
    recs = [small(prefix, i) for i in range(MAX_RECORDS + 1)]
    ct, body = T.encode(fmt, recs)
    r = server.ingest(src, None, data=body, headers={"Content-Type": ct}, timeout=120)
    T.assert_problem(r, 413)
    assert count_prefix(server, prefix) == 0, "a 413 request stored records"


@pytest.fixture(scope="module")
def big_body(tmp_path_factory):
    """One valid record padded with whitespace to just over 32 MiB (valid JSON: only the size
    is wrong)."""
    rec = T.txn(txn_id=T.uid("HUGE"))
    p = tmp_path_factory.mktemp("big") / "big.json"
    head = json.dumps([rec]).encode()
    with open(p, "wb") as f:
        f.write(head[:-1])
        f.write(b" " * (MAX_BODY + 1 - len(head)))
        f.write(b"]")
    assert p.stat().st_size == MAX_BODY + 1
    return p, rec


@pytest.mark.parametrize("mode", ["content-length", "no-expect", "chunked"])
def test_body_over_limit_is_413_curl(server, src, big_body, mode):
    path, rec = big_body
    args = ["-X", "POST", "-H", "Content-Type: application/json", "-H", f"X-API-Key: {src.api_key}",
            "--data-binary", f"@{path}", server.url("/api/v1/ingest/transactions")]
    if mode == "no-expect":
        args = ["-H", "Expect:"] + args
    elif mode == "chunked":
        args = ["-H", "Transfer-Encoding: chunked", "-H", "Expect:"] + args
    code, body, headers, rc, err = T.curl(*args, timeout=15)
    assert code == 413, f"curl ({mode}) got {code} rc={rc} {err} {body[:300]!r}"
    assert "application/problem+json" in headers.lower(), headers
    assert server.record(src, rec["txn_id"]).status_code == 404
    assert server.get("/healthz").status_code == 200


def test_body_just_under_limit_is_parsed(server, src):
    # A body of exactly 1 MiB is far under the limit and goes through normally.
    rec = T.txn()
    head = json.dumps([rec]).encode()
    body = head[:-1] + b" " * (1024 * 1024 - len(head)) + b"]"
    r = server.ingest(src, None, data=body, headers={"Content-Type": "application/json"})
    assert T.counts(T.assert_ok(r)) == (1, 0, 0, 0)


@pytest.mark.parametrize("listener", ["http", "https"])
def test_body_over_limit_is_413_requests(server, src, big_body, listener):
    """python-requests sends the whole body without `Expect: 100-continue`: the 413 must still
    reach it (the server has to read or drain the body before closing, as nginx's lingering
    close does), not a connection reset."""
    path, rec = big_body
    base = server.base_url if listener == "http" else server.https_url
    if not base:
        pytest.skip("no HTTPS listener known")
    if base.startswith("https://") != (listener == "https"):
        pytest.skip(f"the target server's base URL is not {listener}")
    s = T.new_session()
    try:
        r = s.post(base + "/api/v1/ingest/transactions", data=path.read_bytes(), timeout=60,
                   headers={"Content-Type": "application/json", "X-API-Key": src.api_key})
    except requests.RequestException as e:
        pytest.fail(f"no 413 received over {listener}, the connection failed instead: {e!r}")
    finally:
        s.close()
    T.assert_problem(r, 413)
    assert server.record(src, rec["txn_id"]).status_code == 404
