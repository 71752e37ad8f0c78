"""Periodic reports (issue 7 item 1; CONTRACT §1 `dtm report`, §6 GET /api/v1/reports/{kind}):
known transactions in a past month and the month before it → every number of the `transactions`
report (totals, failure rate, failure reasons ranked per system and service with their shares,
average and p95 response time, change against the previous period), the same numbers in CSV, XLSX (openpyxl,
one sheet per section) and PDF (pdftoppm pages, pdftotext text with Vietnamese diacritics and
"n / N" page numbers), English by Accept-Language, `dtm report` on the data dir while the server
runs, the scheduled report of yesterday produced at the start and kept, and the outage of a
system whose heartbeats stopped in the `connectivity` report. Runs on both stores."""

import csv
import datetime as dt
import io
import json
import re
import subprocess
from pathlib import Path

import openpyxl
import pytest

import dtmtest as T
import peoplelib as P

VN = dt.timezone(dt.timedelta(hours=7))
PERIOD, PREV = "2026-09", "2026-08"
NAME_A = "Cổng dịch vụ công Bộ Tài chính"
ONLINE_WITHIN = 2

# (system, service, status, response_ms, error_code) in PERIOD
CUR = (
    [("A", "SV01", "success", ms, None) for ms in (100, 200, 300)]
    + [("A", "SV01", "failed", 400, "E01"), ("A", "SV01", "failed", 500, "E01"),
       ("A", "SV01", "failed", 600, "E02"), ("A", "SV01", "pending", 700, None)]
    + [("A", "SV02", "success", ms, None) for ms in (50, 150)]
    # A's second service fails for other reasons: ranked apart from SV01's
    + [("A", "SV02", "failed", 250, "E02")] * 2 + [("A", "SV02", "failed", 350, "E04")]
    + [("B", "SV01", "failed", 1000, "E03")] * 3 + [("B", "SV01", "failed", 1000, "E01")]
)
# in PREV: A/SV01 × 5, B/SV01 × 8
PREVS = [("A", "SV01", "success", 100, None)] * 5 + [("B", "SV01", "success", 100, None)] * 8
# in LONG: B fails 90 times, each with its own error code (a table over several pages)
LONG = "2026-07"
LOTS = [("B", "SV09", "failed", 10 + i, f"E{100 + i}") for i in range(90)]
# yesterday (the scheduled daily report): A/SV03 × 2, one failed
YDAY = [("A", "SV03", "success", 80, None), ("A", "SV03", "failed", 90, "E09")]


def yesterday():
    return (dt.datetime.now(VN) - dt.timedelta(days=1)).date()


def records(rows, day, prefix):
    out = []
    for i, (s, svc, status, ms, err) in enumerate(rows):
        r = {"txn_id": f"{prefix}-{i}", "service_code": svc, "status": status,
             "started_at": f"{day}T10:{i % 60:02d}:00+07:00", "response_ms": ms, "channel": "web"}
        if err:
            r["error_code"] = err
        out.append((s, r))
    return out


