"""`dtm init --demo` (CONTRACT §9, issue 3): at least 20 systems of ministries and provinces, 90
days of transactions with daily and weekly rhythm and failures with reasons, one system that went
offline, one with a data-quality problem (its bad rows rejected by the real pipeline), matching
service_stats, records of every other built-in dataset — and the same picture for the same seed.
(The full-size run, a million records in under a minute, is timed by `make bench`.)
"""

import collections
import datetime as dt
import json

import dtmtest as T

END = "2026-10-31"


def demo(tmp_path, name, seed, records=20000):
    d = tmp_path / name
    p = T.run_dtm("init", "--data-dir", d, "--demo", "--seed", seed, "--demo-records", records,
                  "--demo-end", END, timeout=300)
    return d, T.parse_kv(p.stdout)


def export(d, dataset):
    p = T.run_dtm("export", "--data-dir", d, "--dataset", dataset, "--format", "ndjson",
                  timeout=120)
    return [json.loads(line) for line in p.stdout.splitlines()]


def test_demo_picture(tmp_path):
    d, out = demo(tmp_path, "a", 7)
    assert out["admin_password"] and int(out["demo_systems"]) >= 20
    systems = json.loads(T.run_dtm("system", "list", "--data-dir", d, "--json").stdout)
    systems = systems["systems"] if isinstance(systems, dict) else systems
    assert len(systems) >= 20
    names = " ".join(s["name"] for s in systems)
    assert "Bộ" in names and ("Hà Nội" in names or "Hồ Chí Minh" in names)
    txs = export(d, "transactions")
    assert len(txs) == int(out["demo_records"]) - sum(
        len(export(d, ds)) for ds in ("service_stats", "connection_logs", "security_events",
                                      "training_stats", "inspections", "documents"))
    days = collections.Counter(t["started_at"][:10] for t in txs)
    first, last = min(days), max(days)
    assert last == END and (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days == 89
    # weekly rhythm: an average weekday carries far more than an average Sunday
    by_wd = collections.defaultdict(list)
    for day, n in days.items():
        by_wd[dt.date.fromisoformat(day).weekday()].append(n)
    avg = {wd: sum(v) / len(v) for wd, v in by_wd.items()}
    assert avg[2] > 2.5 * avg[6], avg
    # daily rhythm: office hours above the small hours
    hours = collections.Counter(int(t["started_at"][11:13]) for t in txs)
    assert hours[10] > 5 * hours[3], hours
    # failures with reasons
    failed = [t for t in txs if t["status"] == "failed"]
    assert 0.01 < len(failed) / len(txs) < 0.15
    assert all(t.get("error_code") for t in failed) and any(t.get("error_reason") for t in failed)
    # one system went offline well before the end; the others were seen on the last days
    last_by_sys = {}
    for t in txs:
        last_by_sys[t["system_code"]] = max(last_by_sys.get(t["system_code"], ""), t["started_at"])
    quiet = [s for s, ts in last_by_sys.items() if ts[:10] < "2026-10-25"]
    assert len(quiet) == 1, quiet
    # one system had rows the dictionary rejects (recorded with the import)
    con = T.open_db(d)
    try:
        rejected = con.execute("SELECT sum(rejected) FROM batches WHERE dataset='transactions'"
                               ).fetchone()[0]
        codes = {r[0] for r in con.execute(
            "SELECT DISTINCT code FROM batch_errors")}
    finally:
        con.close()
    assert rejected == int(out["demo_rejected"]) > 0 and len(codes) >= 3, codes
    # service_stats match the transactions except a few deliberate mismatches
    stats = export(d, "service_stats")
    counted = collections.Counter((t["system_code"], t["service_code"], t["started_at"][:10])
                                  for t in txs)
    diff = [s for s in stats if s["period_type"] == "day" and
            counted[(s["system_code"], s["service_code"], s["period_start"])] != s["total"]]
    assert stats and 1 <= len(diff) <= 12, len(diff)
    for ds in ("connection_logs", "security_events", "training_stats", "inspections",
               "documents"):
        assert export(d, ds), ds
    # personal data went through masking
    assert all("*" in t["citizen_id"] for t in txs if "citizen_id" in t)


def test_demo_is_deterministic_per_seed(tmp_path):
    a, _ = demo(tmp_path, "a", 3, records=5000)
    b, _ = demo(tmp_path, "b", 3, records=5000)
    c, _ = demo(tmp_path, "c", 4, records=5000)
    ta, tb, tc = (export(x, "transactions") for x in (a, b, c))
    strip = lambda rows: sorted(json.dumps({k: v for k, v in r.items() if k != "citizen_id"},
                                           sort_keys=True) for r in rows)
    # citizen ids are masked with each data dir's own key, so they differ by design
    assert strip(ta) == strip(tb)
    assert strip(ta) != strip(tc)
    p = T.run_dtm("init", "--data-dir", tmp_path / "d", "--seed", "3", check=False)
    assert p.returncode == 2 and "--demo" in p.stderr
