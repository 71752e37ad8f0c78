"""GET /api/v1/datasets/{code}/records (issue 4): a dataset's records as stored, in event-time
order, in JSON, NDJSON, CSV and XML, paged with a cursor (Link header, JSON `next`); where /
from / to filters; who sees what (a source its own system, an aggregator its own and its
children's, a consumer only the datasets it is granted with `dtm grant`); records classified
`confidential` exported only to their own system and their sender, yet counted in statistics
(T3.2).
"""

import csv
import io
import json
import re
import xml.etree.ElementTree as ET

import pytest

import dtmtest as T

URL = "/api/v1/datasets/transactions/records"


def recs_for(prefix, system_code, n, day0=1, confidential=()):
    """n transactions of one system over a few days; the first ten go in pairs that share their
    started_at (the cursor breaks ties by storage order); records whose index is in
    `confidential` are classified so."""
    out = []
    for i in range(n):
        k = i if i >= 10 else i // 2 * 2
        r = T.txn(txn_id=f"{prefix}-{i:03d}", system_code=system_code,
                  started_at=f"2026-10-{day0 + k % 5:02d}T{8 + k % 9:02d}:{k % 60:02d}:00+07:00",
                  finished_at=None, channel=["web", "mobile", "api", "kiosk"][i % 4],
                  status="failed" if i % 4 == 1 else "success",
                  error_code="E42" if i % 4 == 1 else None,
                  amount=f"{1000 + i}.50",
                  classification="confidential" if i in confidential else "internal")
        out.append(r)
    return out


def order_key(r):
    return T._norm(r["started_at"])


@pytest.fixture(scope="module")
def data(server, sys_factory):
    a = sys_factory.add()
    b = sys_factory.add()
    agg = sys_factory.add(role="aggregator")
    child = sys_factory.add(parent=agg.code)
    consumer = sys_factory.add(role="consumer")
    a_recs = recs_for(T.uid("RA"), a.code, 40, confidential={3, 17})
    T.assert_ok(server.ingest(a, a_recs))
    b_recs = recs_for(T.uid("RB"), b.code, 5)
    T.assert_ok(server.ingest(b, b_recs))
    # the aggregator sends its child's records (one confidential); the child sends its own
    # (one confidential, which the aggregator must not see)
    via_agg = recs_for(T.uid("RG"), child.code, 6, day0=10, confidential={2})
    T.assert_ok(server.ingest(agg, via_agg))
    own_child = recs_for(T.uid("RC"), child.code, 4, day0=12, confidential={1})
    T.assert_ok(server.ingest(child, own_child))
    agg_own = recs_for(T.uid("RO"), agg.code, 3, day0=14)
    T.assert_ok(server.ingest(agg, agg_own))
    return {"a": a, "b": b, "agg": agg, "child": child, "consumer": consumer,
            "a_recs": a_recs, "b_recs": b_recs, "via_agg": via_agg, "own_child": own_child,
            "agg_own": agg_own}


def get(server, system, **params):
    return server.get(URL, params=params, headers=system.headers if system else None)


def page_json(server, system, **params):
    r = get(server, system, **params)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) >= {"dataset", "records", "next", "count"}, body
    assert body["count"] == len(body["records"])
    return r, body


def all_json(server, system, **params):
    _, body = page_json(server, system, limit=10000, **params)
    assert body["next"] is None
    return body["records"]


def assert_same_set(got, sent):
    """got (stored records) are exactly the records sent, in event-time order, masked."""
    by_id = {g["txn_id"]: g for g in got}
    assert len(by_id) == len(got), "a record appears twice"
    assert set(by_id) == {s["txn_id"] for s in sent}
    for s in sent:
        T.assert_same_record(s, by_id[s["txn_id"]])
    times = [order_key(g) for g in got]
    assert times == sorted(times)


def test_json_equals_records_ingested(server, data):
    got = all_json(server, data["a"])
    assert_same_set(got, data["a_recs"])  # its own confidential records included
    assert all(g["citizen_id"] != s["citizen_id"] for g, s in
               zip(sorted(got, key=lambda g: g["txn_id"]),
                   sorted(data["a_recs"], key=lambda s: s["txn_id"])))