@pytest.fixture(scope="module")
def rs(dtm_bin, tmp_path_factory):
    """A server whose data dir holds the known transactions (imported with `dtm import` before
    it starts, so the scheduled report of yesterday sees them), a daily report schedule and a
    2-second online window; an analyst signed in over HTTPS."""
    if T.EXTERNAL_URL:
        pytest.skip("needs its own data dir and configuration")
    root = tmp_path_factory.mktemp("reports")
    data = root / "data"
    T.dtm_init(str(data))
    with open(data / "dtm.conf", "a") as f:
        f.write(f"\n[systems]\nonline_within = {ONLINE_WITHIN}\ncheck_interval = 1\n"
                "[reports]\nschedule = day\nkinds = transactions,connectivity\nlangs = vi,en\n")
    codes = {"A": T.system_code("RA"), "B": T.system_code("RB"), "C": T.system_code("RC")}
    systems = {
        "A": T.add_system(str(data), code=codes["A"], name=NAME_A),
        "B": T.add_system(str(data), code=codes["B"], name="Hệ thống một cửa Bộ Xây dựng"),
        "C": T.add_system(str(data), code=codes["C"], name="Hệ thống heartbeat"),
    }
    rows = (records(CUR, "2026-09-15", "CUR") + records(PREVS, "2026-08-10", "PRV")
            + records(YDAY, yesterday().isoformat(), "YDY") + records(LOTS, "2026-07-12", "LOT"))
    for key in ("A", "B"):
        f = root / f"{key}.ndjson"
        f.write_text("".join(json.dumps(r) + "\n" for s, r in rows if s == key))
        T.run_dtm("import", "--data-dir", str(data), "--dataset", "transactions",
                  "--system", codes[key], "--format", "ndjson", str(f))
    password = json.loads(T.run_dtm("user", "add", "--data-dir", str(data), "--username",
                                    "report.analyst", "--role", "analyst", "--json").stdout)["password"]
    srv = T.DtmServer(data, log_path=root / "serve.stderr.log")
    srv.start()
    srv.codes, srv.systems = codes, systems
    srv.analyst = P.Person(srv, "report.analyst", password, lang="vi")
    srv.analyst.login_ok()
    try:
        yield srv
    finally:
        assert srv.stop() == 0, srv.log_tail()


def get_report(rs, kind="transactions", period=PERIOD, fmt="json", lang=None, **kw):
    params = {"period": period, "format": fmt}
    if lang:
        params["lang"] = lang
    r = rs.analyst.get(f"/api/v1/reports/{kind}", params=params, **kw)
    assert r.status_code == 200, r.text
    return r


def section(doc, sid):
    s = next(s for s in doc["sections"] if s["id"] == sid)
    keys = [c["key"] for c in s["columns"]]
    return s, [dict(zip(keys, row)) for row in s["rows"]]


