"""Health endpoints and the public data dictionary (CONTRACT §4, §7)."""

import pytest

import dtmtest as T

BUILTINS = {
    "transactions": ["system_code", "txn_id"],
    "service_stats": ["system_code", "period_type", "period_start", "service_code"],
    "connection_logs": ["system_code", "log_id"],
    "security_events": ["system_code", "event_id"],
    "training_stats": ["system_code", "org_code", "period_type", "period_start"],
    "inspections": ["system_code", "case_id"],
    "documents": ["system_code", "doc_no"],
}


def json_ct(r):
    return r.headers.get("Content-Type", "").split(";")[0].strip()


def test_healthz(server):
    r = server.get("/healthz")
    assert r.status_code == 200
    assert json_ct(r) == "application/json"
    assert r.json() == {"status": "ok"} or r.json().get("status") == "ok", r.text


def test_readyz(server):
    r = server.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json().get("status") == "ready", r.text


def test_dataset_catalogue_is_public(server):
    r = server.get("/api/v1/datasets")  # no credentials at all
    assert r.status_code == 200, r.text
    assert json_ct(r) == "application/json"
    ds = r.json()["datasets"]
    codes = [d["code"] for d in ds]
    assert set(BUILTINS) <= set(codes), codes
    if not server.external:
        assert sorted(codes) == sorted(BUILTINS), codes
    for d in ds:
        for k in ("code", "title", "description", "agency", "classification", "access",
                  "update_frequency", "version"):
            assert k in d, f"{d.get('code')}: {k} missing in {d}"
        assert d["title"].get("vi") and d["title"].get("en"), d
        assert d["classification"] in ("public", "internal", "confidential"), d
        assert isinstance(d["version"], int), d
    t = next(d for d in ds if d["code"] == "transactions")
    assert t["title"]["vi"] == "Giao dịch điện tử", t["title"]
    assert t["title"]["en"] == "Electronic transactions", t["title"]


@pytest.mark.parametrize("code", sorted(BUILTINS))
def test_dataset_definition(server, code):
    r = server.get(f"/api/v1/datasets/{code}")
    assert r.status_code == 200, r.text
    assert json_ct(r) == "application/json"
    d = r.json()
    assert d["code"] == code
    for k in ("version", "title", "key", "time_field", "fields", "rules", "dimensions",
              "measures", "cubes"):
        assert k in d, f"{code}: {k} missing"
    assert d["key"] == BUILTINS[code], d["key"]
    names = [f["name"] for f in d["fields"]]
    for k in d["key"]:
        assert k in names, f"key field {k} is not a field of {code}"
    for f in d["fields"]:
        assert f["type"] in ("string", "integer", "decimal", "boolean", "date", "datetime",
                             "enum"), f


def test_transactions_definition_details(server):
    d = server.get("/api/v1/datasets/transactions").json()
    assert d["time_field"] == "started_at"
    f = {x["name"]: x for x in d["fields"]}
    for n in ("txn_id", "system_code", "agency_code", "service_code", "channel", "status",
              "error_code", "error_reason", "started_at", "finished_at", "response_ms",
              "citizen_id", "business_id", "amount", "region_code", "priority",
              "classification"):
        assert n in f, f"transactions has no field {n}"
    assert f["citizen_id"].get("personal") is True
    assert f["citizen_id"].get("mask") == "partial"
    assert f["citizen_id"].get("pattern") == "^[0-9]{12}$"
    assert f["txn_id"].get("required") is True
    assert f["service_code"].get("required") is True
    assert f["status"]["type"] == "enum"
    assert sorted(f["status"]["values"]) == ["failed", "pending", "success"]
    assert sorted(f["channel"]["values"]) == sorted(
        ["web", "mobile", "api", "kiosk", "counter", "other"])
    assert sorted(f["priority"]["values"]) == ["high", "low", "normal", "urgent"]
    assert "secret" not in f["classification"]["values"]
    assert f["response_ms"]["type"] == "integer"
    assert f["amount"]["type"] == "decimal"
    assert {"if": {"status": "failed"}, "require": ["error_code"]} in [
        {k: v for k, v in rule.items() if k in ("if", "require")} for rule in d["rules"]], d["rules"]
    assert "response_ms" in d["measures"] and "amount" in d["measures"]
    assert "status" in d["dimensions"]


def test_unknown_dataset_definition_404(server):
    T.assert_problem(server.get("/api/v1/datasets/no_such_dataset"), 404)
