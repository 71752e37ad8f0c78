"""Issue 8: the OpenAPI document (GET /api/openapi.json), the API reference (/docs), the public
data catalogue (GET /api/v1/datasets, /catalogue, the DCAT JSON-LD export) and the client
examples of docs/clients/.

- Every route of the binary's route table (`dtm routes`, the table the server dispatches on) is
  described by the served document, and the document describes no route that does not exist.
- The document is valid: @redocly/cli lint (from docs/api/node_modules) passes on it, in a
  network namespace without network when `unshare` can make one (it must work offline).
- Real answers of the server validate against the documented response schemas (jsonschema).
- A dataset defined with PUT shows in the document at once (its Record_<code> schema, a new ETag).
- The catalogue lists every dataset with the G2 fields and a quality summary that counts what was
  received; the JSON-LD export is real JSON-LD (parsed and queried with rdflib).
- docs/clients/curl.sh and python_requests.py run against the server and print what they should.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

import dtmtest as T
import peoplelib as P

REPO = Path(__file__).resolve().parents[2]
DOCS_API = REPO / "docs" / "api"
METHODS = ("get", "put", "post", "delete", "patch", "head")


def routes():
    """(method, pattern) of every route of the binary's table (the hidden `dtm routes`)."""
    out = T.run_dtm("routes").stdout
    rows = set()
    for line in out.splitlines():
        m, p = line.split(" ", 1)
        rows.add((m.lower(), p))
    assert len(rows) > 50, out
    return rows


def operations(doc):
    return {(m, p) for p, item in doc["paths"].items() for m in item if m in METHODS}


@pytest.fixture(scope="module")
def doc(server):
    r = server.get("/api/openapi.json")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def test_every_route_is_described_and_nothing_else(doc):
    table, described = routes(), operations(doc)
    missing = sorted(f"{m.upper()} {p}" for m, p in table - described)
    extra = sorted(f"{m.upper()} {p}" for m, p in described - table)
    assert not missing, "routes not described in src/api/openapi/*.json: " + ", ".join(missing)
    assert not extra, "described but not routes of src/api/routes.c: " + ", ".join(extra)