def expected(rs):
    """The numbers of the report, computed here from the rows above."""
    def agg(rows, prev):
        total = len(rows)
        ms = sorted(r[3] for r in rows)
        rank = -(-95 * len(ms) // 100)  # nearest rank
        failed = sum(r[2] == "failed" for r in rows)
        return {"total": total, "successful": sum(r[2] == "success" for r in rows),
                "failed": failed, "pending": sum(r[2] == "pending" for r in rows),
                "failure_rate": failed / total if total else None,
                "avg_ms": sum(ms) / len(ms) if ms else None, "p95_ms": ms[rank - 1] if ms else None,
                "previous_total": prev, "change": (total - prev) / prev if prev else None}
    by_sys = {k: agg([r for r in CUR if r[0] == k], sum(r[0] == k for r in PREVS)) for k in "AB"}
    by_svc = {}
    for k, svc in sorted({(r[0], r[1]) for r in CUR + PREVS}):
        by_svc[(k, svc)] = agg([r for r in CUR if r[:2] == (k, svc)],
                               sum(r[:2] == (k, svc) for r in PREVS))
    return agg(CUR, len(PREVS)), by_sys, by_svc


def close(a, b):
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-9 * max(1, abs(b))


def check_numbers(got, want):
    for k, v in want.items():
        assert close(got[k], v), f"{k}: {got[k]} != {v} in {got}"


def test_transactions_report_every_number(rs):
    r = get_report(rs)
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["DTM-Report"] == "computed"
    doc = r.json()
    assert doc["kind"] == "transactions" and doc["period"] == PERIOD and doc["lang"] == "vi"
    assert doc["title"] == "Báo cáo giao dịch" and doc["provisional"] is False
    assert doc["from"] == "2026-09-01T00:00:00.000+07:00"
    assert doc["to"] == "2026-10-01T00:00:00.000+07:00"
    assert [s["id"] for s in doc["sections"]] == ["summary", "by_system", "by_service",
                                                  "failure_reasons"]
    for s in doc["sections"]:
        assert len(s["method"]) > 80 and "2026-09" in s["method"], s["method"]
    all_, by_sys, by_svc = expected(rs)
    _, rows = section(doc, "summary")
    assert len(rows) == 1 and rows[0]["period"] == PERIOD
    check_numbers(rows[0], all_)
    assert rows[0]["total"] == 16 and close(rows[0]["change"], 3 / 13)
    s, rows = section(doc, "by_system")
    assert s["chart"] == {"type": "bar", "x": "system", "y": ["successful", "failed"]}
    assert [r["system"] for r in rows] == sorted(rs.codes[k] for k in "AB")
    for k in "AB":
        row = next(r for r in rows if r["system"] == rs.codes[k])
        check_numbers(row, by_sys[k])
    a = next(r for r in rows if r["system"] == rs.codes["A"])
    assert a["name"] == NAME_A
    # by hand: A has 12 records (5 success, 6 failed, 1 pending), 5 the month before
    assert (a["total"], a["successful"], a["failed"], a["pending"]) == (12, 5, 6, 1)
    assert close(a["failure_rate"], 6 / 12) and close(a["avg_ms"], 3850 / 12)
    assert a["p95_ms"] == 700 and close(a["change"], 1.4)
    b = next(r for r in rows if r["system"] == rs.codes["B"])
    assert (b["total"], b["failed"], b["p95_ms"]) == (4, 4, 1000) and close(b["change"], -0.5)
    _, rows = section(doc, "by_service")
    got = {(r["system"], r["service"]): r for r in rows}
    assert len(got) == 3
    for (k, svc), want in by_svc.items():
        check_numbers(got[(rs.codes[k], svc)], want)
    sv02 = got[(rs.codes["A"], "SV02")]
    assert sv02["previous_total"] == 0 and sv02["change"] is None
    assert (sv02["total"], sv02["failed"], sv02["p95_ms"]) == (5, 3, 350)
    assert close(got[(rs.codes["A"], "SV01")]["change"], 0.4)
    # failure reasons ranked by count within each system and service, shares of its failed
    # transactions: A's two services apart (E02 first in SV02, last in SV01)
    s, rows = section(doc, "failure_reasons")
    assert s["title"] == "Nguyên nhân lỗi theo hệ thống và dịch vụ"
    assert [c["key"] for c in s["columns"]] == ["system", "service", "rank", "error_code",
                                                "count", "share"]
    assert "cube=system_code+service_code+status+error_code" in s["method"], s["method"]
    got = [(r["system"], r["service"], r["rank"], r["error_code"], r["count"],
            round(r["share"], 9)) for r in rows]
    assert got == reasons_want(rs)


def reasons_want(rs):
    """The failure_reasons rows, by hand: per system and service, ranked by count (ties by code),
    the share of that system and service's failed transactions."""
    A, B = rs.codes["A"], rs.codes["B"]
    want = [(A, "SV01", 1, "E01", 2, round(2 / 3, 9)), (A, "SV01", 2, "E02", 1, round(1 / 3, 9)),
            (A, "SV02", 1, "E02", 2, round(2 / 3, 9)), (A, "SV02", 2, "E04", 1, round(1 / 3, 9)),
            (B, "SV01", 1, "E03", 3, 0.75), (B, "SV01", 2, "E01", 1, 0.25)]
    return sorted(want, key=lambda x: (x[0], x[1], x[2]))


def test_same_numbers_as_the_statistics_api(rs):
    doc = get_report(rs).json()
    _, rows = section(doc, "by_system")
    r = rs.analyst.get("/api/v1/stats/transactions", params={
        "metrics": "count,avg:response_ms,p95:response_ms", "group_by": "system_code",
        "from": "2026-09-01T00:00:00+07:00", "to": "2026-09-30"})
    assert r.status_code == 200, r.text
    stats = {row[0]: row[1:] for row in r.json()["rows"]}
    for row in rows:
        total, avg, p95 = stats[row["system"]]
        assert row["total"] == total and close(row["avg_ms"], avg) and close(row["p95_ms"], p95)


def test_csv_xlsx_and_pdf_carry_the_same_numbers(rs, tmp_path):
    doc = get_report(rs).json()
    all_, by_sys, _ = expected(rs)
    # CSV: per section a title line, the header, the rows, a blank line
    r = get_report(rs, fmt="csv")
    assert r.headers["Content-Type"].startswith("text/csv")
    blocks = [b for b in r.content.decode("utf-8").split("\r\n\r\n") if b.strip()]
    assert len(blocks) == len(doc["sections"])
    for block, s in zip(blocks, doc["sections"]):
        lines = list(csv.reader(io.StringIO(block)))
        assert lines[0] == [s["title"]]
        assert lines[1] == [c["label"] for c in s["columns"]]
        assert len(lines) - 2 == len(s["rows"])
    lines = list(csv.reader(io.StringIO(blocks[1])))
    keys = [c["key"] for c in doc["sections"][1]["columns"]]
    a = dict(zip(keys, next(l for l in lines if l[0] == rs.codes["A"])))
    assert a["name"] == NAME_A and int(a["total"]) == 12 and int(a["failed"]) == 6
    assert close(float(a["avg_ms"]), by_sys["A"]["avg_ms"])
    assert close(float(a["change"]), 1.4)
    # the failure reasons per system and service, ranked apart
    ids = [x["id"] for x in doc["sections"]]
    lines = list(csv.reader(io.StringIO(blocks[ids.index("failure_reasons")])))
    assert lines[0] == ["Nguyên nhân lỗi theo hệ thống và dịch vụ"]
    assert lines[1] == ["Hệ thống", "Dịch vụ", "Hạng", "Mã lỗi", "Số lượng", "Tỷ trọng"]
    assert [(l[0], l[1], int(l[2]), l[3], int(l[4]), round(float(l[5]), 9))
            for l in lines[2:]] == reasons_want(rs)
    # XLSX: one sheet per section, the header then the rows, typed cells
    r = get_report(rs, fmt="xlsx")
    path = tmp_path / "r.xlsx"
    path.write_bytes(r.content)
    wb = openpyxl.load_workbook(path)
    assert len(wb.worksheets) == len(doc["sections"])
    for ws, s in zip(wb.worksheets, doc["sections"]):
        header = [c.value for c in ws[1]][:len(s["columns"])]
        assert header == [c["label"] for c in s["columns"]]
        data = [[c.value for c in row][:len(s["columns"])]
                for row in ws.iter_rows(min_row=2, max_row=1 + len(s["rows"]))]
        for got, want in zip(data, s["rows"]):
            for g, w in zip(got, want):
                assert close(g, w) if isinstance(w, (int, float)) else g == w, (g, w, s["id"])
        assert ws.cell(row=len(s["rows"]) + 3, column=1).value == s["method"]
    # the failure reasons' sheet (its title cut to Excel's 31 characters), read back by hand
    ws = wb.worksheets[ids.index("failure_reasons")]
    assert ws.title == "Nguyên nhân lỗi theo hệ thống v"
    assert [c.value for c in ws[1]][:6] == ["Hệ thống", "Dịch vụ", "Hạng", "Mã lỗi", "Số lượng",
                                            "Tỷ trọng"]
    got = [tuple(c.value for c in row[:6]) for row in ws.iter_rows(min_row=2, max_row=7)]
    assert [g[:5] + (round(g[5], 9),) for g in got] == reasons_want(rs)
    assert ws.cell(row=8, column=1).value is None  # nothing more: six reasons
    # PDF: A4 pages (title page + one per section at least), rendered and read back
    r = get_report(rs, fmt="pdf")
    assert r.headers["Content-Type"] == "application/pdf" and r.content[:5] == b"%PDF-"
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(r.content)
    pages = pdf_pages(pdf, tmp_path)
    assert pages >= 5
    # -raw: the text in the order it was drawn (a wrapped table cell stays whole)
    text = " ".join(subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True,
                                   text=True, check=True).stdout.split())
    for needle in ("Báo cáo giao dịch", "Kỳ báo cáo: 2026-09", NAME_A, "Giao dịch theo hệ thống",
                   "Nguyên nhân lỗi theo hệ thống và dịch vụ", "Đếm từ tập dữ liệu transactions",
                   "E01"):
        assert needle in text, needle
    # the failure reasons' table: each row as drawn (system, service, rank, code, count, share)
    reasons = text[text.index("Nguyên nhân lỗi theo hệ thống và dịch vụ"):]
    for sys_, svc, rank, code, n, share in reasons_want(rs):
        row = f"{sys_} {svc} {rank} {code} {n} " + f"{share * 100:.2f}".replace(".", ",")
        assert row in reasons, (row, reasons[:2000])
    for n in range(1, pages + 1):
        assert re.search(rf"\b{n}\s*/\s*{pages}\b", text), f"page number {n} / {pages}"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    assert re.search(r"Page size:\s+595\.\d* x 841\.\d* pts \(A4\)", info), info


