"""Dataset definitions by administrators (CONTRACT §4, PUT /api/v1/datasets/{code}): a new
dataset defined over the API is checked like the built-ins, receives and aggregates records at
once, survives a restart, is known to `dtm import`, and each definition is on the audit trail.
Built-ins are fixed; a new version needs a greater version number and keeps its fields' types."""

import json

import pytest

import dtmtest as T
import peoplelib as P


@pytest.fixture
def admin(own_server):
    srv = own_server()
    a = P.Person(srv, srv.admin["admin_username"], srv.admin["admin_password"])
    a.login_ok()
    P.enrol(a)
    a.srv = srv
    return a


def definition(srv, code, version=1):
    d = srv.get("/api/v1/datasets/transactions").json()
    d["code"] = code
    d["version"] = version
    d["title"] = {"vi": "Giao dịch cấp phép", "en": "Permit transactions"}
    return d


def test_define_use_change_and_keep_a_dataset(admin, tmp_path):
    srv = admin.srv
    code = "permit_txns"
    r = admin.req("PUT", f"/api/v1/datasets/{code}", json=definition(srv, code))
    assert r.status_code == 201, r.text
    assert r.json()["code"] == code and r.json()["version"] == 1
    listed = {d["code"]: d for d in srv.get("/api/v1/datasets").json()["datasets"]}
    assert listed[code]["builtin"] is False and listed["transactions"]["builtin"] is True

    # records go in and are aggregated at once
    s = srv.add_system()
    recs = [T.txn(system_code=s.code) for _ in range(2)]
    assert T.counts(T.assert_ok(srv.ingest(s, recs, dataset=code))) == (2, 0, 0, 0)
    st = srv.get(f"/api/v1/stats/{code}", headers=s.headers, params={"metrics": "count"})
    assert st.status_code == 200 and st.json()["rows"][0][-1] == 2, st.text

    # refusals, each naming why
    assert T.assert_problem(admin.req("PUT", f"/api/v1/datasets/{code}",
                                      json=definition(srv, code)), 409)["type"].endswith(
        "stale_version")
    bad_type = definition(srv, code, 2)
    for f in bad_type["fields"]:
        if f["name"] == "error_reason":
            f["type"] = "integer"
            f.pop("max_length", None), f.pop("mask", None), f.pop("pattern", None)
    p = T.assert_problem(admin.req("PUT", f"/api/v1/datasets/{code}", json=bad_type), 409)
    assert "error_reason" in p["detail"], p
    assert T.assert_problem(admin.req("PUT", "/api/v1/datasets/transactions",
                                      json=definition(srv, "transactions", 9)), 409)
    assert T.assert_problem(admin.req("PUT", f"/api/v1/datasets/{code}",
                                      json=definition(srv, "other_code", 2)), 400)
    assert T.assert_problem(admin.req("PUT", f"/api/v1/datasets/{code}",
                                      json={"code": code, "version": 2}), 422)

    # a new version with one more optional field
    v2 = definition(srv, code, 2)
    v2["fields"].append({"name": "permit_no", "type": "string", "max_length": 40,
                         "title": {"vi": "Số giấy phép", "en": "Permit number"}})
    r = admin.req("PUT", f"/api/v1/datasets/{code}", json=v2)
    assert r.status_code == 200, r.text
    rec = T.txn(system_code=s.code, permit_no="GP-2026-001")
    assert T.counts(T.assert_ok(srv.ingest(s, [rec], dataset=code))) == (1, 0, 0, 0)

    # a restart keeps it; `dtm import` knows it
    assert srv.stop() == 0
    srv.start()
    assert srv.get(f"/api/v1/datasets/{code}").json()["version"] == 2
    f = tmp_path / "more.ndjson"
    f.write_bytes(T.body_ndjson([T.txn(system_code=s.code) for _ in range(3)]))
    p = T.run_dtm("import", "--data-dir", str(srv.data_dir), "--dataset", code,
                  "--system", s.code, str(f))
    assert "3" in p.stdout, p.stdout
    st = srv.get(f"/api/v1/stats/{code}", headers=s.headers, params={"metrics": "count"})
    assert st.json()["rows"][0][-1] == 6, st.text

    rows = P.audit_actions(srv, None, until=lambda rows: sum(
        x["action"].startswith("dataset.") for x in rows) >= 2)
    mine = [(x["action"], x["target"], x["detail"]["version"]) for x in rows
            if x["action"].startswith("dataset.")]
    assert mine == [("dataset.defined", code, 1), ("dataset.changed", code, 2)], mine


def test_only_admins_define_datasets(admin):
    srv = admin.srv
    op = P.Person(srv, "op.ds", P.add_user(srv, "op.ds", "operator"))
    op.login_ok()
    d = definition(srv, "op_ds")
    assert op.req("PUT", "/api/v1/datasets/op_ds", json=d).status_code == 403
    assert admin.req("PUT", "/api/v1/datasets/op_ds", json=d, csrf=False).status_code == 403
    s = srv.add_system()
    r = T.new_session().put(srv.base_url + "/api/v1/datasets/op_ds", json=d, headers=s.headers,
                            timeout=T.TIMEOUT)
    assert r.status_code == 403  # a connected system, not a person
    assert srv.get("/api/v1/datasets/op_ds").status_code == 404
