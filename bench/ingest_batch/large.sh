#!/bin/bash
# bench/ingest_batch/large.sh — issue 3 item 4: a 2 GiB NDJSON batch through POST /api/v1/batches
# runs in bounded memory, shows progress and can be cancelled. Generates ~6 M `transactions` rows
# (bench/ingest_batch/gen.py, cached in bench/out/), starts a server on a fresh data dir, uploads
# the file, samples the batch's progress and the server's RSS every second, cancels the batch with
# DELETE once it is half done, and records: upload time, rows/s before the cancel, the time the
# cancel took, the final counts, and the server's peak RSS (VmHWM) against 200 MB.
# Env: LARGE_ROWS (default 6000000 ≈ 2.1 GB), DTM_BENCH_BIN, BENCH_RESULTS.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DTM="${DTM_BENCH_BIN:-$ROOT/build/dtm}"
ROWS="${LARGE_ROWS:-6000000}"
RESULTS="${BENCH_RESULTS:-$ROOT/bench/RESULTS.md}"
PY=/usr/bin/python3
# shellcheck source=bench/lib.sh
. "$HERE/../lib.sh"
OUT="$ROOT/bench/out"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo +dirty)"
mkdir -p "$OUT"
GENV="$(md5sum "$HERE/gen.py" | cut -c1-8)"
BASE="$OUT/batch-r$ROWS-s1-g$GENV"
if [ ! -s "$BASE.ndjson" ]; then
    echo "[large] generating $ROWS rows (once; cached in bench/out/)" >&2
    "$PY" "$HERE/gen.py" "$ROWS" 1 "$BASE.ndjson.tmp" /dev/null "$BASE.expect.tmp"
    mv "$BASE.ndjson.tmp" "$BASE.ndjson"
    mv "$BASE.expect.tmp" "$BASE.expect"
fi
SIZE=$(stat -c %s "$BASE.ndjson")
TMP="$(mktemp -d /tmp/dtm-bench-large.XXXXXX)"
PID=""
cleanup() {
    stop_pid "$PID" TERM 100
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

"$DTM" init --data-dir "$TMP/d" >/dev/null 2>&1
KEY=$("$DTM" system add --data-dir "$TMP/d" --code BENCHAGG --name "Bench aggregator" \
    --role aggregator --json 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
for s in $("$PY" "$HERE/gen.py" --systems); do
    "$DTM" system add --data-dir "$TMP/d" --code "$s" --name "$s" --parent BENCHAGG >/dev/null 2>&1
done
PORT=$(free_port)
"$DTM" serve --data-dir "$TMP/d" --http "127.0.0.1:$PORT" --https off 2>"$TMP/serve.log" &
PID=$!
wait_http "http://127.0.0.1:$PORT/healthz" || die "the server did not start"
URL="http://127.0.0.1:$PORT"

T0=$(date +%s.%N)
ANSWER=$(curl -sS -T "$BASE.ndjson" -X POST -H "Expect:" -H "X-API-Key: $KEY" \
    -H 'Content-Type: application/x-ndjson' "$URL/api/v1/batches?dataset=transactions")
T1=$(date +%s.%N)
ID=$(echo "$ANSWER" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "[large] $((SIZE / 1048576)) MiB uploaded in $(echo "$T1 - $T0" | bc) s → batch $ID" >&2

# progress and RSS every second until half done, then cancel
SAMPLES="$TMP/samples"
: >"$SAMPLES"
while :; do
    B=$(curl -sS -H "X-API-Key: $KEY" "$URL/api/v1/batches/$ID")
    RSS=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
    read -r ST TOT PROG < <(echo "$B" | "$PY" -c 'import json,sys; b=json.load(sys.stdin); print(b["status"], b["total"], b["progress"])')
    NOW=$(date +%s.%N)
    echo "$(echo "$NOW - $T1" | bc) $ST $TOT $PROG $RSS" >>"$SAMPLES"
    echo "[large] $ST $TOT rows, $(echo "$PROG * 100" | bc -l | cut -c1-5) %, server RSS $((RSS / 1024)) MB" >&2
    if [ "$ST" != queued ] && [ "$ST" != running ]; then break; fi
    if [ "$(echo "$PROG >= 0.5" | bc -l)" = 1 ]; then
        C0=$(date +%s.%N)
        CANCEL=$(curl -sS -X DELETE -H "X-API-Key: $KEY" "$URL/api/v1/batches/$ID")
        C1=$(date +%s.%N)
        break
    fi
    sleep 1
done
HWM=$(awk '/VmHWM/{print $2}' /proc/$PID/status)
FINAL=$(curl -sS -H "X-API-Key: $KEY" "$URL/api/v1/batches/$ID")
read -r ST TOT ACC REJ DUP < <(echo "$FINAL" | "$PY" -c 'import json,sys; b=json.load(sys.stdin); print(b["status"], b["total"], b["accepted"], b["rejected"], b["duplicates"])')
STORED=$(sqlite3 "file:$TMP/d/dtm.db?mode=ro" "SELECT count(*) FROM records WHERE receipt_seq IN (SELECT seq FROM receipts WHERE request_id='$ID')")
RUN_S=$(awk '$2=="running"{last=$1} END{print last}' "$SAMPLES")
FIRST_RUN=$(awk '$2=="running"{print $1; exit}' "$SAMPLES")
RATE=$(echo "$TOT / ($RUN_S - $FIRST_RUN + 1)" | bc)
CANCEL_S=$(echo "${C1:-0} - ${C0:-0}" | bc)
SPOOL_LEFT=$(ls "$TMP/d/batches" 2>/dev/null | wc -l)
PASS_RSS=FAIL; [ "$HWM" -le $((200 * 1024)) ] && PASS_RSS=PASS
PASS_CANCEL=FAIL; [ "$ST" = cancelled ] && [ "$ACC" = "$STORED" ] && [ "$SPOOL_LEFT" = 0 ] && PASS_CANCEL=PASS
{
    echo
    echo "## $(date -u +%Y-%m-%dT%H:%M:%SZ) — commit $COMMIT — ingest_batch large file (ROWS=$ROWS)"
    echo
    echo "One NDJSON file of $((SIZE / 1048576)) MiB ($ROWS \`transactions\` rows, bench/ingest_batch/gen.py)"
    echo "POSTed to /api/v1/batches (\`curl -T\`, streamed), followed every second, cancelled with"
    echo "DELETE once half done. Server RSS sampled every second; peak = VmHWM."
    echo
    echo "| upload s | rows/s while running | rows when cancelled | cancel took s | status | accepted = stored rows | peak RSS MB |"
    echo "|---:|---:|---:|---:|---|---|---:|"
    echo "| $(echo "$T1 - $T0" | bc) | $RATE | $TOT | $CANCEL_S | $ST | $ACC = $STORED | $((HWM / 1024)) |"
    echo
    echo "RSS samples (MB): $(awk '{printf "%d ", $5/1024}' "$SAMPLES")"
    echo
    echo "- $PASS_RSS peak RSS <= 200 MB: $((HWM / 1024)) MB"
    echo "- $PASS_CANCEL cancelled, its committed rows stored once, spool file removed: $ST, $ACC accepted / $STORED stored, $SPOOL_LEFT spool files"
} | tee -a "$RESULTS"