def pdf_pages(pdf, tmp_path):
    """Renders every page to PNG with pdftoppm (and in grey to check each page has ink); returns
    the page count."""
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pngs = sorted(tmp_path.glob("page*.png"))
    subprocess.run(["pdftoppm", "-r", "20", "-gray", str(pdf), str(tmp_path / "grey")],
                   check=True)
    for g in sorted(tmp_path.glob("grey*.pgm")):
        raw = g.read_bytes()
        # P5 header: magic, width, height, maxval, then the pixels
        parts = raw.split(maxsplit=4)
        assert parts[0] == b"P5"
        assert min(parts[4]) < 128, f"{g.name} is blank"
    return len(pngs)


def test_a_long_table_breaks_across_pages_under_its_header(rs, tmp_path):
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(get_report(rs, period=LONG, fmt="pdf").content)
    pages = pdf_pages(pdf, tmp_path)
    texts = [subprocess.run(["pdftotext", "-f", str(n), "-l", str(n), "-layout", str(pdf), "-"],
                            capture_output=True, text=True, check=True).stdout
             for n in range(1, pages + 1)]
    with_codes = [t for t in texts if re.search(r"\bE1\d\d\b", t)]
    assert len(with_codes) >= 2, f"90 failure reasons on {len(with_codes)} page(s)"
    for t in with_codes:
        assert "Mã lỗi" in t and "Tỷ trọng" in t, "the header repeated on every page"
    for t in with_codes[1:]:
        assert "Nguyên nhân lỗi theo hệ thống và dịch vụ (tiếp theo)" in t
    found = sorted(set(re.findall(r"\bE1\d\d\b", "".join(with_codes))))
    assert found == [f"E{100 + i}" for i in range(90)]
    for n, t in enumerate(texts, 1):
        assert re.search(rf"\b{n}\s*/\s*{pages}\s*$", t.rstrip("\f").rstrip()), f"page {n}"


