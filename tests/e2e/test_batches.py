"""Batch receiving (CONTRACT §5 "Batch", issue 3): POST /api/v1/batches in every format and gzip,
exact counts and rejected rows, the listing, permissions, cancel, priority, two batches with
realtime traffic alongside, and a batch that resumes after kill -9 without storing a row twice.
"""

import csv
import gzip
import io
import json
import os
import re
import threading
import time

import pytest

import dtmtest as T

FINAL = ("done", "failed", "cancelled")


def ok(r, status=200):
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:600]}"
    return r.json()


def problem(r, status, code=None):
    """An RFC 9457 problem with this status and, when given, type urn:dtm:problem:CODE."""
    body = T.assert_problem(r, status)
    if code:
        assert body["type"] == f"urn:dtm:problem:{code}", body
    return body


def post_batch(srv, system, body, ctype="application/x-ndjson", dataset="transactions",
               params=None, headers=None):
    h = dict(system.headers)
    h["Content-Type"] = ctype
    h.update(headers or {})
    q = {"dataset": dataset}
    q.update(params or {})
    return srv.post("/api/v1/batches", params=q, data=body, headers=h, timeout=120)


def get_batch(srv, system, bid):
    return ok(srv.get(f"/api/v1/batches/{bid}", headers=system.headers))


def wait_final(srv, system, bid, timeout=120):
    b = T.wait_for(lambda: (lambda x: x if x["status"] in FINAL else None)(
        get_batch(srv, system, bid)), timeout=timeout, interval=0.1)
    assert b, f"batch {bid} not final after {timeout}s: {get_batch(srv, system, bid)}"
    return b


def submit(srv, system, body, **kw):
    r = post_batch(srv, system, body, **kw)
    assert r.status_code == 202, r.text
    b = r.json()
    assert b["status"] == "queued" and b["id"]
    assert r.headers["Location"] == f"/api/v1/batches/{b['id']}"
    return b["id"]


def ndjson(records):
    return ("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n").encode()


def csv_body(records, fields):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(fields)
    for r in records:
        w.writerow([r.get(f, "") for f in fields])
    return out.getvalue().encode()


def xml_body(records):
    from xml.sax.saxutils import escape
    parts = ["<?xml version='1.0' encoding='UTF-8'?><records>"]
    for r in records:
        parts.append("<record>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in r.items())
                     + "</record>")
    parts.append("</records>")
    return "".join(parts).encode()


def mixed_rows(prefix, n=300):
    """n rows: every 10th invalid (failed without error_code), every 15th a duplicate of the
    row before it (identical). Returns (rows, expected) with the exact counts and error rows."""
    rows, bad, dups, keys = [], [], 0, set()
    for i in range(n):
        if i % 15 == 14:
            rows.append(dict(rows[-1]))
            if rows[-1].get("status") != "failed" or rows[-1].get("error_code"):
                dups += 1
            else:
                bad.append(i)
            continue
        r = T.txn(txn_id=f"{prefix}-{i}")
        if i % 10 == 3:
            r["status"] = "failed"
            r.pop("error_code", None)
            bad.append(i)
        else:
            keys.add(r["txn_id"])
        rows.append(r)
    return rows, {"total": n, "accepted": len(keys), "duplicates": dups, "rejected": len(bad),
                  "bad_rows": bad}


@pytest.mark.parametrize("fmt", ["ndjson", "json", "csv", "xml", "ndjson.gz", "csv.gz"])
def test_every_format_and_gzip(server, src, fmt):
    prefix = T.uid("BF")
    rows, exp = mixed_rows(prefix)
    fields = ["txn_id", "service_code", "channel", "status", "error_code", "started_at",
              "finished_at", "response_ms", "citizen_id", "amount", "region_code"]
    base = fmt.replace(".gz", "")
    body, ctype = {
        "ndjson": (lambda: ndjson(rows), "application/x-ndjson"),
        "json": (lambda: json.dumps(rows).encode(), "application/json"),
        "csv": (lambda: csv_body(rows, fields), "text/csv"),
        "xml": (lambda: xml_body(rows), "application/xml"),
    }[base]
    data = body()
    headers = {}
    if fmt.endswith(".gz"):
        data = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    bid = submit(server, src, data, ctype=ctype, headers=headers)
    b = wait_final(server, src, bid)
    assert b["status"] == "done", b
    for k in ("total", "accepted", "duplicates", "rejected"):
        assert b[k] == exp[k], (k, b, exp)
    assert b["progress"] == 1.0 and b["dataset"] == "transactions" and b["format"] == base
    assert b["started_at"] and b["finished_at"]
    # the records are stored, masked, once
    ids = T.stored_txn_ids(server.data_dir, prefix)
    assert len(ids) == exp["accepted"]
    rec = server.record(src, f"{prefix}-0").json()
    assert "*" in rec["record"]["citizen_id"]
    # every rejected row with its row number, line, field and code
    errs = server.get(f"/api/v1/batches/{bid}/errors", headers=src.headers).json()["errors"]
    assert [e["row"] for e in errs] == exp["bad_rows"]
    assert all(e["field"] == "error_code" and e["code"] == "required" for e in errs)
    if base in ("ndjson",):
        assert [e["line"] for e in errs] == [i + 1 for i in exp["bad_rows"]]
    if base == "csv":
        assert [e["line"] for e in errs] == [i + 2 for i in exp["bad_rows"]]


