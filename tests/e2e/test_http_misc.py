"""Cross-cutting HTTP behaviour (CONTRACT §2): X-Request-Id on every response (echoed when sent),
language of messages (Vietnamese by default, English on request), heartbeat (§5)."""

import json
import re
import time
from datetime import datetime, timezone

import pytest

import dtmtest as T

VI_CHARS = re.compile(r"[àáảãạăắằẳẵặâấầẩẫậđèéẻẽẹêếềểễệìíỉĩịòóỏõọôốồổỗộơớờởỡợùúủũụưứừửữựỳýỷỹỵ]",
                      re.IGNORECASE)


# ---- X-Request-Id ---------------------------------------------------------------------------


def requests_of_every_kind(server, src):
    yield "healthz", lambda h: server.get("/healthz", headers=h)
    yield "readyz", lambda h: server.get("/readyz", headers=h)
    yield "datasets", lambda h: server.get("/api/v1/datasets", headers=h)
    yield "dataset 404", lambda h: server.get("/api/v1/datasets/nope", headers=h)
    yield "unknown path", lambda h: server.get("/api/v1/no/such/path", headers=h)
    yield "ingest 200", lambda h: server.ingest(src, [T.txn()], headers=h)
    yield "ingest 401", lambda h: server.post("/api/v1/ingest/transactions", json=[T.txn()],
                                              headers=h)
    yield "ingest 400", lambda h: server.ingest(src, None, data=b"{", headers=dict(
        h, **{"Content-Type": "application/json"}))
    yield "ingest 415", lambda h: server.ingest(src, None, data=b"{}", headers=dict(
        h, **{"Content-Type": "text/plain"}))
    yield "ingest 422", lambda h: server.ingest(src, [T.txn(status="?")], headers=h)
    yield "ingest 403", lambda h: server.ingest(src, [T.txn(system_code="SOMEONEELSE")],
                                                headers=h)
    yield "ingest 409", lambda h: conflict(server, src, h)
    yield "ingest 413", lambda h: server.ingest(src, [{"txn_id": str(i)} for i in range(10_001)],
                                                headers=h)
    yield "heartbeat", lambda h: server.post("/api/v1/heartbeat", headers=dict(h, **src.headers))


def conflict(server, src, h):
    key = T.uid("idem")
    T.assert_ok(server.ingest(src, [T.txn()], headers={"Idempotency-Key": key}))
    r = server.ingest(src, [T.txn()], headers=dict(h, **{"Idempotency-Key": key}))
    assert r.status_code == 409, r.text
    return r


def test_every_response_has_request_id(server, src):
    seen = set()
    for name, call in requests_of_every_kind(server, src):
        r = call({})
        rid = r.headers.get("X-Request-Id")
        assert rid, f"{name}: no X-Request-Id (status {r.status_code})"
        assert rid not in seen, f"{name}: X-Request-Id {rid} repeated"
        seen.add(rid)


def test_request_id_is_echoed(server, src):
    for name, call in requests_of_every_kind(server, src):
        mine = "e2e-" + T.uid("rid")
        r = call({"X-Request-Id": mine})
        assert r.headers.get("X-Request-Id") == mine, \
            f"{name}: sent {mine}, got {r.headers.get('X-Request-Id')}"


# ---- language -------------------------------------------------------------------------------


def messages(server, src, lang):
    h = {"Accept-Language": lang} if lang else {}
    r = server.ingest(src, [T.txn(channel="fax", favourite="x")], headers=h)
    p = T.assert_problem(r, 422)
    nf = T.assert_problem(server.get("/api/v1/datasets/nope", headers=h), 404)
    au = T.assert_problem(server.post("/api/v1/ingest/transactions", json=[T.txn()], headers=h),
                          401)
    return p, nf, au


def test_default_language_is_vietnamese(server, src):
    p, nf, au = messages(server, src, None)
    for e in p["errors"]:
        assert VI_CHARS.search(e["message"]), f"not Vietnamese: {e['message']!r}"
    for prob in (p, nf, au):
        assert VI_CHARS.search(prob["title"] + " " + prob["detail"]), \
            f"not Vietnamese: {prob['title']!r} / {prob['detail']!r}"


def test_english_on_request(server, src):
    p_en, nf_en, au_en = messages(server, src, "en")
    p_vi, nf_vi, au_vi = messages(server, src, "vi")
    for e in p_en["errors"]:
        assert e["message"].isascii(), f"English message not ASCII: {e['message']!r}"
        assert not VI_CHARS.search(e["message"]), e
    en_msgs = sorted((e["index"], e["field"], e["code"], e["message"]) for e in p_en["errors"])
    vi_msgs = sorted((e["index"], e["field"], e["code"], e["message"]) for e in p_vi["errors"])
    assert [m[:3] for m in en_msgs] == [m[:3] for m in vi_msgs], "codes must not depend on language"
    for (a, b) in zip(en_msgs, vi_msgs):
        assert a[3] != b[3], f"same message in en and vi: {a[3]!r}"
    for en, vi in ((p_en, p_vi), (nf_en, nf_vi), (au_en, au_vi)):
        assert en["title"].isascii() and en["detail"].isascii(), en
        assert en["title"] != vi["title"], (en["title"], vi["title"])
        assert en["type"] == vi["type"] and en["status"] == vi["status"]


@pytest.mark.parametrize("header,lang", [("en-US,en;q=0.9", "en"), ("fr, en;q=0.5", "en"),
                                         ("vi-VN", "vi"), ("en;q=0.1, vi;q=0.9", "vi")])
def test_accept_language_negotiation(server, header, lang):
    p = T.assert_problem(server.get("/api/v1/datasets/nope",
                                    headers={"Accept-Language": header}), 404)
    is_vi = bool(VI_CHARS.search(p["title"] + p["detail"]))
    assert is_vi == (lang == "vi"), (header, p["title"], p["detail"])


# ---- heartbeat ------------------------------------------------------------------------------


def parse_time(s):
    t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    assert t.tzinfo is not None, f"{s} has no offset"
    return t


def test_heartbeat(server, sys_factory):
    s = sys_factory.add()
    r = server.post("/api/v1/heartbeat", headers=s.headers)
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["system_code"] == s.code
    assert b["status"] == "online"
    now = datetime.now(timezone.utc)
    assert abs((parse_time(b["last_seen"]) - now).total_seconds()) < 5, b

    def listed():
        p = T.run_dtm("system", "list", "--data-dir", server.data_dir, "--json")
        for x in json.loads(p.stdout):
            if x["code"] == s.code and x["last_seen"]:
                return x
        return None

    t0 = time.monotonic()
    x = T.wait_for(listed, timeout=3, interval=0.2)
    assert x, "dtm system list does not show the heartbeat's last_seen within 3 s"
    assert time.monotonic() - t0 <= 3
    assert abs((parse_time(x["last_seen"]) - now).total_seconds()) < 5, x
