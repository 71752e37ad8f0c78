#!/usr/bin/env python3
"""docs/clients/python_requests.py — calling the DTM REST API with Python `requests`
(CONTRACT §3, §5, §6): send records in real time, upload a batch file and follow its status,
query statistics, and get an OAuth 2.0 access token to call with it. Run by
tests/e2e/test_openapi_catalog.py against a real server, so it never rots.

Environment:
    DTM_URL            base URL, e.g. https://dtm.example.gov.vn:8443 (default http://127.0.0.1:8080)
    DTM_SYSTEM         your system code
    DTM_API_KEY        your API key (sent as X-API-Key)
    DTM_CLIENT_ID      your OAuth client id       } optional: the token part
    DTM_CLIENT_SECRET  your OAuth client secret   }
    DTM_CA             optional: the CA file that signed the server's certificate

Needs Python 3 and requests (Debian: python3-requests).
"""
import gzip
import io
import os
import sys
import time

import requests

URL = os.environ.get("DTM_URL", "http://127.0.0.1:8080").rstrip("/")
SYSTEM = os.environ["DTM_SYSTEM"]
API_KEY = os.environ["DTM_API_KEY"]

s = requests.Session()
s.headers.update({"X-API-Key": API_KEY, "Accept-Language": "en"})
if os.environ.get("DTM_CA"):
    s.verify = os.environ["DTM_CA"]


def check(r):
    """Raises with the RFC 9457 problem's detail when the answer is an error."""
    if r.status_code >= 400:
        try:
            p = r.json()
            msg = f"{p.get('title')}: {p.get('detail')} {p.get('errors', '')}"
        except ValueError:
            msg = r.text[:300]
        sys.exit(f"HTTP {r.status_code} from {r.request.method} {r.url}: {msg}")
    return r


txn = f"py-{int(time.time())}-{os.getpid()}"

print("== 1. realtime: POST /api/v1/ingest/transactions")
records = [
    {"txn_id": f"{txn}-1", "system_code": SYSTEM, "service_code": "1.000001", "channel": "web",
     "status": "success", "started_at": "2026-10-05T09:00:00+07:00", "response_ms": 420},
    {"txn_id": f"{txn}-2", "system_code": SYSTEM, "service_code": "1.000001",
     "channel": "mobile", "status": "failed", "error_code": "E42",
     "started_at": "2026-10-05T09:01:00+07:00", "response_ms": 1800},
]
r = check(s.post(f"{URL}/api/v1/ingest/transactions", json=records,
                 headers={"Idempotency-Key": txn}))
answer = r.json()
print(f"accepted={answer['accepted']} duplicates={answer['duplicates']} "
      f"rejected={answer['rejected']} receipt={answer['receipt']}")

print("== 2. batch: POST /api/v1/batches?dataset=transactions (gzip NDJSON)")
buf = io.BytesIO()
with gzip.GzipFile(fileobj=buf, mode="wb") as gz:
    for i in range(1, 51):
        gz.write((
            '{"txn_id":"%s-b%d","service_code":"1.000002","channel":"api","status":"success",'
            '"started_at":"2026-10-05T10:00:00+07:00","response_ms":%d}\n'
            % (txn, i, 100 + i)).encode())
r = check(s.post(f"{URL}/api/v1/batches", params={"dataset": "transactions"},
                 data=buf.getvalue(),
                 headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}))
batch = r.json()
print(f"batch {batch['id']} {batch['status']}")

print("== 3. batch status: GET /api/v1/batches/{id}")
for _ in range(300):
    b = check(s.get(f"{URL}/api/v1/batches/{batch['id']}")).json()
    if b["status"] in ("done", "failed"):
        break
    time.sleep(0.2)
print(f"batch {b['id']} {b['status']} total={b['total']} accepted={b['accepted']} "
      f"rejected={b['rejected']}")

print("== 4. statistics: GET /api/v1/stats/transactions")
params = {"metrics": "count,rate:status=failed", "group_by": "channel",
          "from": "2026-10-05", "to": "2026-10-06"}
table = check(s.get(f"{URL}/api/v1/stats/transactions", params=params)).json()
print("columns:", table["columns"])
for row in table["rows"]:
    print("row:", row)

if os.environ.get("DTM_CLIENT_ID") and os.environ.get("DTM_CLIENT_SECRET"):
    print("== 5. OAuth 2.0: POST /oauth/token (client credentials)")
    r = check(requests.post(f"{URL}/oauth/token", data={"grant_type": "client_credentials"},
                            auth=(os.environ["DTM_CLIENT_ID"], os.environ["DTM_CLIENT_SECRET"]),
                            verify=s.verify))
    tok = r.json()
    print(f"token_type={tok['token_type']} expires_in={tok['expires_in']}")
    print("== 6. a call with the token: GET /api/v1/stats/transactions")
    r = check(requests.get(f"{URL}/api/v1/stats/transactions",
                           params={"metrics": "count", "from": "2026-10-05", "to": "2026-10-06"},
                           headers={"Authorization": f"Bearer {tok['access_token']}"},
                           verify=s.verify))
    print("with the token:", r.json()["rows"])
print("== done")
