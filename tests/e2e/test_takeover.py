"""Restarts without downtime (issue 10, item 4): `dtm serve --takeover` receives the listening
sockets of the server running on the same data dir (DATA_DIR/serve.sock); the old one stops
accepting, answers every request it has, closes each kept-alive connection with its next answer,
ends cleanly, and the new one serves on the same sockets — so clients under load see no failed
request, and every acknowledged record is stored."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest
import requests

import dtmtest as T

pytestmark = pytest.mark.owns_server


def load(srv, system, stop, results, tls=False):
    """One client with a kept-alive connection: ingest one record per request until stopped."""
    s = T.new_session()
    base = srv.https_url if tls else srv.base_url
    while not stop.is_set():
        rec = T.txn(txn_id=T.uid("TKO"))
        try:
            r = s.post(base + "/api/v1/ingest/transactions", json=[rec], headers=system.headers,
                       timeout=30, verify=False)
            results.append((r.status_code, rec["txn_id"], r.text[:200]))
        except requests.RequestException as e:
            results.append(("exception", rec["txn_id"], repr(e)))
    s.close()


def count_of(srv, system):
    r = srv.get("/api/v1/stats/transactions", params={"metrics": "count", "plan": "scan"},
                headers=system.headers)
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    return rows[0][0] if rows else 0


def test_takeover_under_load_fails_no_request(own_server, tmp_path):
    old = own_server()
    src = old.add_system()
    stop, results = threading.Event(), []
    clients = [threading.Thread(target=load, args=(old, src, stop, results, i % 4 == 3))
               for i in range(12)]
    for c in clients:
        c.start()
    new = T.DtmServer(old.data_dir, log_path=tmp_path / "new.stderr.log")
    new.http_port, new.https_port = old.http_port, old.https_port
    try:
        assert T.wait_for(lambda: len(results) >= 200, timeout=30), "the load did not start"
        new.start(extra_args=("--takeover",))
        # the old server hands over and ends by itself, cleanly
        assert old.proc.wait(timeout=60) == 0, old.log_tail()
        assert T.wait_for(lambda: "previous server has ended" in new.log_text(), timeout=30), \
            new.log_tail()
        n_at_handover = len(results)
        # the new one takes the load on the same ports
        assert T.wait_for(lambda: len(results) >= n_at_handover + 200, timeout=30), \
            "no request answered after the handover:\n" + new.log_tail()
        stop.set()
        for c in clients:
            c.join(timeout=60)
        failed = [r for r in results if r[0] not in (200, 201, 202)]
        assert not failed, f"{len(failed)} of {len(results)} requests failed, e.g. {failed[:5]}"
        assert new.proc.poll() is None, new.log_tail()
        # every acknowledged record is stored, once
        assert count_of(new, src) == len(results)
        for code, txn_id, _ in results[:: max(1, len(results) // 20)]:
            assert new.record(src, txn_id).status_code == 200
        # the logs and the audit trail say what happened
        assert "a successor took over the listening sockets" in old.log_text()
        assert "listening sockets received" in new.log_text()
        audit = new.dtm("audit", "list", "--data-dir", str(new.data_dir), "--action",
                        "server.stopped").stdout
        assert "takeover" in audit, audit
        assert new.stop() == 0
    finally:
        stop.set()
        new.kill9()


def test_takeover_twice_in_a_row(own_server, tmp_path):
    """The successor listens on serve.sock in turn: a second upgrade works the same way."""
    first = own_server()
    src = first.add_system()
    T.assert_ok(first.ingest(src, [T.txn()]))
    current = first
    for i in range(2):
        nxt = T.DtmServer(first.data_dir, log_path=tmp_path / f"next{i}.stderr.log")
        nxt.http_port, nxt.https_port = first.http_port, first.https_port
        try:
            nxt.start(extra_args=("--takeover",))
            assert current.proc.wait(timeout=60) == 0
            assert T.wait_for(lambda: "previous server has ended" in nxt.log_text(), timeout=30)
            assert T.wait_for(lambda: (nxt.data_dir / "serve.sock").exists(), timeout=10)
            T.assert_ok(nxt.ingest(src, [T.txn()]))
        except BaseException:
            nxt.kill9()
            raise
        if current is not first:
            current._close()
        current = nxt
    assert count_of(current, src) == 3
    assert current.stop() == 0


def test_takeover_without_a_running_server_starts_as_usual(own_server):
    srv = own_server(start=False)
    srv.start(extra_args=("--takeover",))
    assert T.wait_for(lambda: "no server runs on this data dir" in srv.log_text(), timeout=5)
    src = srv.add_system()
    T.assert_ok(srv.ingest(src, [T.txn()]))
    assert srv.stop() == 0


def test_serve_sock_is_private(own_server):
    srv = own_server()
    sock = srv.data_dir / "serve.sock"
    assert T.wait_for(sock.exists, timeout=5)
    assert sock.stat().st_mode & 0o077 == 0
    # a stranger speaking nonsense gets nothing and the server serves on
    out = subprocess.run(["python3", "-c",
                          "import socket,sys; s=socket.socket(socket.AF_UNIX);"
                          f"s.connect({str(sock)!r}); s.sendall(b'HELLO?\\n');"
                          "s.settimeout(5); print(len(s.recv(100)))"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "0", out
    assert srv.get("/healthz").status_code == 200
    assert srv.stop() == 0
    assert not sock.exists()


def test_sigusr2_starts_the_successor_itself(own_server):
    """`kill -USR2` (docs/ops/INSTALL.md: the upgrade of a systemd service) makes the server
    start the binary at its own path with --takeover; the successor serves on the same ports."""
    old = own_server()
    src = old.add_system()
    T.assert_ok(old.ingest(src, [T.txn()]))
    old.signal(signal.SIGUSR2)
    assert old.proc.wait(timeout=60) == 0, old.log_tail()
    pids = []

    def successor_listening():
        pids[:] = [json.loads(l)["pid"] for l in old.log_text().splitlines()
                   if '"msg":"listening"' in l]
        return len(pids) == 2

    assert T.wait_for(successor_listening, timeout=30), old.log_tail()
    new_pid = pids[1]
    assert "upgrade: successor started" in old.log_text()
    try:
        s = T.new_session()
        r = s.post(old.base_url + "/api/v1/ingest/transactions", json=[T.txn()],
                   headers=src.headers, timeout=30)
        assert r.status_code == 200, r.text
        assert count_of(old, src) == 2
    finally:
        os.kill(new_pid, signal.SIGTERM)
    assert T.wait_for(lambda: not os.path.exists(f"/proc/{new_pid}") or
                      open(f"/proc/{new_pid}/stat").read().split()[2] == "Z", timeout=30)


def test_a_second_server_cannot_share_the_port(own_server, tmp_path):
    """Only a takeover moves the sockets: another `dtm serve` on a port in use is refused
    (SO_REUSEPORT would have let the two answer turns silently)."""
    first = own_server()
    other = tmp_path / "other"
    T.dtm_init(str(other))
    p = subprocess.run([T.DTM_BIN, "serve", "--data-dir", str(other), "--http",
                        f"127.0.0.1:{first.http_port}", "--https", "off"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p
    assert "cannot listen on 127.0.0.1:%d" % first.http_port in p.stderr, p.stderr
    assert first.stop() == 0
