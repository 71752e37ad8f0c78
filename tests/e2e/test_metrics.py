"""Prometheus metrics (CONTRACT §7, issue 10 item 3): GET /metrics in the text exposition format,
checked with `promtool check metrics` (Debian's prometheus package) and scraped by a real
Prometheus server; its counters move with the traffic (requests by route and status, records by
dataset, system and outcome, the writer's commits); only this machine may read it unless a
bearer token is configured, kept sealed in the store."""

import re
import shutil
import socket
import subprocess
import time

import pytest
import requests

import dtmtest as T
import pgcluster
from alert_sinks import append_conf, wait_until

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")


def samples(text):
    """{(name, frozenset(labels)): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(s, name, **labels):
    return s.get((name, frozenset(labels.items())))


@pytest.mark.skipif(not PROMTOOL, reason="promtool (Debian package prometheus) is not installed")
def test_metrics_move_with_traffic_and_pass_promtool(own_server):
    srv = own_server(https=False)
    s = srv.add_system()
    recs = [T.txn(system_code=s.code) for _ in range(3)]
    T.assert_ok(srv.ingest(s, recs))
    T.assert_ok(srv.ingest(s, recs[0]))  # a duplicate
    bad = T.txn(system_code=s.code, channel="not-a-channel")
    assert srv.ingest(s, [bad]).status_code == 422
    assert srv.get("/api/v1/nothing-here").status_code == 404

    r = srv.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=r.text, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    m = samples(r.text)
    rec = dict(dataset="transactions", system=s.code)
    assert value(m, "dtm_records_total", outcome="accepted", **rec) == 3
    assert value(m, "dtm_records_total", outcome="duplicate", **rec) == 1
    assert value(m, "dtm_records_total", outcome="rejected", **rec) == 1
    assert value(m, "dtm_http_requests_total", route="ingest", status="200") == 2
    assert value(m, "dtm_http_requests_total", route="ingest", status="422") == 1
    assert value(m, "dtm_http_requests_total", route="none", status="404") >= 1
    assert value(m, "dtm_http_request_duration_seconds_count", route="ingest") == 3
    assert value(m, "dtm_writer_commit_records_sum") >= 3
    assert value(m, "dtm_writer_commit_duration_seconds_count") >= 1
    assert value(m, "dtm_systems", status="online") >= 1
    # the gauge is of one instant: the connection logs of the calls above are a writer job of
    # their own, flushed every 50 ms, that a scrape may find queued; the queue then empties
    assert value(m, "dtm_writer_queue_depth") >= 0
    assert wait_until(lambda: value(samples(srv.get("/metrics").text),
                                    "dtm_writer_queue_depth") == 0, timeout=10)
    assert value(m, "dtm_alerts_firing", severity="critical") == 0
    if not pgcluster.CLUSTER:  # the SQLite files' sizes (no such gauge on PostgreSQL yet)
        assert value(m, "dtm_store_bytes", file="dtm.db") > 0
    assert value(m, "process_resident_memory_bytes") > 1e6
    assert value(m, "process_open_fds") > 3
    assert abs(value(m, "process_start_time_seconds") - time.time()) < 600
    # the next scrape counts the previous one
    m2 = samples(srv.get("/metrics").text)
    assert value(m2, "dtm_http_requests_total", route="metrics", status="200") >= 1


def test_metrics_token(own_server):
    srv = own_server(start=False, https=False)
    token = T.run_dtm("secret", "set", "prom", "--generate", "--data-dir", str(srv.data_dir),
                      "--json").stdout
    token = __import__("json").loads(token)["secret"]
    append_conf(srv.data_dir, "[metrics]\ntoken = store:prom\n")
    srv.start(https=False)
    r = srv.get("/metrics")
    assert r.status_code == 401 and "Bearer" in r.headers.get("WWW-Authenticate", "")
    assert srv.get("/metrics", headers={"Authorization": "Bearer " + token[:-1] + "x"}
                   ).status_code == 401
    assert srv.get("/metrics", headers={"Authorization": "Bearer " + token}).status_code == 200
    assert token not in srv.log_text()


def free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


@pytest.mark.skipif(not PROMETHEUS, reason="prometheus (Debian package) is not installed")
def test_a_real_prometheus_scrapes_it(own_server, tmp_path):
    srv = own_server(https=False)
    s = srv.add_system()
    T.assert_ok(srv.ingest(s, [T.txn(system_code=s.code) for _ in range(2)]))
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: dtm\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{srv.http_port}']\n")
    log = open(tmp_path / "prometheus.log", "w")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        def scraped():
            try:
                r = requests.get(f"http://127.0.0.1:{port}/api/v1/query", timeout=2, params={
                    "query": f'dtm_records_total{{system="{s.code}",outcome="accepted"}}'})
            except requests.RequestException:
                return None
            res = r.json().get("data", {}).get("result", [])
            return res if res and float(res[0]["value"][1]) == 2 else None
        res = wait_until(scraped, timeout=40, interval=0.5)
        assert res, (tmp_path / "prometheus.log").read_text()[-2000:]
        up = requests.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": "up"},
                          timeout=2).json()["data"]["result"]
        assert up and up[0]["value"][1] == "1"
    finally:
        prom.terminate()
        prom.wait(10)
        log.close()


DOCS = __import__("pathlib").Path(__file__).resolve().parents[2] / "docs" / "ops"


@pytest.mark.skipif(not PROMTOOL, reason="promtool (Debian package prometheus) is not installed")
def test_example_rules_and_dashboard_name_real_metrics(own_server):
    """The example alerting rules pass promtool, and every metric they and the dashboard use is
    one the server exposes."""
    p = subprocess.run([PROMTOOL, "check", "rules", str(DOCS / "prometheus-rules.yml")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    dash = __import__("json").loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for pa in dash["panels"] for t in pa["targets"]]
    exprs += re.findall(r"expr: >?\s*((?:.+\n)+?)\s+(?:for|labels):",
                        (DOCS / "prometheus-rules.yml").read_text())
    srv = own_server(https=False)
    s = srv.add_system()
    T.assert_ok(srv.ingest(s, [T.txn(system_code=s.code)]))
    exposed = {name for name, _ in samples(srv.get("/metrics").text)}
    exposed |= {n.rsplit("_", 1)[0] for n in exposed if n.endswith(("_bucket", "_sum", "_count"))}
    if pgcluster.CLUSTER:
        exposed.add("dtm_store_bytes")  # SQLite only
    used = {m for e in exprs for m in re.findall(r"\b((?:dtm|process)_[a-z_]+)", e)}
    assert used and used <= exposed | {"dtm_http_request_duration_seconds_bucket"}, \
        used - exposed


def test_dtm_status(own_server):
    """`dtm status`: with the server running, its uptime and queue (from its /metrics, found
    through DATA_DIR/serve.addr whatever port it was given); stopped, the store's part alone."""
    srv = own_server(https=False)
    s = srv.add_system()
    T.assert_ok(srv.ingest(s, [T.txn(system_code=s.code)]))
    out = __import__("json").loads(
        T.run_dtm("status", "--data-dir", str(srv.data_dir), "--json").stdout)
    assert out["server"] == f"running at http://127.0.0.1:{srv.http_port}", out
    # the queue at that instant: the connection log of the ingest may be in it
    assert re.fullmatch(r"\d+d \d\dh \d\dm", out["uptime"]) and out["queue_depth"] in ("0", "1")
    assert out["systems"].startswith("1 (online 1,"), out
    assert out["alerts_firing"].startswith("0 ") and out["last_backup"] == "never"
    assert out["store"].startswith("postgresql" if pgcluster.CLUSTER else "sqlite, ")
    assert out["version"]
    assert srv.stop() == 0
    assert not (srv.data_dir / "serve.addr").exists()
    p = T.run_dtm("status", "--data-dir", str(srv.data_dir))
    kv = T.parse_kv(p.stdout)
    # dtm.conf's listener (127.0.0.1:8080) is asked instead: not this test's server
    assert f":{srv.http_port}" not in kv["server"] and "8080" in kv["server"], kv
    assert kv["systems"].startswith("1 (")
