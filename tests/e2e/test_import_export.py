"""`dtm import` (local, from a file, a pipe and a .gz file; remote with --url/--key) and
`dtm export` (CONTRACT §1, issue 3): exact counts, FILE.rejected.csv, progress lines when not a
terminal, the data visible to a server running on the same data dir, and records written back
out in every format.
"""

import csv
import gzip
import io
import json
import subprocess
import xml.etree.ElementTree as ET

import pytest

import dtmtest as T


def rows(prefix, n, system=None):
    """n rows; rows 5, 15, 25… are failed without error_code (rejected); row 9 repeats row 8."""
    out = []
    for i in range(n):
        r = T.txn(txn_id=f"{prefix}-{i}", started_at=f"2026-11-{10 + i % 10:02d}T09:00:00+07:00",
                  finished_at=None)
        if system:
            r["system_code"] = system
        if i % 10 == 5:
            r["status"] = "failed"
        out.append(r)
    if n > 9:
        out[9] = dict(out[8])
    return out


def write_ndjson(path, recs):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    return path


def counts(stdout):
    kv = T.parse_kv(stdout)
    return {k: int(v) for k, v in kv.items()}


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    T.dtm_init(str(d))
    return d


def test_import_file_counts_rejected_csv_and_progress(data, tmp_path):
    s = T.add_system(str(data))
    prefix = T.uid("IM")
    f = write_ndjson(tmp_path / "in.ndjson", rows(prefix, 40))
    p = T.run_dtm("import", "--data-dir", data, "--dataset", "transactions", "--system", s.code,
                  f)
    assert counts(p.stdout) == {"rows": 40, "accepted": 35, "duplicates": 1, "updated": 0,
                                "rejected": 4}
    assert "import: 100.0%" in p.stderr  # plain progress lines when stderr is not a terminal
    table = list(csv.DictReader(io.StringIO((tmp_path / "in.ndjson.rejected.csv").read_text())))
    assert [(t["row"], t["line"], t["field"], t["code"]) for t in table] == [
        (str(i), str(i + 1), "error_code", "required") for i in (5, 15, 25, 35)]
    assert all(json.loads(t["record"])["txn_id"] == f"{prefix}-{t['row']}" for t in table)
    assert "error_code" in table[0]["message"]
    assert len(T.stored_txn_ids(data, prefix + "-")) == 35
    # the same file again: everything valid is a duplicate now
    p = T.run_dtm("import", "--data-dir", data, "--dataset", "transactions", "--system", s.code,
                  f, "--json")
    got = {k: int(v) for k, v in json.loads(p.stdout).items()}
    assert got == {"rows": 40, "accepted": 0, "duplicates": 36, "updated": 0, "rejected": 4}


def test_import_from_a_pipe_and_gzip_without_system(data, tmp_path):
    s = T.add_system(str(data))
    prefix = T.uid("IP")
    body = "".join(json.dumps(r) + "\n" for r in rows(prefix, 20, system=s.code))
    p = subprocess.run([T.DTM_BIN, "import", "--data-dir", str(data), "--dataset",
                        "transactions", "-"], input=body, capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert counts(p.stdout)["accepted"] == 17
    assert (tmp_path / "stdin.rejected.csv").exists()
    # gzip, and a row naming a system that is not registered
    prefix2 = T.uid("IG")
    recs = rows(prefix2, 10, system=s.code)
    recs.append(T.txn(txn_id=f"{prefix2}-x", system_code="NOPE"))
    gz = tmp_path / "in.ndjson.gz"
    gz.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in recs).encode()))
    p = T.run_dtm("import", "--data-dir", data, "--dataset", "transactions", gz)
    c = counts(p.stdout)
    assert (c["rows"], c["accepted"], c["rejected"]) == (11, 8, 2)
    table = list(csv.DictReader(io.StringIO((tmp_path / "in.ndjson.gz.rejected.csv").read_text())))
    assert ("system_code", "system_code") in [(t["field"], t["code"]) for t in table]
    # nothing left in the spool
    assert not any((data / "batches").iterdir())


def test_import_usage_errors(data, tmp_path):
    f = write_ndjson(tmp_path / "x.ndjson", rows("U", 1))
    p = T.run_dtm("import", "--data-dir", data, "--dataset", "nope", f, check=False)
    assert p.returncode == 2 and "nope" in p.stderr
    p = T.run_dtm("import", "--data-dir", data, f, check=False)
    assert p.returncode == 2 and "--dataset" in p.stderr
    p = T.run_dtm("import", "--data-dir", data, "--dataset", "transactions",
                  tmp_path / "missing.ndjson", check=False)
    assert p.returncode == 1 and "missing.ndjson" in p.stderr
    p = T.run_dtm("import", "--data-dir", data, "--dataset", "transactions", "--system", "NOPE",
                  f, check=False)
    assert p.returncode == 2 and "NOPE" in p.stderr
    (tmp_path / "x.txt").write_text("{}")
    p = T.run_dtm("import", "--data-dir", data, "--dataset", "transactions",
                  tmp_path / "x.txt", check=False)
    assert p.returncode == 2 and "--format" in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('[{"txn_id": "a"}, {oops')
    p = T.run_dtm("import", "--data-dir", data, "--dataset", "transactions", bad, check=False)
    assert p.returncode == 1 and "line 1" in p.stderr


