#!/usr/bin/env python3
"""DTM over SOAP with zeep (Debian: apt install python3-zeep): submit records, then query them.

Reads the server and the credentials from the environment:
    DTM_URL      e.g. https://dtm.example.gov.vn:8443 (default http://127.0.0.1:8080)
    DTM_SYSTEM   the connected system's code (WS-Security UsernameToken username)
    DTM_API_KEY  its API key (the UsernameToken's PasswordText)
    DTM_CA       optional: a CA bundle to verify the server's certificate

Run:  DTM_URL=… DTM_SYSTEM=… DTM_API_KEY=… python3 python_zeep.py
The end-to-end suite runs this file against a live server (tests/e2e/test_soap.py).
"""

import json
import os
import sys
import uuid

import requests
from zeep import Client
from zeep.exceptions import Fault
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

url = os.environ.get("DTM_URL", "http://127.0.0.1:8080").rstrip("/")
system = os.environ["DTM_SYSTEM"]
api_key = os.environ["DTM_API_KEY"]

session = requests.Session()
session.headers["Accept-Language"] = "en"  # fault messages in English (default: Vietnamese)
if os.environ.get("DTM_CA"):
    session.verify = os.environ["DTM_CA"]

# The WSDL describes every dataset; the UsernameToken carries the key (PasswordText).
client = Client(f"{url}/soap?wsdl", transport=Transport(session=session),
                wsse=UsernameToken(system, api_key))
service = client.service  # SOAP 1.1; client.bind("DtmService", "DtmSoap12") for SOAP 1.2

print("ping:", service.Ping().status)

txn_id = "ZEEP-" + uuid.uuid4().hex[:12].upper()
record = {
    "txn_id": txn_id,
    "service_code": "ZEEP01",
    "channel": "api",
    "status": "success",
    "started_at": "2026-11-20T10:00:00+07:00",
    "finished_at": "2026-11-20T10:00:01+07:00",
    "response_ms": 420,
    "amount": "250000",
}
answer = service.SubmitRecords(dataset="transactions", records={"transactions": [record]},
                               idempotencyKey=txn_id)
print(f"submitted: accepted={answer.accepted} duplicates={answer.duplicates} "
      f"rejected={answer.rejected} receipt={answer.receipt}")
if answer.accepted + answer.duplicates != 1:
    sys.exit("the record was not stored")

# A record that breaks the data dictionary comes back as a fault with the field errors.
try:
    service.SubmitRecords(dataset="transactions",
                          records={"transactions": [dict(record, status="lost")]})
    sys.exit("an invalid record was accepted")
except Fault as f:
    ns = {"d": "urn:dtm:soap"}
    for e in f.detail.iterfind(".//d:error", ns):
        print("refused:", e.findtext("d:field", namespaces=ns), e.findtext("d:code", namespaces=ns),
              "-", e.findtext("d:message", namespaces=ns))

# A batch file goes over REST (POST /api/v1/batches); its progress can be read over SOAP.
batch = session.post(f"{url}/api/v1/batches", params={"dataset": "transactions"},
                     headers={"X-API-Key": api_key, "Content-Type": "application/x-ndjson"},
                     data=json.dumps(dict(record, txn_id=txn_id + "-B")) + "\n")
batch.raise_for_status()
status = service.GetBatchStatus(id=batch.json()["id"])
print(f"batch: {status.id} {status.status} total={status.total}")

stats = service.QueryStats(dataset="transactions", metrics="count,avg:response_ms",
                           groupBy="service_code", where=["service_code:eq:ZEEP01"])
print("columns:", list(stats.columns.column))
for row in stats.rows.row:
    print("row:", list(row.v))
