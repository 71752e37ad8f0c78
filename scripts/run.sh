#!/bin/sh
# `make run`: initialise ./dtm-data with the demo data (CONTRACT §9: 25 systems, 90 days, about a
# million transactions) if absent, printing the admin password and a demo system's API key once,
# then serve in the foreground (HTTP on 127.0.0.1:8080, HTTPS on :8443).
set -eu
cd "$(dirname "$0")/.."
DTM=./build/dtm
DIR="${DTM_DATA_DIR:-./dtm-data}"
if [ ! -e "$DIR/dtm.conf" ]; then
    echo "== creating $DIR with demo data, under a minute (the admin password is shown only now)"
    $DTM init --data-dir "$DIR" --demo
    echo "== registering a demo connected system DEMO (its API key is shown only now)"
    $DTM system add --data-dir "$DIR" --code DEMO --name "Demo e-service" --org "Demo agency" \
        | tee "$DIR/demo-system.txt"
    chmod 600 "$DIR/demo-system.txt"
fi
KEY=$(sed -n 's/^api_key: //p' "$DIR/demo-system.txt" 2>/dev/null || true)
cat <<MSG
== DTM is starting
   HTTP  (loopback): http://127.0.0.1:8080/healthz
   HTTPS           : https://localhost:8443/healthz (self-signed certificate: curl -k)
   Try:  curl -s -H "X-API-Key: ${KEY:-<api_key printed above>}" -H 'Content-Type: application/json' \\
           http://127.0.0.1:8080/api/v1/ingest/transactions \\
           -d '{"txn_id":"T1","service_code":"SV01","status":"success","started_at":"2026-11-20T10:00:00+07:00"}'
   Stop: Ctrl-C
MSG
exec $DTM serve --data-dir "$DIR"
