#!/bin/sh
# docs/clients/curl.sh — calling the DTM REST API with curl (CONTRACT §3, §5, §6): send records
# in real time, upload a batch file and follow its status, query statistics, and get an OAuth 2.0
# access token to call with it. Run by tests/e2e/test_openapi_catalog.py against a real server,
# so it never rots.
#
#   DTM_URL            base URL, e.g. https://dtm.example.gov.vn:8443 (default http://127.0.0.1:8080)
#   DTM_SYSTEM         your system code (the records' system_code)
#   DTM_API_KEY        your API key (X-API-Key)
#   DTM_CLIENT_ID      your OAuth client id          } for the token part
#   DTM_CLIENT_SECRET  your OAuth client secret      }
#
# Add --cacert FILE (or -k while testing) for a self-signed certificate. Needs curl and sh.
set -eu
URL="${DTM_URL:-http://127.0.0.1:8080}"
: "${DTM_SYSTEM:?set DTM_SYSTEM}" "${DTM_API_KEY:?set DTM_API_KEY}"
TXN="curl-$(date +%s)-$$"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
# answers in English (Accept-Language: vi is the default)
C="curl -sS --fail-with-body -H Accept-Language:en"

echo "== 1. realtime: POST /api/v1/ingest/transactions (JSON array, Idempotency-Key)"
$C -X POST "$URL/api/v1/ingest/transactions" \
    -H "X-API-Key: $DTM_API_KEY" -H "Content-Type: application/json" \
    -H "Idempotency-Key: $TXN" \
    --data-binary @- <<JSON
[{"txn_id": "$TXN-1", "system_code": "$DTM_SYSTEM", "service_code": "1.000001", "channel": "web",
  "status": "success", "started_at": "2026-10-05T09:00:00+07:00", "response_ms": 420},
 {"txn_id": "$TXN-2", "system_code": "$DTM_SYSTEM", "service_code": "1.000001", "channel": "mobile",
  "status": "failed", "error_code": "E42", "started_at": "2026-10-05T09:01:00+07:00", "response_ms": 1800}]
JSON
echo

echo "== 2. batch: POST /api/v1/batches?dataset=transactions (a gzip-compressed CSV file)"
{
    echo "txn_id,service_code,channel,status,started_at,response_ms"
    i=1
    while [ $i -le 50 ]; do
        echo "$TXN-b$i,1.000002,api,success,2026-10-05T10:00:00+07:00,$((100 + i))"
        i=$((i + 1))
    done
} | gzip >"$TMP/batch.csv.gz"
BATCH=$($C -X POST "$URL/api/v1/batches?dataset=transactions" \
    -H "X-API-Key: $DTM_API_KEY" -H "Content-Type: text/csv" -H "Content-Encoding: gzip" \
    --data-binary @"$TMP/batch.csv.gz")
echo "$BATCH"
ID=$(printf '%s' "$BATCH" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')

echo "== 3. batch status: GET /api/v1/batches/$ID (until done)"
n=0
while :; do
    STATUS=$($C "$URL/api/v1/batches/$ID" -H "X-API-Key: $DTM_API_KEY")
    case "$STATUS" in *'"status":"done"'* | *'"status":"failed"'*) break ;; esac
    n=$((n + 1))
    [ $n -lt 300 ] || { echo "batch not finished" >&2; exit 1; }
    sleep 0.2
done
echo "$STATUS"

echo "== 4. statistics: GET /api/v1/stats/transactions (count and failure rate by channel)"
$C -G "$URL/api/v1/stats/transactions" -H "X-API-Key: $DTM_API_KEY" \
    --data-urlencode "metrics=count,rate:status=failed" --data-urlencode "group_by=channel" \
    --data-urlencode "from=2026-10-05" --data-urlencode "to=2026-10-06"
echo

if [ -n "${DTM_CLIENT_ID:-}" ] && [ -n "${DTM_CLIENT_SECRET:-}" ]; then
    echo "== 5. OAuth 2.0: POST /oauth/token (client credentials, HTTP Basic)"
    TOKEN=$($C -X POST "$URL/oauth/token" -u "$DTM_CLIENT_ID:$DTM_CLIENT_SECRET" \
        -d grant_type=client_credentials)
    ACCESS=$(printf '%s' "$TOKEN" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    printf '%s\n' "$TOKEN" | sed 's/"access_token":"[^"]*"/"access_token":"…"/'
    echo "== 6. a call with the token: GET /api/v1/stats/transactions (Authorization: Bearer)"
    $C -G "$URL/api/v1/stats/transactions" -H "Authorization: Bearer $ACCESS" \
        --data-urlencode "metrics=count" --data-urlencode "from=2026-10-05" \
        --data-urlencode "to=2026-10-06"
    echo
fi
echo "== done"