def test_ndjson_csv_xml_equal_the_json(server, data):
    a = data["a"]
    ref = all_json(server, a)
    # NDJSON: one stored record a line, by `format` or by Accept
    for kw in ({"params": {"format": "ndjson", "limit": 10000}},
               {"params": {"limit": 10000}, "headers": {"Accept": "application/x-ndjson"}}):
        h = dict(a.headers, **kw.get("headers", {}))
        r = server.get(URL, params=kw["params"], headers=h)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(
            "application/x-ndjson"), r.text
        assert [json.loads(line) for line in r.text.splitlines()] == ref
    # CSV, parsed strictly: a header of every field of the definition, one row a record
    r = get(server, a, format="csv", limit=10000)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8"), newline=""), strict=True))
    header = rows[0]
    definition = server.get("/api/v1/datasets/transactions").json()
    assert header == [f["name"] for f in definition["fields"]]
    assert r.content.count(b"\r\n") == len(rows)
    table = [dict(zip(header, row)) for row in rows[1:]]
    assert all(len(row) == len(header) for row in rows)
    assert [t["txn_id"] for t in table] == [g["txn_id"] for g in ref]
    for t, g in zip(table, ref):
        assert {k for k, v in t.items() if v != ""} == set(g)
        assert all(T._norm(t[k]) == T._norm(v) for k, v in g.items()), (t, g)
    # XML, parsed with xml.etree
    r = get(server, a, format="xml", limit=10000)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "records" and root.get("dataset") == "transactions"
    assert root.get("next") is None
    got = [{e.tag: e.text for e in rec} for rec in root]
    assert [list(x) for x in got] == [list(g) for g in ref]  # the stored fields, stored order
    assert all(T._norm(x[k]) == T._norm(v) for x, g in zip(got, ref) for k, v in g.items())
    assert_same_set(got, data["a_recs"])


