"""Data-driven cases (curl's tests/data/testNNNN): each file in cases/ is a request, the expected
status and answer, and the expected stored rows. Adding a case needs no new code.

File format (sections start with a line `--- NAME`; `#` lines before the first section are
comments):

    --- request
    POST /api/v1/ingest/transactions?atomic=true
    Content-Type: text/csv
    Accept-Language: en
    <blank line>
    body bytes, verbatim, up to the next section line
    --- status
    422
    --- answer
    {"errors": [{"index": 1, "code": "enum"}]}        (JSON the answer must contain)
    --- stored
    [{"txn_id": "{{RUN}}-A", "citizen_id": "0012******90"}]   (rows that must be stored)
    --- not-stored
    ["{{RUN}}-B"]                                   (txn_ids that must not be stored)

Placeholders anywhere: {{RUN}} a prefix unique to this run (keeps keys unique against a
long-running server), {{SYSTEM}} the caller's system code, {{OTHER}} another source's code,
{{BYTE:ff}} one raw byte. The caller's X-API-Key is added unless the request names one
(`X-API-Key: {{NONE}}` sends none).

Matching of `answer`: objects match when every expected member matches; arrays when they have
the same length and match element by element; other values by equality.
"""

import json
import re
from pathlib import Path

import pytest

import dtmtest as T

CASES = sorted((Path(__file__).parent / "cases").glob("*.case"))


def parse_case(path):
    sections, name, buf = {}, None, []
    for line in path.read_bytes().splitlines(keepends=True):
        m = re.match(rb"^--- ([a-z-]+)\s*$", line)
        if m:
            if name:
                sections[name] = b"".join(buf)
            name, buf = m.group(1).decode(), []
        elif name:
            buf.append(line)
    if name:
        sections[name] = b"".join(buf)
    return sections


def subst(b, ctx):
    b = re.sub(rb"\{\{BYTE:([0-9a-fA-F]{2})\}\}", lambda m: bytes([int(m.group(1), 16)]), b)
    for k, v in ctx.items():
        b = b.replace(b"{{" + k.encode() + b"}}", v.encode())
    return b


def matches(expected, got, where="answer"):
    if isinstance(expected, dict):
        assert isinstance(got, dict), f"{where}: expected an object, got {got!r}"
        for k, v in expected.items():
            assert k in got, f"{where}: member {k!r} missing in {got!r}"
            matches(v, got[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), \
            f"{where}: expected {len(expected)} items, got {got!r}"
        for i, (e, g) in enumerate(zip(expected, got)):
            matches(e, g, f"{where}[{i}]")
    else:
        assert expected == got, f"{where}: expected {expected!r}, got {got!r}"


@pytest.fixture(scope="module")
def other(sys_factory):
    return sys_factory.add()


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_case(server, src, other, case):
    sec = parse_case(case)
    ctx = {"RUN": T.uid("C")[2:], "SYSTEM": src.code, "OTHER": other.code}
    req = subst(sec["request"], ctx)
    head, _, body = req.partition(b"\n\n")
    lines = head.decode("utf-8").splitlines()
    method, target = lines[0].split(None, 1)
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip()] = v.strip()
    if "X-API-Key" not in headers:
        headers["X-API-Key"] = src.api_key
    elif headers["X-API-Key"] == "{{NONE}}":
        del headers["X-API-Key"]
    r = server.request(method, target, headers=headers, data=body)

    want_status = int(sec["status"].strip())
    assert r.status_code == want_status, \
        f"{case.name}: expected {want_status}, got {r.status_code}: {r.text[:500]}"
    if want_status >= 400:
        T.assert_problem(r, want_status)
    if "answer" in sec:
        matches(json.loads(subst(sec["answer"], ctx)), r.json())
    for row in json.loads(subst(sec.get("stored", b"[]"), ctx) or b"[]"):
        rows = T.stored_by_txn(server.data_dir, row["txn_id"])
        assert rows, f"{case.name}: {row['txn_id']} not stored"
        cur = rows[-1] if len(rows) == 1 else next(
            (x for x in rows if all(x.get(k) == v for k, v in row.items())), rows[-1])
        for k, v in row.items():
            assert cur.get(k) == v, f"{case.name}: stored {row['txn_id']}.{k} = {cur.get(k)!r}, " \
                                    f"expected {v!r}"
    for txn_id in json.loads(subst(sec.get("not-stored", b"[]"), ctx) or b"[]"):
        assert not T.stored_by_txn(server.data_dir, txn_id), \
            f"{case.name}: {txn_id} was stored but must not be"