def test_english_by_accept_language_or_lang(rs, tmp_path):
    r = rs.analyst.get("/api/v1/reports/transactions", params={"period": PERIOD},
                       headers={"Accept-Language": "en"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["lang"] == "en" and doc["title"] == "Transaction report"
    s, rows = section(doc, "by_system")
    assert s["title"] == "Transactions by system"
    assert [c["label"] for c in s["columns"]][:4] == ["System", "Name", "Total", "Successful"]
    assert s["method"].startswith("Counted from the transactions dataset")
    assert next(r for r in rows if r["system"] == rs.codes["A"])["total"] == 12
    s, rows = section(doc, "failure_reasons")
    assert s["title"] == "Failure reasons by system and service"
    assert [c["label"] for c in s["columns"]][:2] == ["System", "Service"]
    assert s["method"].startswith("The failed transactions (status = failed")
    assert get_report(rs, lang="en").json()["title"] == "Transaction report"
    pdf = tmp_path / "en.pdf"
    pdf.write_bytes(get_report(rs, fmt="pdf", lang="en").content)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Transaction report" in text and "Failure reasons by system and service" in text


def test_format_by_accept_header_and_bad_parameters(rs):
    r = rs.analyst.get("/api/v1/reports/transactions", params={"period": PERIOD},
                       headers={"Accept": "application/pdf"})
    assert r.status_code == 200 and r.content[:5] == b"%PDF-"
    r = rs.analyst.get(f"/api/v1/reports/transactions/{PERIOD}", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    for params, name in (({"period": "2026-13"}, "period"), ({}, "period"),
                         ({"period": PERIOD, "format": "docx"}, "format"),
                         ({"period": PERIOD, "lang": "fr"}, "lang")):
        r = rs.analyst.get("/api/v1/reports/transactions", params=params,
                           headers={"Accept-Language": "en"})
        body = T.assert_problem(r, 400)
        assert body["type"] == "urn:dtm:problem:bad_parameter"
        assert f"'{name}'" in body["detail"], body
    r = rs.analyst.get("/api/v1/reports/sales", params={"period": PERIOD})
    T.assert_problem(r, 404)
    # people only: no session → 401; a connected system's key is not a person
    assert rs.get("/api/v1/reports/transactions", params={"period": PERIOD}).status_code == 401
    r = rs.get("/api/v1/reports", headers=rs.systems["B"].headers)
    assert r.status_code in (401, 403)
    # quality and ranking: the quality engine's sections, or 501 while it is not built in
    for kind in ("quality", "ranking"):
        r = rs.analyst.get(f"/api/v1/reports/{kind}", params={"period": PERIOD})
        if r.status_code == 501:
            assert T.assert_problem(r, 501)["type"] == "urn:dtm:problem:not_implemented"
        else:
            assert r.status_code == 200, r.text
            assert r.json()["kind"] == kind and r.json()["sections"]


def test_dtm_report_cli_while_the_server_runs(rs, tmp_path):
    out = tmp_path / "cli.json"
    T.run_dtm("report", "transactions", "--data-dir", rs.data_dir, "--period", PERIOD,
              "--format", "json", "-o", out)
    doc = json.loads(out.read_text())
    _, rows = section(doc, "by_system")
    api = section(get_report(rs).json(), "by_system")[1]
    assert rows == api
    T.run_dtm("report", "transactions", "--data-dir", rs.data_dir, "--period", PERIOD,
              "--format", "pdf", "--lang", "en", "-o", tmp_path / "cli.pdf")
    assert (tmp_path / "cli.pdf").read_bytes()[:5] == b"%PDF-"
    p = T.run_dtm("report", "transactions", "--data-dir", rs.data_dir, "--period", PERIOD,
                  "--format", "csv")
    assert NAME_A in p.stdout
    for args in (("sales", "--period", PERIOD, "--format", "json"),
                 ("transactions", "--period", "2026-13", "--format", "json"),
                 ("transactions", "--period", PERIOD, "--format", "docx"),
                 ("transactions", "--period", PERIOD, "--format", "pdf")):
        p = T.run_dtm("report", *args, "--data-dir", rs.data_dir, check=False)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.startswith("dtm: ") and p.stdout == ""
    p = T.run_dtm("report", "transactions", "--data-dir", rs.data_dir, "--period", PERIOD,
                  "--format", "json", "-o", tmp_path / "no" / "such" / "dir.json", check=False)
    assert p.returncode == 1 and "cannot write" in p.stderr


def test_the_scheduled_report_of_yesterday_is_kept(rs):
    day = yesterday().isoformat()

    def kept():
        r = rs.analyst.get("/api/v1/reports")
        assert r.status_code == 200, r.text
        return [x for x in r.json()["reports"] if x["period"] == day]
    rows = T.wait_for(lambda: len(kept()) >= 4, timeout=30)
    assert rows, rs.log_tail()
    got = {(x["kind"], x["lang"]) for x in kept()}
    assert got == {("transactions", "vi"), ("transactions", "en"), ("connectivity", "vi"),
                   ("connectivity", "en")}
    x = next(x for x in kept() if x["kind"] == "transactions" and x["lang"] == "vi")
    assert x["formats"] == ["json", "csv", "xlsx", "pdf"] and x["size"] > 100
    r = rs.analyst.get(x["urls"]["json"])
    assert r.status_code == 200 and r.headers["DTM-Report"] == "kept"
    doc = r.json()
    assert doc["period"] == day and doc["provisional"] is False
    _, rows = section(doc, "by_service")
    got = {r["service"]: r for r in rows if r["system"] == rs.codes["A"]}
    assert (got["SV03"]["total"], got["SV03"]["failed"], got["SV03"]["p95_ms"]) == (2, 1, 90)
    r = rs.analyst.get(x["urls"]["pdf"])
    assert r.status_code == 200 and r.content[:5] == b"%PDF-"
    assert r.headers["DTM-Report"] == "kept"
    # produced once: the log has one progress line per report (the server writes its log out
    # every 200 ms: wait for the line, then count)
    line = f'"msg":"report produced","kind":"transactions","period":"{day}","lang":"vi"'
    assert T.wait_for(lambda: line in rs.log_text(), timeout=5), rs.log_tail()
    assert rs.log_text().count(line) == 1


def test_connectivity_outage_of_a_system_whose_heartbeats_stop(rs):
    c = rs.systems["C"]
    code = rs.codes["C"]

    def status():
        r = rs.analyst.get(f"/api/v1/systems/{code}")
        assert r.status_code == 200, r.text
        return r.json()
    assert rs.post("/api/v1/heartbeat", headers=c.headers, json={}).status_code in (200, 202, 204)
    assert T.wait_for(lambda: status()["status"] == "online", timeout=15), status()
    # no heartbeat: offline once online_within has passed (as the evaluator records it)
    def offline(ended):
        return [i for i in status()["intervals"]
                if i["status"] == "offline" and (i["until"] or not ended)]
    assert T.wait_for(lambda: offline(False), timeout=20), status()
    assert rs.post("/api/v1/heartbeat", headers=c.headers, json={}).status_code in (200, 202, 204)
    assert T.wait_for(lambda: offline(True), timeout=15), status()
    # the first outage, ended; a slow machine may let the system go offline again since
    off = offline(True)[0]
    today = dt.datetime.now(VN).date().isoformat()
    doc = get_report(rs, kind="connectivity", period=today).json()
    assert doc["provisional"] is True
    assert [s["id"] for s in doc["sections"]] == ["uptime", "outages", "heartbeat_gaps",
                                                  "history"]
    _, outages = section(doc, "outages")
    mine = [o for o in outages if o["system"] == code]
    duration = int((iso(off["until"]) - iso(off["since"])).total_seconds())
    assert mine[0] == {"system": code, "start": off["since"], "end": off["until"],
                       "duration_s": duration}
    assert all(iso(o["start"]) >= iso(off["until"]) for o in mine[1:]), mine
    _, gaps = section(doc, "heartbeat_gaps")
    g = [x for x in gaps if x["system"] == code]
    assert len(g) == len(mine) and g[0]["next_contact"] == off["until"]
    assert iso(off["since"]) - iso(g[0]["last_contact"]) == dt.timedelta(seconds=ONLINE_WITHIN)
    assert g[0]["gap_s"] == duration + ONLINE_WITHIN
    _, uptime = section(doc, "uptime")
    u = next(x for x in uptime if x["system"] == code)
    assert u["outages"] == len(mine)
    assert u["offline_s"] == sum(o["duration_s"] for o in mine)
    assert u["longest_outage_s"] == max(o["duration_s"] for o in mine)
    assert 0 < u["uptime"] < 1
    # whole seconds in the columns, the exact share in uptime
    assert abs(u["uptime"] * u["observed_s"] - (u["online_s"] + u["degraded_s"])) <= 2
    # the other systems were never seen today: no uptime figure, no outage
    a = next(x for x in uptime if x["system"] == rs.codes["A"])
    assert a["uptime"] is None and a["outages"] == 0
    _, hist = section(doc, "history")
    mine_h = [h for h in hist if h["system"] == code]
    assert [h["status"] for h in mine_h][:3] == ["trực tuyến", "mất kết nối", "trực tuyến"]
    assert (mine_h[1]["from"], mine_h[1]["to"]) == (off["since"], off["until"])


def iso(s):
    return dt.datetime.fromisoformat(s)