def test_import_while_serving_and_remote(own_server, tmp_path):
    srv = own_server(https=False)
    s = srv.add_system()
    prefix = T.uid("IS")
    f = write_ndjson(tmp_path / "a.ndjson", rows(prefix, 30))
    p = T.run_dtm("import", "--data-dir", srv.data_dir, "--dataset", "transactions",
                  "--system", s.code, f)
    assert counts(p.stdout)["accepted"] == 26
    r = srv.record(s, f"{prefix}-0")
    assert r.status_code == 200 and r.json()["record"]["txn_id"] == f"{prefix}-0"
    # remote: the same pipeline through POST /api/v1/batches
    prefix2 = T.uid("IR")
    f2 = write_ndjson(tmp_path / "b.ndjson", rows(prefix2, 30))
    p = T.run_dtm("import", "--url", srv.base_url, "--key", s.api_key, "--dataset",
                  "transactions", f2)
    assert counts(p.stdout) == {"rows": 30, "accepted": 26, "duplicates": 1, "updated": 0,
                                "rejected": 3}
    table = list(csv.DictReader(io.StringIO((tmp_path / "b.ndjson.rejected.csv").read_text())))
    assert [t["row"] for t in table] == ["5", "15", "25"]
    assert len(T.stored_txn_ids(srv.data_dir, prefix2 + "-")) == 26
    p = T.run_dtm("import", "--url", srv.base_url, "--key", "dtm_wrong", "--dataset",
                  "transactions", f2, check=False)
    assert p.returncode == 1 and "401" in p.stderr


def test_export_every_format(data, tmp_path):
    s = T.add_system(str(data))
    prefix = T.uid("EX")
    recs = [r for r in rows(prefix, 20) if r["status"] != "failed"][:-1]  # 17 distinct, valid
    f = write_ndjson(tmp_path / "in.ndjson", recs)
    T.run_dtm("import", "--data-dir", data, "--dataset", "transactions", "--system", s.code, f)
    want = {r["txn_id"]: r for r in recs}
    out = tmp_path / "out"
    # CSV: header of every field, one row per record, personal data masked as stored
    T.run_dtm("export", "--data-dir", data, "--dataset", "transactions", "--format", "csv",
              "-o", f"{out}.csv")
    table = list(csv.DictReader(open(f"{out}.csv", newline="", encoding="utf-8")))
    assert {t["txn_id"] for t in table} == set(want)
    t0 = next(t for t in table if t["txn_id"] == recs[0]["txn_id"])
    assert t0["citizen_id"] == T.masked_partial(recs[0]["citizen_id"])
    assert t0["amount"] == recs[0]["amount"] and t0["system_code"] == s.code
    assert [t["started_at"] for t in table] == sorted(t["started_at"] for t in table)
    # JSON, NDJSON, XML
    T.run_dtm("export", "--data-dir", data, "--dataset", "transactions", "--format", "json",
              "-o", f"{out}.json")
    js = json.load(open(f"{out}.json"))
    assert {r["txn_id"] for r in js} == set(want)
    p = T.run_dtm("export", "--data-dir", data, "--dataset", "transactions", "--format",
                  "ndjson")
    assert sorted(json.loads(line)["txn_id"] for line in p.stdout.splitlines()) == sorted(want)
    T.run_dtm("export", "--data-dir", data, "--dataset", "transactions", "--format", "xml",
              "-o", f"{out}.xml")
    root = ET.parse(f"{out}.xml").getroot()
    assert root.tag == "records" and {e.findtext("txn_id") for e in root} == set(want)
    # a time range: --from/--to as dates in UTC+07:00, --to inclusive
    p = T.run_dtm("export", "--data-dir", data, "--dataset", "transactions", "--format",
                  "ndjson", "--from", "2026-11-12", "--to", "2026-11-13")
    got = [json.loads(line) for line in p.stdout.splitlines()]
    assert got and all(g["started_at"][:10] in ("2026-11-12", "2026-11-13") for g in got)
    assert len(got) == sum(1 for r in recs if r["started_at"][:10] in ("2026-11-12", "2026-11-13"))
    p = T.run_dtm("export", "--data-dir", data, "--dataset", "transactions", "--format", "pdf",
                  check=False)
    assert p.returncode == 2


def test_export_xlsx(data, tmp_path):
    import openpyxl
    s = T.add_system(str(data))
    prefix = T.uid("XL")
    recs = [r for r in rows(prefix, 12) if r["status"] != "failed"][:-1]
    T.run_dtm("import", "--data-dir", data, "--dataset", "transactions", "--system", s.code,
              write_ndjson(tmp_path / "in.ndjson", recs))
    out = tmp_path / "out.xlsx"
    p = T.run_dtm("export", "--data-dir", data, "--dataset", "transactions", "--format", "xlsx",
                  "-o", out)
    assert "exported: %d" % len({r["txn_id"] for r in recs}) in p.stderr
    ws = openpyxl.load_workbook(out).active
    assert ws.freeze_panes == "A2"
    table = list(ws.iter_rows(values_only=True))
    header = table[0]
    assert header[:3] == ("txn_id", "system_code", "agency_code")
    got = {r[0]: dict(zip(header, r)) for r in table[1:]}
    assert set(got) == {r["txn_id"] for r in recs}
    r0 = got[recs[0]["txn_id"]]
    assert r0["response_ms"] == recs[0]["response_ms"] and isinstance(r0["response_ms"], int)
    assert r0["amount"] == float(recs[0]["amount"])
    assert r0["citizen_id"] == T.masked_partial(recs[0]["citizen_id"])
    p = T.run_dtm("export", "--data-dir", data, "--dataset", "transactions", "--format", "xlsx",
                  check=False)
    assert p.returncode == 2 and "-o" in p.stderr