def test_document_shape_security_problems_and_dataset_schemas(server, doc):
    assert doc["openapi"].startswith("3.1")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header",
                                 "name": "X-API-Key"}
    assert schemes["OAuth2"]["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token"
    assert schemes["Session"]["in"] == "cookie" and schemes["Session"]["name"] == "dtm_session"
    assert schemes["CsrfToken"]["name"] == "X-CSRF-Token"
    problem = doc["components"]["responses"]["Problem"]["content"]["application/problem+json"]
    assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "errors" in doc["components"]["schemas"]["Problem"]["properties"]
    # one schema per dataset of the dictionary, with its fields and constraints
    codes = [d["code"] for d in server.get("/api/v1/datasets").json()["datasets"]]
    for c in codes:
        assert f"Record_{c}" in doc["components"]["schemas"], c
    tx = doc["components"]["schemas"]["Record_transactions"]
    assert tx["properties"]["status"]["enum"] == ["success", "failed", "pending"]
    assert tx["properties"]["citizen_id"]["pattern"] == "^[0-9]{12}$"
    assert tx["properties"]["citizen_id"]["x-personal"] is True
    assert "service_code" in tx["required"] and "system_code" not in tx["required"]
    # every operation documents its errors (a 4xx or 5xx answer, or a default one) and has a
    # summary and an operationId
    for m, p in operations(doc):
        o = doc["paths"][p][m]
        errors = [c for c in o["responses"] if c[0] in "45" or c == "default"]
        assert errors, f"{m.upper()} {p} documents no error answer"
        assert o.get("summary") and o.get("operationId"), f"{m.upper()} {p}"


def test_etag_languages_and_bad_parameter(server, doc):
    r = server.get("/api/openapi.json")
    tag = r.headers["ETag"]
    assert server.get("/api/openapi.json", headers={"If-None-Match": tag}).status_code == 304
    vi = server.get("/api/openapi.json", params={"lang": "vi"})
    assert vi.status_code == 200 and vi.headers["ETag"] != tag
    v = vi.json()
    assert v["info"]["title"] == doc["info"]["x-vi-title"]
    assert v["paths"]["/api/v1/ingest/{dataset}"]["post"]["summary"] == \
        "Gửi bản ghi (thời gian thực)"
    assert v["components"]["schemas"]["Record_transactions"]["title"] == "Giao dịch điện tử"
    assert doc["components"]["schemas"]["Record_transactions"]["title"] == \
        "Electronic transactions"
    T.assert_problem(server.get("/api/openapi.json", params={"lang": "fr"}), 400)


def test_a_new_dataset_shows_in_the_document_at_once(own_server):
    srv = own_server()  # people sign in over HTTPS (Secure cookies)
    a = P.Person(srv, srv.admin["admin_username"], srv.admin["admin_password"])
    a.login_ok()
    P.enrol(a)
    before = srv.get("/api/openapi.json")
    assert "Record_permit_docs" not in before.json()["components"]["schemas"]
    d = srv.get("/api/v1/datasets/documents").json()
    d.update(code="permit_docs", title={"vi": "Giấy phép", "en": "Permits"})
    d.pop("scope", None)  # the catalogue fields are optional for custom datasets
    d.pop("keywords", None)
    r = a.req("PUT", "/api/v1/datasets/permit_docs", json=d)
    assert r.status_code == 201, r.text
    after = srv.get("/api/openapi.json", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
    schemas = after.json()["components"]["schemas"]
    assert schemas["Record_permit_docs"]["title"] == "Permits"
    assert "doc_no" in schemas["Record_permit_docs"]["properties"]
    assert {"$ref": "#/components/schemas/Record_permit_docs"} in schemas["Record"]["anyOf"]
    listed = {x["code"]: x for x in srv.get("/api/v1/datasets").json()["datasets"]}
    assert not any(listed["permit_docs"]["scope"].values())  # optional: absent
    assert listed["permit_docs"]["quality"]["submitted"] == 0


def redocly():
    exe = DOCS_API / "node_modules" / ".bin" / "redocly"
    assert exe.exists(), f"{exe} is missing: scripts/deps.sh installs it (npm ci in docs/api/)"
    return exe


def test_redocly_lint_passes_offline(server, tmp_path):
    files = []
    for lang in ("en", "vi"):
        f = tmp_path / f"openapi.{lang}.json"
        f.write_bytes(server.get("/api/openapi.json", params={"lang": lang}).content)
        files.append(str(f))
    cmd = [str(redocly()), "lint", "--config", str(DOCS_API / "redocly.yaml"), *files]
    # no network: in a network namespace of its own when the machine allows one
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        cmd = ["unshare", "-n", *cmd]
    env = {**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
           "NO_COLOR": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]


def validator(doc, name):
    """A JSON Schema 2020-12 validator of components.schemas[name], refs resolved in doc."""
    root = dict(doc)
    root["$ref"] = f"#/components/schemas/{name}"
    return jsonschema.Draft202012Validator(
        root, resolver=jsonschema.RefResolver.from_schema(root))


def test_real_answers_match_the_documented_schemas(server, src, doc):
    def check(name, body):
        errs = sorted(validator(doc, name).iter_errors(body), key=str)
        assert not errs, f"{name}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errs[:5])

    ans = T.assert_ok(server.ingest(src, [T.txn(), T.txn(status="bogus")]))
    check("IngestResult", ans)
    check("Receipt", server.receipt(src, ans["receipt"]).json())
    check("Record_transactions", T.txn(system_code=src.code))
    assert list(validator(doc, "Record_transactions").iter_errors(T.txn(status="bogus")))
    check("Catalogue", server.get("/api/v1/datasets").json())
    check("DatasetDefinition", server.get("/api/v1/datasets/transactions").json())
    check("Heartbeat", server.post("/api/v1/heartbeat", headers=src.headers).json())
    check("SystemList", server.get("/api/v1/systems", headers=src.headers).json())
    check("StatsTable", server.get("/api/v1/stats/transactions", headers=src.headers,
                                   params={"metrics": "count", "group_by": "status"}).json())
    b = server.post("/api/v1/batches", params={"dataset": "transactions"}, headers={
        **src.headers, "Content-Type": "application/x-ndjson"}, data=T.body_ndjson([T.txn()]))
    assert b.status_code == 202, b.text
    check("Batch", b.json())
    check("Batch", T.wait_for(lambda: (lambda x: x if x["status"] == "done" else None)(
        server.get(f"/api/v1/batches/{b.json()['id']}", headers=src.headers).json()), 20))
    check("Problem", server.get("/api/v1/datasets/nope").json())
    tok = server.post("/oauth/token", data={"grant_type": "client_credentials"},
                      auth=(src.client_id, src.client_secret))
    check("TokenAnswer", tok.json())
    check("OAuthError", server.post("/oauth/token", data={"grant_type": "password"},
                                     auth=(src.client_id, src.client_secret)).json())
    # people: the sign-in answer and "who am I"
    if getattr(server, "admin", None) and server.https_url:
        a = P.Person(server, server.admin["admin_username"], server.admin["admin_password"])
        check("SessionAnswer", a.login_ok().json())
        check("SessionAnswer", a.req("GET", "/api/v1/session").json())


def test_docs_page_and_its_script(server):
    r = server.get("/docs", headers={"Accept-Language": "en"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert '<html lang="en">' in r.text and 'data-spec="/api/openapi.json?lang=en"' in r.text
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "worker-src blob:" in csp and "unsafe-eval" not in csp
    vi = server.get("/docs")  # Accept-Language absent: Vietnamese, the default
    assert '<html lang="vi">' in vi.text and "Tài liệu API" in vi.text
    assert '<html lang="en">' in server.get("/docs", params={"lang": "en"}).text
    js = server.get("/docs/redoc.standalone.js")
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert b"cdn.redoc.ly" not in js.content  # nothing is loaded from elsewhere
    assert len(js.content) > 500_000 and "Redoc" in js.text[:5_000_000]
    assert server.get("/docs/redoc.standalone.js",
                      headers={"If-None-Match": js.headers["ETag"]}).status_code == 304
    assert b"Redoc.init" in server.get("/docs/init.js").content
    T.assert_problem(server.get("/docs/other.js"), 404)


def test_catalogue_lists_every_dataset_with_its_quality(own_server):
    srv = own_server(https=False)
    s = srv.add_system()
    ok = [T.txn(system_code=s.code) for _ in range(3)]
    ans = T.assert_ok(srv.ingest(s, ok + [T.txn(system_code=s.code, status="bogus")]))
    assert T.counts(ans) == (3, 0, 0, 1)
    assert T.counts(T.assert_ok(srv.ingest(s, ok[:1]))) == (0, 1, 0, 0)
    r = srv.get("/api/v1/datasets")  # the first reading computes the summary
    assert r.status_code == 200
    listed = {d["code"]: d for d in r.json()["datasets"]}
    assert set(listed) >= {"transactions", "service_stats", "connection_logs", "security_events",
                           "training_stats", "inspections", "documents"}
    for d in listed.values():
        for m in ("title", "description", "scope", "agency", "classification", "access",
                  "update_frequency", "keywords", "quality"):
            assert d.get(m), f"{d['code']} has no {m}"
        assert d["title"]["vi"] and d["title"]["en"] and d["scope"]["vi"] and d["scope"]["en"]
    q = listed["transactions"]["quality"]
    assert (q["submitted"], q["accepted"], q["duplicates"], q["rejected"]) == (5, 3, 1, 1), q
    assert q["accepted_share"] == 0.6 and q["rejected_share"] == 0.2, q
    assert q["systems_reporting"] == 1 and q["receipts"] == 2 and q["last_received"], q
    assert listed["documents"]["quality"]["submitted"] == 0
    assert listed["documents"]["quality"]["last_received"] is None
    # the public page: the dashboard's app at /catalogue, without signing in
    page = srv.get("/catalogue")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")


def test_catalog_jsonld_is_dcat_json_ld(server):
    r = server.get("/api/v1/catalog.jsonld")
    assert r.status_code == 200
    assert r.headers["Content-Type"].split(";")[0] == "application/ld+json"
    body = r.json()
    assert body["@type"] == "dcat:Catalog" and "dcat" in body["@context"]
    codes = {d["code"] for d in server.get("/api/v1/datasets").json()["datasets"]}
    assert {d["dct:identifier"] for d in body["dcat:dataset"]} == codes
    import rdflib  # Debian python3-rdflib: real JSON-LD parsing and a SPARQL query
    g = rdflib.Graph()
    g.parse(data=r.text, format="json-ld", base=server.base_url)
    rows = g.query("""
        PREFIX dcat: <http://www.w3.org/ns/dcat#>
        PREFIX dct: <http://purl.org/dc/terms/>
        SELECT ?id ?vi ?en ?freq ?rights (COUNT(DISTINCT ?dist) AS ?n) WHERE {
          ?cat a dcat:Catalog ; dcat:dataset ?ds .
          ?ds a dcat:Dataset ; dct:identifier ?id ; dct:title ?vi, ?en ;
              dct:accrualPeriodicity ?freq ; dct:accessRights ?rights ; dct:publisher ?pub ;
              dcat:distribution ?dist .
          ?dist dcat:accessURL ?url .
          FILTER(lang(?vi) = "vi" && lang(?en) = "en")
        } GROUP BY ?id ?vi ?en ?freq ?rights""")
    found = {str(row.id): row for row in rows}
    assert set(found) == codes, (set(found) ^ codes)
    tx = found["transactions"]
    assert str(tx.en) == "Electronic transactions" and int(tx.n) == 2
    assert str(tx.freq).endswith("/frequency/UPDATE_CONT"), tx.freq
    kws = {str(o) for o in g.objects(rdflib.URIRef(server.base_url + "/api/v1/datasets/transactions"),
                                     rdflib.URIRef("http://www.w3.org/ns/dcat#keyword"))}
    assert "electronic transactions" in kws and "giao dịch điện tử" in kws, kws


def client_env(server, s):
    return {**os.environ, "DTM_URL": server.base_url, "DTM_SYSTEM": s.code,
            "DTM_API_KEY": s.api_key, "DTM_CLIENT_ID": s.client_id,
            "DTM_CLIENT_SECRET": s.client_secret}


@pytest.mark.parametrize("example", ["curl.sh", "python_requests.py"])
def test_client_examples_run_against_the_server(server, example):
    s = server.add_system()
    path = REPO / "docs" / "clients" / example
    cmd = ["sh", str(path)] if example.endswith(".sh") else [sys.executable, str(path)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env=client_env(server, s))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    out = p.stdout
    for step in ("== 1.", "== 2.", "== 3.", "== 4.", "== 5.", "== 6.", "== done"):
        assert step in out, f"{example} did not reach {step!r}:\n{out[-3000:]}"
    assert s.api_key not in out and s.client_secret not in out  # no secret printed
    # the records it sent are stored: 2 realtime + 50 by batch, in the system's statistics
    st = server.get("/api/v1/stats/transactions", headers=s.headers,
                    params={"metrics": "count", "from": "2026-10-05", "to": "2026-10-06"})
    assert st.json()["rows"] == [[52]], st.text
    assert '"status":"done"' in out.replace(" ", "") or "done total=50" in out