def test_errors_as_csv_and_localised(server, src):
    prefix = T.uid("BE")
    rows = [T.txn(txn_id=f"{prefix}-0"), T.txn(txn_id=f"{prefix}-1", channel="fax"),
            T.txn(txn_id=f"{prefix}-2", citizen_id="123")]
    body = ndjson(rows) + b"{not json\n" + ndjson([T.txn(txn_id=f"{prefix}-4")])
    bid = submit(server, src, body)
    b = wait_final(server, src, bid)
    assert (b["total"], b["accepted"], b["rejected"]) == (5, 2, 3)
    r = server.get(f"/api/v1/batches/{bid}/errors",
                   headers={**src.headers, "Accept": "text/csv", "Accept-Language": "en"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [(t["row"], t["line"], t["field"], t["code"]) for t in table] == [
        ("1", "2", "channel", "enum"), ("2", "3", "citizen_id", "pattern"),
        ("3", "4", "", "malformed")]
    assert "must be one of" in table[0]["message"]
    vi = server.get(f"/api/v1/batches/{bid}/errors",
                    headers={**src.headers, "Accept-Language": "vi"}).json()["errors"]
    assert vi[0]["message"] != table[0]["message"] and "channel" in vi[0]["message"]


def test_many_errors_are_all_listed(server, src):
    """More rejected rows than one page of the streamed error list."""
    prefix = T.uid("BM")
    rows = [T.txn(txn_id=f"{prefix}-{i}", status="failed") for i in range(2500)]
    bid = submit(server, src, ndjson(rows))
    b = wait_final(server, src, bid)
    assert b["rejected"] == 2500 and b["accepted"] == 0
    errs = server.get(f"/api/v1/batches/{bid}/errors", headers=src.headers).json()["errors"]
    assert [e["row"] for e in errs] == list(range(2500))
    lines = server.get(f"/api/v1/batches/{bid}/errors",
                       headers={**src.headers, "Accept": "text/csv"}).text.splitlines()
    assert len(lines) == 2501


def test_broken_json_file_fails_with_position_and_keeps_rows_before(server, src):
    prefix = T.uid("BJ")
    good = json.dumps([T.txn(txn_id=f"{prefix}-{i}") for i in range(3)])
    body = (good[:-1] + ', {"txn_id": oops}]').encode()
    bid = submit(server, src, body, ctype="application/json")
    b = wait_final(server, src, bid)
    assert b["status"] == "failed" and "line 1" in b["error"], b
    assert b["accepted"] == 3


@pytest.mark.parametrize("case", ["no_dataset", "unknown_dataset", "content_type", "encoding",
                                  "bad_gzip", "empty", "priority", "mode"])
def test_refusals(server, src, case):
    body, kw = ndjson([T.txn()]), {}
    if case == "no_dataset":
        r = server.post("/api/v1/batches", data=body,
                        headers={**src.headers, "Content-Type": "application/x-ndjson"})
        problem(r, 400, "bad_parameter")
        return
    exp = {"unknown_dataset": (404, "unknown_dataset"),
           "content_type": (415, "unsupported_media_type"),
           "encoding": (415, "unsupported_encoding"), "bad_gzip": (400, "bad_gzip"),
           "empty": (400, "empty"), "priority": (400, "bad_parameter"),
           "mode": (400, "bad_parameter")}[case]
    if case == "unknown_dataset":
        kw["dataset"] = "nope"
    elif case == "content_type":
        kw["ctype"] = "application/pdf"
    elif case == "encoding":
        kw["headers"] = {"Content-Encoding": "br"}
    elif case == "bad_gzip":
        kw["headers"] = {"Content-Encoding": "gzip"}
    elif case == "empty":
        body = b""
    elif case == "priority":
        kw["params"] = {"priority": "asap"}
    elif case == "mode":
        kw["params"] = {"mode": "plain"}
    r = post_batch(server, src, body, **kw)
    vi = problem(r, *exp)
    en = problem(post_batch(server, src, body, **{**kw, "headers": {
        **kw.get("headers", {}), "Accept-Language": "en"}}), *exp)
    assert vi["title"] != en["title"] and vi["detail"] != en["detail"], (vi, en)
    # nothing left in the spool
    # (the request's files are removed when it ends, just after its answer: wait for that)
    spool = server.data_dir / "batches"
    assert T.wait_for(lambda: not spool.exists() or not any(spool.iterdir())), list(
        spool.iterdir())


def test_needs_key_and_sees_only_own_batches(server, sys_factory):
    a, b = sys_factory.add(), sys_factory.add()
    r = server.post("/api/v1/batches", params={"dataset": "transactions"}, data=b"{}",
                    headers={"Content-Type": "application/x-ndjson"})
    problem(r, 401)
    consumer = sys_factory.add(role="consumer")
    problem(post_batch(server, consumer, ndjson([T.txn()])), 403)
    bid = submit(server, a, ndjson([T.txn()]))
    wait_final(server, a, bid)
    problem(server.get(f"/api/v1/batches/{bid}", headers=b.headers), 404,
                     "batch_not_found")
    problem(server.get(f"/api/v1/batches/{bid}/errors", headers=b.headers), 404)
    problem(server.request("DELETE", f"/api/v1/batches/{bid}", headers=b.headers), 404)
    mine = server.get("/api/v1/batches", headers=a.headers).json()["batches"]
    assert [x["id"] for x in mine] == [bid]
    assert server.get("/api/v1/batches", headers=b.headers).json()["batches"] == []


def big_body(prefix, n):
    t = T.txn()
    lines = []
    for i in range(n):
        t["txn_id"] = f"{prefix}-{i}"
        lines.append(json.dumps(t))
    return ("\n".join(lines) + "\n").encode()


def test_cancel_queued_and_running_and_priority(own_server):
    srv = own_server(https=False)
    s = srv.add_system()
    big_prefix = T.uid("BC") + "-"
    big = submit(srv, s, big_body(big_prefix[:-1], 150000))
    T.wait_for(lambda: get_batch(srv, s, big)["status"] == "running", timeout=30)
    normal = submit(srv, s, ndjson([T.txn()]))
    urgent = submit(srv, s, ndjson([T.txn()]), params={"priority": "urgent"})
    high = submit(srv, s, ndjson([T.txn()]), params={"priority": "high"})
    doomed = submit(srv, s, ndjson([T.txn()]))
    # a queued batch is cancelled at once and never runs
    d = ok(srv.request("DELETE", f"/api/v1/batches/{doomed}", headers=s.headers))
    assert d["status"] == "cancelled" and d["total"] == 0
    # the running one stops at its next chunk with what it committed
    c = ok(srv.request("DELETE", f"/api/v1/batches/{big}", headers=s.headers))
    assert c["status"] == "cancelled" and c["finished_at"]
    assert c["accepted"] == c["total"] < 150000
    assert len(T.stored_txn_ids(srv.data_dir, big_prefix)) == c["accepted"]
    problem(srv.request("DELETE", f"/api/v1/batches/{big}", headers=s.headers), 409,
                     "batch_finished")
    bs = {x: wait_final(srv, s, x) for x in (normal, urgent, high)}
    assert all(b["status"] == "done" for b in bs.values())
    # the order they were started in, from the server's log (timestamps have ms resolution)
    def order():  # info lines reach the log within 200 ms
        got = re.findall(r'"msg":"batch started","batch":"([^"]+)"', srv.log_text())
        return [b for b in got if b in (urgent, high, normal)]
    T.wait_for(lambda: len(order()) == 3)
    assert order() == [urgent, high, normal]
    assert get_batch(srv, s, doomed)["status"] == "cancelled"
    assert get_batch(srv, s, doomed)["started_at"] is None


def test_two_batches_with_realtime_alongside(server, sys_factory):
    a, b = sys_factory.add(), sys_factory.add()
    pa, pb, pr = T.uid("B2A"), T.uid("B2B"), T.uid("B2R")
    ids, errors = [], []

    def one(system, prefix):
        try:
            ids.append((system, prefix, submit(server, system, big_body(prefix, 20000))))
        except AssertionError as e:  # pragma: no cover - reported below
            errors.append(e)

    ths = [threading.Thread(target=one, args=x) for x in ((a, pa), (b, pb))]
    for t in ths:
        t.start()
    realtime = 0
    for i in range(40):
        r = server.ingest(a, [T.txn(txn_id=f"{pr}-{i}-{k}") for k in range(25)])
        realtime += T.assert_ok(r)["accepted"]
    for t in ths:
        t.join()
    assert not errors and len(ids) == 2
    for system, prefix, bid in ids:
        b_ = wait_final(server, system, bid, timeout=180)
        assert (b_["status"], b_["total"], b_["accepted"], b_["rejected"]) == (
            "done", 20000, 20000, 0)
        assert len(T.stored_txn_ids(server.data_dir, prefix + "-")) == 20000
    assert realtime == 1000 and len(T.stored_txn_ids(server.data_dir, pr)) == 1000


@pytest.mark.slow
def test_kill9_in_the_middle_resumes_without_double_rows(own_server):
    srv = own_server(https=False)
    s = srv.add_system()
    prefix = T.uid("BK")
    n = 200000
    rows = []
    t = T.txn()
    for i in range(n):
        t["txn_id"] = f"{prefix}-{i}"
        t["status"] = "failed" if i % 1000 == 7 else "success"  # 200 rejected rows
        if i % 5000 == 4999:
            rows.append(rows[-1])  # an identical duplicate
        else:
            rows.append(json.dumps(t))
    body = ("\n".join(rows) + "\n").encode()
    bid = submit(srv, s, body)
    mid = T.wait_for(lambda: (lambda b: b if 0 < b["total"] < n else None)(get_batch(srv, s, bid)),
                     timeout=60, interval=0.02)
    assert mid, "the batch never showed partial progress"
    srv.kill9()
    srv.start(https=False)
    b = wait_final(srv, s, bid, timeout=240)
    assert b["status"] == "done", b
    dups = n // 5000
    bad = sum(1 for i in range(n) if i % 1000 == 7 and i % 5000 != 4999)
    assert (b["total"], b["duplicates"], b["rejected"]) == (n, dups, bad), b
    assert b["accepted"] == n - dups - bad
    con = T.open_db(srv.data_dir)
    try:
        stored = sum(1 for r in T.stored_contents(srv.data_dir, "transactions")
                     if str(r.get("txn_id", "")).startswith(f"{prefix}-"))
        (nerr,) = con.execute("SELECT count(*) FROM batch_errors WHERE batch_id=?",
                              (bid,)).fetchone()
    finally:
        con.close()
    assert stored == n - dups - bad
    assert nerr == bad  # no rejected row recorded twice
    resumed = [int(m) for m in re.findall(r'"resume_row":(\d+)', srv.log_text())]
    assert resumed[0] == 0 and len(resumed) == 2 and resumed[1] >= mid["total"] > 0, resumed
    assert not (srv.data_dir / "batches" / f"{bid}.data").exists()


def spool_rss_kb(pid, size):
    """Resident kB of the server's anonymous mapping that holds an opened spool of `size` bytes
    (the mapping of exactly that size in pages), or None when there is none (yet)."""
    best = None
    with open(f"/proc/{pid}/smaps") as f:
        cur = None
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                fields = line.split()
                cur = len(fields) < 6  # anonymous: no path
            elif cur and line.startswith("Size:"):
                cur = int(line.split()[1]) == (size + 4095) // 4096 * 4
            elif cur and line.startswith("Rss:"):
                best = max(best or 0, int(line.split()[1]))
                cur = None
    return best


@pytest.mark.skipif(bool(os.environ.get("DTM_SANITIZED")),
                    reason="memory layout and speed under ASan differ; the plain run checks it")
def test_a_sealed_upload_is_opened_as_it_is_read(own_server, tmp_path):
    """T4.2 keeps the spooled upload sealed on disk; the runner opens it chunk by chunk ahead of
    the decoder and gives back what it read, so the plaintext in memory is a window (16 MB
    ahead), not the file (a 60 MB upload here, a 700 MB one in bench/ingest_batch)."""
    data_dir = tmp_path / "lazy"
    T.dtm_init(str(data_dir))
    with open(data_dir / "dtm.conf", "a") as f:
        f.write("\n[ingest]\nbatch_chunk = 5000\n")
    srv = own_server(data_dir=data_dir, https=False)
    s = srv.add_system()
    n = 170000
    body = big_body(T.uid("LZ"), n)
    assert len(body) > 55 << 20
    peak, seen = 0, 0
    bid = submit(srv, s, body)
    deadline = time.time() + 600
    while time.time() < deadline:
        kb = spool_rss_kb(srv.proc.pid, len(body))
        if kb is not None:
            seen += 1
            peak = max(peak, kb)
        b = get_batch(srv, s, bid)
        if b["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert b["status"] == "done" and b["accepted"] == n, b
    assert seen >= 3, "the opened spool was never seen"
    assert peak < 32 << 10, (peak >> 10, len(body) >> 20)  # MB resident of a 57 MB file
