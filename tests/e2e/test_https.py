"""The HTTPS listener (T2.5; CONTRACT §2) and the curl CLI as a real client on both listeners:
TLS 1.2+ only, the certificate of the data dir, ingest over TLS."""

import json
import socket
import ssl

import pytest

import dtmtest as T


def https_host_port(server):
    hp = server.https_url.split("://", 1)[1].rstrip("/")
    host, port = hp.rsplit(":", 1)
    return host, int(port)


def test_curl_https_healthz(needs_https):
    server = needs_https
    code, body, _, rc, err = T.curl("-k", server.https_url + "/healthz")
    assert (code, rc) == (200, 0), (code, rc, err)
    assert json.loads(body)["status"] == "ok"


@pytest.mark.parametrize("ver", ["1.2", "1.3"])
def test_curl_tls_versions_accepted(needs_https, ver):
    server = needs_https
    code, _, _, rc, err = T.curl("-k", f"--tlsv{ver}", "--tls-max", ver,
                                 server.https_url + "/healthz")
    assert (code, rc) == (200, 0), f"TLS {ver}: {code} rc={rc} {err}"


def test_curl_tls_1_1_refused(needs_https):
    server = needs_https
    # Lower the client's own security level so that it is the server that refuses.
    code, _, _, rc, err = T.curl("-k", "--tlsv1.0", "--tls-max", "1.1",
                                 "--ciphers", "DEFAULT:@SECLEVEL=0",
                                 server.https_url + "/healthz")
    assert rc != 0 and code == 0, f"TLS ≤ 1.1 was accepted: {code} rc={rc}"


def test_python_tls_1_1_refused(needs_https):
    host, port = https_host_port(needs_https)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ssl.SSLError, ValueError) as e:
        pytest.skip(f"this OpenSSL cannot even offer TLS 1.1: {e}")
    with socket.create_connection((host, port), timeout=5) as s:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with ctx.wrap_socket(s, server_hostname=host) as t:
                pytest.fail(f"server accepted {t.version()}")


def test_certificate_is_the_data_dirs(needs_https):
    server = needs_https
    host, port = https_host_port(server)
    pem = (server.data_dir / "tls.crt").read_text()
    first = pem[pem.index("-----BEGIN CERTIFICATE-----"):]
    first = first[:first.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    expected = ssl.PEM_cert_to_DER_cert(first)
    got = served_cert_der(host, port)
    assert got == expected, "the HTTPS listener does not serve D/tls.crt"


def served_cert_der(host, port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=host) as t:
            assert t.version() in ("TLSv1.2", "TLSv1.3"), t.version()
            return t.getpeercert(binary_form=True)


def test_curl_ingest_over_https(needs_https, src, tmp_path):
    server = needs_https
    recs = [T.txn(), T.txn()]
    f = tmp_path / "recs.json"
    f.write_bytes(T.body_json(recs))
    code, body, headers, rc, err = T.curl(
        "-k", "-X", "POST", "-H", "Content-Type: application/json",
        "-H", f"X-API-Key: {src.api_key}", "--data-binary", f"@{f}",
        server.https_url + "/api/v1/ingest/transactions")
    assert code == 200, (code, rc, err, body[:300])
    b = json.loads(body)
    assert (b["accepted"], b["duplicates"], b["rejected"]) == (2, 0, 0)
    assert "x-request-id" in headers.lower()
    code, body, _, rc, err = T.curl(
        "-k", "-G", "-H", f"X-API-Key: {src.api_key}",
        "--data-urlencode", f"txn_id={recs[0]['txn_id']}",
        server.https_url + "/api/v1/datasets/transactions/record")
    assert code == 200, (code, err, body[:300])
    assert json.loads(body)["record"]["txn_id"] == recs[0]["txn_id"]


def test_requests_over_https(needs_https, src):
    server = needs_https
    s = T.new_session()
    r = s.post(server.https_url + "/api/v1/ingest/transactions", json=[T.txn()],
               headers=src.headers, timeout=30)
    assert T.counts(T.assert_ok(r)) == (1, 0, 0, 0)


# ---- curl on the plain HTTP listener: a few status codes with the CLI client -------------


def test_curl_http_status_codes(server, src, tmp_path):
    url = server.url("/api/v1/ingest/transactions")
    csv_f = tmp_path / "recs.csv"
    csv_f.write_bytes(T.body_csv([T.txn(), T.txn(), T.txn(channel="x")]))
    xml_f = tmp_path / "recs.xml"
    xml_f.write_bytes(T.body_xml([T.txn()]))
    key = ["-H", f"X-API-Key: {src.api_key}"]
    cases = [
        (200, key + ["-H", "Content-Type: text/csv", "--data-binary", f"@{csv_f}", url]),
        (200, key + ["-H", "Content-Type: application/xml", "--data-binary", f"@{xml_f}", url]),
        (401, ["-H", "Content-Type: text/csv", "--data-binary", f"@{csv_f}", url]),
        (415, key + ["-H", "Content-Type: text/plain", "--data-binary", f"@{csv_f}", url]),
        (400, key + ["-H", "Content-Type: application/json", "--data-binary", "[{", url]),
        (404, key + ["-H", "Content-Type: application/json", "--data-binary", "[]",
                     server.url("/api/v1/ingest/nope")]),
    ]
    for want, args in cases:
        code, body, headers, rc, err = T.curl("-X", "POST", *args)
        assert code == want, f"curl {args[-4:]}: expected {want}, got {code} {body[:300]!r}"
        if want == 200:
            b = json.loads(body)
            assert b["accepted"] >= 1
        else:
            assert "application/problem+json" in headers.lower(), headers
