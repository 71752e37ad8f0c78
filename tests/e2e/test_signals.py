"""Signals (CONTRACT §1): SIGHUP reloads config and TLS certificate without dropping connections;
SIGTERM/SIGINT drain in-flight requests and exit 0."""

import http.client
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

import dtmtest as T

pytestmark = pytest.mark.owns_server


def served_cert_der(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.getpeercert(binary_form=True)


def s_client_fingerprint(port):
    """The SHA-256 fingerprint of the certificate the server presents, as `openssl s_client`
    sees it (a real TLS client other than Python's)."""
    hello = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                            "-servername", "localhost"], input="", capture_output=True,
                           text=True, timeout=30)
    fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
                        input=hello.stdout, capture_output=True, text=True, timeout=30)
    return fp.stdout.strip()


def file_fingerprint(path):
    return subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                           str(path)], capture_output=True, text=True, check=True).stdout.strip()


def pem_to_der(path):
    pem = path.read_text()
    a = pem.index("-----BEGIN CERTIFICATE-----")
    b = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(pem[a:b])


def test_sighup_reloads_certificate_and_keeps_connections(own_server, tmp_path):
    srv = own_server()
    src = srv.add_system()
    old_der = served_cert_der(srv.https_port)
    assert old_der == pem_to_der(srv.data_dir / "tls.crt")
    old_fp = s_client_fingerprint(srv.https_port)
    assert old_fp.startswith("sha256 Fingerprint=")
    assert old_fp == file_fingerprint(srv.data_dir / "tls.crt")

    # keep-alive connections on both listeners, opened before the reload
    h = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    h.request("GET", "/healthz")
    r0 = h.getresponse()
    assert r0.status == 200
    r0.read()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    hs = http.client.HTTPSConnection("127.0.0.1", srv.https_port, timeout=10, context=ctx)
    hs.request("GET", "/healthz")
    hs.getresponse().read()
    sock_h, sock_hs = h.sock, hs.sock

    # a new certificate in the data dir
    crt, key = tmp_path / "new.crt", tmp_path / "new.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-subj", "/CN=dtm-reload-test", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    shutil.copyfile(key, srv.data_dir / "tls.key")
    shutil.copyfile(crt, srv.data_dir / "tls.crt")
    (srv.data_dir / "tls.key").chmod(0o600)

    log_before = len(srv.log_text())
    srv.signal(signal.SIGHUP)
    assert T.wait_for(lambda: "reload" in srv.log_text()[log_before:].lower(), timeout=5), \
        "no log line with 'reload' after SIGHUP:\n" + srv.log_tail()
    time.sleep(0.2)
    assert srv.proc.poll() is None, "the server exited on SIGHUP"

    # the old connections still work, on the same sockets
    h.request("GET", "/healthz")
    r = h.getresponse()
    assert r.status == 200
    r.read()
    assert h.sock is sock_h, "the HTTP keep-alive connection was dropped by the reload"
    hs.request("GET", "/healthz")
    r = hs.getresponse()
    assert r.status == 200
    r.read()
    assert hs.sock is sock_hs, "the HTTPS keep-alive connection was dropped by the reload"
    h.close()
    hs.close()

    # new TLS connections get the new certificate
    assert T.wait_for(lambda: served_cert_der(srv.https_port) == pem_to_der(crt), timeout=3), \
        "after SIGHUP the HTTPS listener still serves the old certificate"
    new_fp = s_client_fingerprint(srv.https_port)
    assert new_fp == file_fingerprint(crt) and new_fp != old_fp, (old_fp, new_fp)
    # and ingest still works on both listeners
    T.assert_ok(srv.ingest(src, [T.txn()]))
    s = T.new_session()
    T.assert_ok(s.post(srv.https_url + "/api/v1/ingest/transactions", json=[T.txn()],
                       headers=src.headers, timeout=30))
    assert srv.stop() == 0


def test_sighup_repeated_under_load(own_server):
    srv = own_server()
    src = srv.add_system()
    for _ in range(5):
        srv.signal(signal.SIGHUP)
        T.assert_ok(srv.ingest(src, [T.txn() for _ in range(20)]))
        time.sleep(0.05)
    assert srv.proc.poll() is None
    assert srv.stop() == 0


def padded_body(size):
    rec = T.txn()
    head = json.dumps([rec]).encode()
    return rec, head[:-1] + b" " * (size - len(head)) + b"]"


def set_conf(path, section, key, value):
    """Sets `key = value` in [section] of an INI file (replacing the line or adding it)."""
    lines = path.read_text().splitlines()
    out, cur, done = [], None, False
    for ln in lines:
        m = re.match(r"^\s*\[([^\]]+)\]", ln)
        if m:
            if cur == section and not done:
                out.append(f"{key} = {value}")
                done = True
            cur = m.group(1).strip()
        elif cur == section and re.match(rf"^\s*{re.escape(key)}\s*=", ln):
            ln, done = f"{key} = {value}", True
        out.append(ln)
    if not done:
        if cur != section:
            out.append(f"[{section}]")
        out.append(f"{key} = {value}")
    path.write_text("\n".join(out) + "\n")


def reload(srv):
    n = srv.log_text().lower().count("reload")
    srv.signal(signal.SIGHUP)
    assert T.wait_for(lambda: srv.log_text().lower().count("reload") > n, timeout=5), \
        "no log line with 'reload' after SIGHUP:\n" + srv.log_tail()
    time.sleep(0.1)
    assert srv.proc.poll() is None, "the server exited on SIGHUP:\n" + srv.log_tail()


