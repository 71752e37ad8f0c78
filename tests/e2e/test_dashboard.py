"""The dashboard's delivery (issue 6): `dtm` serves the embedded single-page app at / and at each
of its page paths (index.html; the app routes on the client), its content-hashed assets cached for
a year, gzip when accepted and inflated otherwise, strong ETags with 304 on If-None-Match, and the
page under a Content-Security-Policy that allows scripts and styles from its own origin only. The
API keeps priority over the dashboard's paths. (The app itself is tested in a real browser by
tests/browser/run.mjs.)"""

import gzip
import re

import pytest
import requests

import dtmtest as T

PAGES = ["/", "/index.html", "/login", "/systems", "/systems/ABC", "/explorer", "/batches",
         "/alerts", "/audit", "/admin"]


def get(server, path, headers=None, **kw):
    h = {"Accept-Encoding": "identity"}
    h.update(headers or {})
    return requests.get(server.base_url + path, headers=h, timeout=T.TIMEOUT, **kw)


@pytest.fixture(scope="module")
def assets(server):
    """The asset paths named by index.html (one script, one style sheet)."""
    html = get(server, "/").text
    paths = re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)
    assert any(p.endswith(".js") for p in paths) and any(p.endswith(".css") for p in paths), html
    return paths


def test_every_page_path_is_the_app(server):
    first = None
    for path in PAGES:
        r = get(server, path)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert r.headers["Cache-Control"] == "no-cache"  # revalidated: a new build shows at once
        assert '<div id="app">' in r.text
        first = first or r.text
        assert r.text == first


def test_page_csp_allows_only_own_origin(server):
    r = get(server, "/")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    # no inline script or style in the page, and nothing from another origin
    assert not re.search(r"<script(?![^>]*\bsrc=)", r.text)
    assert "<style" not in r.text and " style=" not in r.text
    assert "//" not in re.sub(r"<!--.*?-->", "", r.text, flags=re.S).replace("://", "")


def test_assets_gzip_immutable_and_small(server, assets):
    total = 0
    for path in assets:
        r = get(server, path, headers={"Accept-Encoding": "gzip, deflate, br"}, stream=True)
        raw = r.raw.read()
        assert r.status_code == 200
        assert r.headers["Content-Encoding"] == "gzip"
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert r.headers["Vary"] == "Accept-Encoding"
        assert r.headers["Content-Type"].startswith("text/javascript" if path.endswith(".js") else "text/css")
        total += len(raw)
        plain = get(server, path)  # identity: inflated by the server
        assert "Content-Encoding" not in plain.headers
        assert gzip.decompress(raw) == plain.content
        assert plain.headers["ETag"] != r.headers["ETag"]  # one strong tag per representation
    # Annex II: JavaScript + CSS at most 150 KB compressed
    assert total <= 150 * 1024, total


def test_gzip_refused_with_q0(server, assets):
    r = get(server, assets[0], headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert r.status_code == 200 and "Content-Encoding" not in r.headers


def test_etag_and_304(server, assets):
    for path in ["/", assets[0]]:
        r = get(server, path)
        tag = r.headers["ETag"]
        assert re.fullmatch(r'"[0-9a-f]{32}"', tag), tag
        r2 = get(server, path, headers={"If-None-Match": tag})
        assert r2.status_code == 304 and r2.content == b""
        assert r2.headers["ETag"] == tag
        # the gzip representation's tag (and a weak comparison) also match
        r3 = get(server, path, headers={"If-None-Match": f'"x", W/{tag[:-1]}-gz"',
                                        "Accept-Encoding": "gzip"})
        assert r3.status_code == 304
        r4 = get(server, path, headers={"If-None-Match": '"0000"'})
        assert r4.status_code == 200 and r4.content == r.content


def test_head_and_unknown_paths(server):
    r = requests.head(server.base_url + "/systems", timeout=T.TIMEOUT)
    assert r.status_code == 200 and r.content == b""
    for path in ["/assets/nope.js", "/nope", "/systems/A/B"]:
        r = get(server, path)
        assert r.status_code == 404, path
        assert r.headers["Content-Type"].startswith(T.PROBLEM_CT)
    r = requests.post(server.base_url + "/", timeout=T.TIMEOUT)
    assert r.status_code == 405


def test_api_keeps_priority(server):
    r = get(server, "/api/v1/session")
    assert r.status_code == 401 and r.headers["Content-Type"].startswith(T.PROBLEM_CT)
    assert get(server, "/healthz").json()["status"] == "ok"