def test_paging_returns_every_record_once(server, data):
    a = data["a"]
    total = len(data["a_recs"])
    seen, pages, after = [], 0, None
    while True:
        params = {"limit": 7}
        if after:
            params["after"] = after
        r, body = page_json(server, a, **params)
        pages += 1
        seen += body["records"]
        after = body["next"]
        if after is None:
            assert "Link" not in r.headers
            break
        assert len(body["records"]) == 7
        link = r.headers["Link"]
        m = re.fullmatch(r'<([^>]+)>; rel="next"', link)
        assert m, link
        assert m.group(1).startswith(URL + "?") and "after=" in m.group(1)
        assert pages < 20
    assert pages == -(-total // 7)
    assert [s["txn_id"] for s in seen] == [g["txn_id"] for g in all_json(server, a)]
    # following the Link header (NDJSON this time) gives the same records
    url, got = f"{URL}?format=ndjson&limit=9", []
    for _ in range(20):
        r = server.get(url, headers=a.headers)
        assert r.status_code == 200, r.text
        got += [json.loads(line)["txn_id"] for line in r.text.splitlines()]
        if "Link" not in r.headers:
            break
        url = re.fullmatch(r'<([^>]+)>; rel="next"', r.headers["Link"]).group(1)
        assert "format=ndjson" in url and "limit=9" in url
    assert got == [s["txn_id"] for s in seen]
    # XML carries the cursor as an attribute
    root = ET.fromstring(get(server, a, format="xml", limit=5).content)
    assert len(root) == 5 and root.get("next")


def test_where_from_to(server, data):
    a, recs = data["a"], data["a_recs"]

    def ids(**params):
        return [g["txn_id"] for g in all_json(server, a, **params)]

    def want(pred):
        return [r["txn_id"] for r in sorted(recs, key=order_key) if pred(r)]

    # sorted() is stable and the server breaks ties by storage order (= order sent)
    assert ids(where="status:eq:failed") == want(lambda r: r["status"] == "failed")
    assert ids(where="channel:in:web|mobile") == want(lambda r: r["channel"] in ("web", "mobile"))
    assert ids(where=["channel:in:web|mobile", "status:eq:success"]) == want(
        lambda r: r["channel"] in ("web", "mobile") and r["status"] == "success")
    # from/to: dates in UTC+07:00, `to` inclusive of its whole day
    assert ids(**{"from": "2026-10-02", "to": "2026-10-03"}) == want(
        lambda r: r["started_at"][:10] in ("2026-10-02", "2026-10-03"))
    assert ids(**{"from": "2026-10-04T12:00:00+07:00"}) == want(
        lambda r: order_key(r) >= T._norm("2026-10-04T12:00:00+07:00"))
    # filters and paging together
    got, after = [], None
    for _ in range(20):
        params = {"limit": 3, "where": "status:eq:success", "from": "2026-10-02"}
        if after:
            params["after"] = after
        _, body = page_json(server, a, **params)
        got += [g["txn_id"] for g in body["records"]]
        after = body["next"]
        if not after:
            break
    assert got == want(lambda r: r["status"] == "success" and r["started_at"] >= "2026-10-02")


@pytest.mark.parametrize("param,value", [
    ("limit", "0"), ("limit", "10001"), ("limit", "many"), ("after", "garbage"),
    ("after", "12.x"), ("format", "xlsx"), ("format", "pdf"), ("from", "yesterday"),
    ("to", "2026-13-01"), ("where", "status:like:x"), ("where", "txn_id:eq:1")])
def test_bad_parameters_name_the_parameter(server, data, param, value):
    r = server.get(URL, params={param: value}, headers={**data["a"].headers,
                                                        "Accept-Language": "en"})
    body = T.assert_problem(r, 400)
    assert param in body["detail"], body


def test_unknown_dataset_and_no_key(server, data):
    T.assert_problem(server.get("/api/v1/datasets/nope/records", headers=data["a"].headers), 404)
    T.assert_problem(server.get(URL), 401)


def test_source_sees_only_its_own(server, data):
    b = data["b"]
    assert_same_set(all_json(server, b), data["b_recs"])
    # where cannot widen it
    assert all_json(server, b, where=f"system_code:eq:{data['a'].code}") == []


def test_aggregator_sees_its_own_and_its_childrens(server, data):
    agg = data["agg"]
    hidden = data["own_child"][1]  # confidential, sent by the child itself
    want = data["via_agg"] + data["agg_own"] + [r for r in data["own_child"] if r is not hidden]
    got = all_json(server, agg)
    assert_same_set(got, want)
    # the confidential record the aggregator sent for its child is its to see
    assert any(g["txn_id"] == data["via_agg"][2]["txn_id"] for g in got)
    # the child sees its own records, whoever sent them (its confidential ones too)
    assert_same_set(all_json(server, data["child"]), data["via_agg"] + data["own_child"])


def test_consumer_needs_a_grant(server, data):
    c = data["consumer"]
    ddir = str(server.data_dir)
    body = T.assert_problem(get(server, c), 403)
    assert body["type"].endswith("not_granted")
    T.assert_problem(server.get("/api/v1/stats/transactions", params={"metrics": "count"},
                                headers=c.headers), 403)
    p = server.dtm("grant", "add", "--data-dir", ddir, "--system", c.code, "--dataset",
                   "transactions", "--json")
    assert json.loads(p.stdout) == {"system_code": c.code, "dataset": "transactions",
                                    "granted": "true"}
    # every system's records, but no confidential one (none is its own)
    got = all_json(server, c)
    everyone = (data["a_recs"] + data["b_recs"] + data["via_agg"] + data["own_child"]
                + data["agg_own"])
    assert_same_set(got, [r for r in everyone if r["classification"] != "confidential"])
    # still only the datasets granted
    T.assert_problem(server.get("/api/v1/datasets/service_stats/records", headers=c.headers), 403)
    # listed, revoked, refused again
    p = server.dtm("grant", "list", "--data-dir", ddir, "--system", c.code, "--json")
    assert [(g["system_code"], g["dataset"]) for g in json.loads(p.stdout)] == [
        (c.code, "transactions")]
    server.dtm("grant", "revoke", "--data-dir", ddir, "--system", c.code, "--dataset",
               "transactions")
    T.assert_problem(get(server, c), 403)
    server.dtm("grant", "add", "--data-dir", ddir, "--system", c.code, "--dataset",
               "transactions")
    assert get(server, c, limit=1).status_code == 200


def test_confidential_hidden_in_exports_counted_in_statistics(server, data):
    a, c = data["a"], data["consumer"]
    server.dtm("grant", "add", "--data-dir", str(server.data_dir), "--system", c.code,
               "--dataset", "transactions")  # already granted: still exit 0
    conf = [r["txn_id"] for r in data["a_recs"] if r["classification"] == "confidential"]
    assert len(conf) == 2
    seen_by_consumer = {g["txn_id"] for g in all_json(server, c, where=f"system_code:eq:{a.code}")}
    assert seen_by_consumer and not seen_by_consumer & set(conf)
    assert len(seen_by_consumer) == len(data["a_recs"]) - 2
    # a where on the classification cannot reveal them
    r = get(server, c, where="status:in:success|failed", limit=10000)
    assert not {g["txn_id"] for g in r.json()["records"]} & set(conf)
    # … yet they count in the statistics, for the consumer and for the source
    for who in (c, a):
        r = server.get("/api/v1/stats/transactions", headers=who.headers,
                       params={"metrics": "count", "where": f"system_code:eq:{a.code}"})
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [[len(data["a_recs"])]]


def test_grant_command_errors(server, data):
    ddir = str(server.data_dir)
    c = data["consumer"]
    p = server.dtm("grant", "add", "--data-dir", ddir, "--system", "NOPE", "--dataset",
                   "transactions", check=False)
    assert p.returncode == 1 and "NOPE" in p.stderr
    p = server.dtm("grant", "add", "--data-dir", ddir, "--system", c.code, "--dataset", "nope",
                   check=False)
    assert p.returncode == 2 and "nope" in p.stderr
    p = server.dtm("grant", "revoke", "--data-dir", ddir, "--system", c.code, "--dataset",
                   "documents", check=False)
    assert p.returncode == 1 and "documents" in p.stderr
    p = server.dtm("grant", "add", "--data-dir", ddir, "--system", c.code, check=False)
    assert p.returncode == 2 and "--dataset" in p.stderr
    p = server.dtm("grant", "frobnicate", "--data-dir", ddir, check=False)
    assert p.returncode == 2
    # to a source: stored, with a note that it changes nothing for a source
    b = data["b"]
    p = server.dtm("grant", "add", "--data-dir", ddir, "--system", b.code, "--dataset",
                   "transactions")
    assert "consumers only" in p.stderr
    assert_same_set(all_json(server, b), data["b_recs"])
    p = server.dtm("grant", "list", "--data-dir", ddir)
    assert any(line.split()[:2] == [b.code, "transactions"] for line in p.stdout.splitlines())