def test_sighup_reloads_config(own_server):
    srv = own_server(https=False)
    src = srv.add_system()
    conf = srv.data_dir / "dtm.conf"
    original = conf.read_text()
    size = 100_000
    rec, body = padded_body(size)
    r = srv.ingest(src, None, data=body, headers={"Content-Type": "application/json"})
    assert T.counts(T.assert_ok(r)) == (1, 0, 0, 0)

    set_conf(conf, "ingest", "max_body", "65536")
    reload(srv)
    rec, body = padded_body(size)
    r = srv.ingest(src, None, data=body, headers={"Content-Type": "application/json"})
    T.assert_problem(r, 413)
    assert srv.record(src, rec["txn_id"]).status_code == 404

    conf.write_text(original)
    reload(srv)
    r = srv.ingest(src, None, data=body, headers={"Content-Type": "application/json"})
    assert T.counts(T.assert_ok(r)) == (1, 0, 0, 0)

    # A broken config on SIGHUP: the server keeps serving with the config it has.
    set_conf(conf, "ingest", "no_such_setting", "1")
    srv.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert srv.proc.poll() is None, "a bad config on SIGHUP stopped the server"
    rec, body = padded_body(size)
    r = srv.ingest(src, None, data=body, headers={"Content-Type": "application/json"})
    assert T.counts(T.assert_ok(r)) == (1, 0, 0, 0)
    conf.write_text(original)
    assert srv.stop() == 0


def send_partial_request(port, api_key, body, keep_back):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = (f"POST /api/v1/ingest/transactions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nX-API-Key: {api_key}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    s.sendall(head + body[:-keep_back])
    return s


def read_response(s):
    s.settimeout(60)
    resp = http.client.HTTPResponse(s)
    resp.begin()
    data = resp.read()
    return resp.status, data


def test_sigterm_drains_in_flight_request(own_server):
    srv = own_server()
    src = srv.add_system()
    recs = [T.txn() for _ in range(5000)]
    body = T.body_json(recs)
    s = send_partial_request(srv.http_port, src.api_key, body, keep_back=2000)
    time.sleep(0.3)  # the server has the headers and most of the body
    srv.signal(signal.SIGTERM)
    time.sleep(0.3)
    s.sendall(body[-2000:])
    status, data = read_response(s)
    s.close()
    assert status == 200, f"in-flight request got {status} after SIGTERM: {data[:300]!r}"
    b = json.loads(data)
    assert (b["accepted"], b["rejected"]) == (5000, 0), b
    try:
        rc = srv.proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail("the server did not exit within 30 s of SIGTERM")
    assert rc == 0, f"exit status {rc} after SIGTERM; log:\n{srv.log_tail()}"
    srv._close()

    # everything acknowledged is there after a restart
    srv.start()
    rc_ = srv.receipt(src, b["receipt"])
    assert rc_.status_code == 200, rc_.text
    assert rc_.json()["accepted"] == 5000
    for rec in (recs[0], recs[2500], recs[-1]):
        assert srv.record(src, rec["txn_id"]).status_code == 200
    assert srv.stop() == 0


def test_sigterm_refuses_new_connections_then_exits(own_server):
    srv = own_server()
    srv.signal(signal.SIGTERM)
    assert srv.proc.wait(30) == 0
    srv._close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.http_port), timeout=2).close()


def test_sigint_exits_0(own_server):
    srv = own_server()
    srv.signal(signal.SIGINT)
    try:
        rc = srv.proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail("the server did not exit within 30 s of SIGINT")
    assert rc == 0
    srv._close()


def test_restart_keeps_data_and_keys(own_server):
    srv = own_server()
    src = srv.add_system()
    rec = T.txn()
    b = T.assert_ok(srv.ingest(src, [rec]))
    assert srv.stop() == 0
    srv.start()
    assert srv.record(src, rec["txn_id"]).json()["receipt"] == b["receipt"]
    assert T.counts(T.assert_ok(srv.ingest(src, [rec]))) == (0, 1, 0, 0)
    assert srv.stop() == 0


def test_sighup_loads_dataset_definitions_stored_elsewhere(own_server):
    """A definition stored by another node (or restored) while this server runs is unknown to
    it until SIGHUP, which loads it with the configuration (issue 10, item 4)."""
    srv = own_server()
    src = srv.add_system()
    d = srv.get("/api/v1/datasets/transactions").json()
    d.update(code="hup_defined", version=1, title={"vi": "Định nghĩa qua SIGHUP",
                                                   "en": "Defined through SIGHUP"})
    assert srv.get("/api/v1/datasets/hup_defined").status_code == 404
    if T.pgcluster.enabled():
        con = T.open_db(srv.data_dir)
    else:
        import sqlite3
        con = sqlite3.connect(str(srv.data_dir / "dtm.db"), timeout=10)
    con.execute("INSERT INTO dataset_defs(code,definition,updated_at,updated_by) "
                "VALUES(?,?,?,?)", ("hup_defined", json.dumps(d), 1, "another-node"))
    con.commit()
    con.close()
    assert srv.get("/api/v1/datasets/hup_defined").status_code == 404
    before = len(srv.log_text())
    srv.signal(signal.SIGHUP)
    assert T.wait_for(lambda: "dataset definition loaded" in srv.log_text()[before:], timeout=5), \
        srv.log_tail()
    r = srv.get("/api/v1/datasets/hup_defined")
    assert r.status_code == 200 and r.json()["version"] == 1, r.text
    T.assert_ok(srv.ingest(src, [T.txn(system_code=src.code)], dataset="hup_defined"))
    # a second SIGHUP loads nothing again (same version)
    before = len(srv.log_text())
    srv.signal(signal.SIGHUP)
    assert T.wait_for(lambda: "configuration reloaded" in srv.log_text()[before:], timeout=5)
    assert "dataset definition loaded" not in srv.log_text()[before:]
    assert srv.stop() == 0
