#!/bin/bash
# Realtime ingest benchmark (`make bench`; never part of `make test`).
#
# wrk posts single `transactions` records (~350 bytes, unique keys, keep-alive) to
# POST /api/v1/ingest/transactions over plain HTTP on loopback, at 50 and at 500 connections,
# then the same load against nginx answering `return 201` with 2 workers: the HTTP ceiling of
# this machine. Prints req/s, p50/p99 latency, errors, dtm's peak RSS and the ratio dtm/nginx,
# and appends the figures to bench/RESULTS.md with the date and the commit.
#
# Targets at 500 connections: >= 0.5 x nginx's req/s with durable acks, p99 <= 50 ms, 0 errors,
# peak RSS <= 150 MB.
#
# Env: BENCH_DURATION (default 15s), BENCH_CONNECTIONS (default "50 500"), BENCH_THREADS (2),
#      BENCH_STRICT=1 (exit 1 when a target is missed), DTM_BENCH_NO_BUILD=1 (use
#      build-release/dtm as it is), DTM_BENCH_BIN (benchmark this binary instead; no build),
#      BENCH_RESULTS (default bench/RESULTS.md), BENCH_DTM_CONF (lines appended to dtm.conf, e.g.
#      $'[ratelimit]\nenabled = false' to measure what the rate limits cost).
#
# The benchmark's system is registered with `--tier gold` (T2.2): the default gold limit
# (50 000 req/s, bucket 100 000) is far above what one machine answers, so it never limits the
# run; the default tier, silver (500 req/s), would.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3
DURATION="${BENCH_DURATION:-15s}"
CONNS="${BENCH_CONNECTIONS:-50 500}"
THREADS="${BENCH_THREADS:-2}"
RESULTS="${BENCH_RESULTS:-$ROOT/bench/RESULTS.md}"
BUILD="$ROOT/build-release"
DTM="${DTM_BENCH_BIN:-$BUILD/dtm}"

# shellcheck source=bench/lib.sh
. "$HERE/../lib.sh"

# ---- prerequisites --------------------------------------------------------------------------
if ! command -v wrk >/dev/null || ! [ -x /usr/sbin/nginx ]; then
    "$ROOT/scripts/deps.sh" bench
fi
command -v wrk >/dev/null || die "wrk is not installed (scripts/deps.sh bench)"
NGINX=/usr/sbin/nginx

if [ "${DTM_BENCH_NO_BUILD:-0}" != 1 ] && [ -z "${DTM_BENCH_BIN:-}" ]; then
    if [ ! -f "$BUILD/build.ninja" ]; then
        say "configuring $BUILD (release)"
        (cd "$ROOT" && meson setup build-release -Dbuildtype=release >/dev/null)
    fi
    say "building $DTM"
    ninja -C "$BUILD" >/dev/null
fi
[ -x "$DTM" ] || die "no binary at $DTM"

# 500 connections on each side need more than the usual 1024 descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 2100 ] || die "ulimit -n is $(ulimit -n); 500 connections need more"

# ---- scratch space and cleanup -------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/dtm-bench.XXXXXX")"
DTM_PID=""
NGINX_PID=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    set +e
    stop_pid "$DTM_PID" TERM 100
    stop_pid "$NGINX_PID" QUIT 50
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wrk_run NAME URL CONNS KEY → sets R_RPS R_P50 R_P99 R_NON2XX R_SOCK R_REQS; keeps the output
wrk_run() {
    local name="$1" url="$2" c="$3" key="$4" out="$TMP/wrk-$1-c$3.txt"
    say "wrk $name -t$THREADS -c$c -d$DURATION"
    DTM_KEY="$key" DTM_RUN="$name$c$RANDOM" \
        wrk -t"$THREADS" -c"$c" -d"$DURATION" --latency -s "$HERE/post.lua" "$url" >"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk failed"; }
    sed 's/^/    /' "$out" >&2
    read -r R_RPS R_P50 R_P99 R_NON2XX R_SOCK R_REQS < <("$PY" "$HERE/wrkparse.py" "$out")
}


# ---- dtm --------------------------------------------------------------------------------------
DATA="$TMP/data"
"$DTM" init --data-dir "$DATA" >/dev/null
[ -z "${BENCH_DTM_CONF:-}" ] || printf '\n%s\n' "$BENCH_DTM_CONF" >>"$DATA/dtm.conf"
KEY="$("$DTM" system add --data-dir "$DATA" --code BENCH01 --name "Benchmark source" \
        --role source --tier gold | awk -F': ' '$1 == "api_key" { print $2 }')"
[ -n "$KEY" ] || die "dtm system add printed no api_key"
DTM_PORT="$(free_port)"
"$DTM" serve --data-dir "$DATA" --http "127.0.0.1:$DTM_PORT" --https off \
    2>"$TMP/dtm.stderr.log" &
DTM_PID=$!
wait_http "http://127.0.0.1:$DTM_PORT/healthz" || { tail -20 "$TMP/dtm.stderr.log" >&2; die "dtm did not start"; }
DTM_URL="http://127.0.0.1:$DTM_PORT"

# sanity: the record the Lua script sends is accepted
probe='{"txn_id":"probe-1","service_code":"SV01","channel":"web","status":"success","started_at":"2026-11-20T10:00:00+07:00","finished_at":"2026-11-20T10:00:01+07:00","response_ms":850,"citizen_id":"001234567890","amount":"150000","region_code":"HN","agency_code":"BO-KHCN","priority":"normal","classification":"internal"}'
code="$(curl --noproxy '*' -s -o "$TMP/probe.json" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' -H "X-API-Key: $KEY" --data-binary "$probe" \
    "$DTM_URL/api/v1/ingest/transactions")"
[ "$code" = 200 ] || { cat "$TMP/probe.json" >&2; die "probe record not accepted ($code)"; }

declare -A RPS P50 P99 ERR REQS
RSS_AT=()
for c in $CONNS; do
    wrk_run dtm "$DTM_URL" "$c" "$KEY"
    RPS[dtm$c]=$R_RPS; P50[dtm$c]=$R_P50; P99[dtm$c]=$R_P99
    ERR[dtm$c]=$((R_NON2XX + R_SOCK)); REQS[dtm$c]=$R_REQS
    kill -0 "$DTM_PID" 2>/dev/null || { tail -20 "$TMP/dtm.stderr.log" >&2; die "dtm died under load"; }
    RSS_AT+=("c$c:$(vmhwm_mb "$DTM_PID")")
done
DTM_RSS="$(vmhwm_mb "$DTM_PID")"

kill -TERM "$DTM_PID"
DTM_RC=0
wait "$DTM_PID" || DTM_RC=$?
DTM_PID=""
# What was acknowledged must be stored (durable acks): count the rows.
STORED="$("$PY" - "$DATA/dtm.db" <<'EOF'
import sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(con.execute("SELECT COUNT(*) FROM records").fetchone()[0])
EOF
)" || STORED="?"
SENT=0
for c in $CONNS; do SENT=$((SENT + ${REQS[dtm$c]} - ${ERR[dtm$c]})); done

# ---- nginx, the ceiling -----------------------------------------------------------------------
NG="$TMP/nginx"
mkdir -p "$NG"
NG_PORT="$(free_port)"
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"
sed -e "s|@PREFIX@|$NG|g" -e "s|@PORT@|$NG_PORT|g" -e "s|@USER@|$USER_LINE|g" \
    "$HERE/nginx.conf.in" >"$NG/nginx.conf"
"$NGINX" -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" -g 'daemon off;' &
NGINX_PID=$!
wait_http "http://127.0.0.1:$NG_PORT/" || { cat "$NG/error.log" >&2; die "nginx did not start"; }
for c in $CONNS; do
    wrk_run nginx "http://127.0.0.1:$NG_PORT" "$c" ""
    RPS[nginx$c]=$R_RPS; P50[nginx$c]=$R_P50; P99[nginx$c]=$R_P99
    ERR[nginx$c]=$((R_NON2XX + R_SOCK)); REQS[nginx$c]=$R_REQS
done
kill -QUIT "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null || true; NGINX_PID=""

# ---- report -----------------------------------------------------------------------------------
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no-commit")"
[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null | head -1)" ] && COMMIT="$COMMIT+dirty"
DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
CPU="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"

ratio() { "$PY" -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f' % (a/b) if b else '?')" "$1" "$2"; }

TABLE="$TMP/table.md"
{
    echo "| server | conns | req/s | p50 ms | p99 ms | errors | dtm/nginx req/s |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for c in $CONNS; do
        echo "| dtm | $c | ${RPS[dtm$c]} | ${P50[dtm$c]} | ${P99[dtm$c]} | ${ERR[dtm$c]} | $(ratio "${RPS[dtm$c]}" "${RPS[nginx$c]}") |"
        echo "| nginx (return 201, 2 workers) | $c | ${RPS[nginx$c]} | ${P50[nginx$c]} | ${P99[nginx$c]} | ${ERR[nginx$c]} | |"
    done
} >"$TABLE"

VERDICT="$TMP/verdict.txt"
HI="$(echo "$CONNS" | awk '{ print $NF }')"
"$PY" - "$(ratio "${RPS[dtm$HI]}" "${RPS[nginx$HI]}")" "${P99[dtm$HI]}" "${ERR[dtm$HI]}" \
    "$DTM_RSS" "$HI" "$STORED" "$SENT" >"$VERDICT" <<'EOF'
import sys
ratio, p99, err, rss, hi, stored, sent = sys.argv[1:]
def f(x):
    try: return float(x)
    except ValueError: return float("nan")
checks = [
    (f"req/s at {hi} connections >= 0.5 x nginx", f(ratio) >= 0.5, f"{ratio}"),
    (f"p99 at {hi} connections <= 50 ms", f(p99) <= 50, f"{p99} ms"),
    (f"errors at {hi} connections = 0", f(err) == 0, err),
    ("peak RSS <= 150 MB", f(rss) <= 150, f"{rss} MB"),
    ("every 2xx stored (rows >= acknowledged requests)", f(stored) >= f(sent), f"{stored} rows / {sent} acks"),
]
for name, ok, got in checks:
    print(f"- {'PASS' if ok else 'FAIL'} {name}: {got}")
print("ALL_PASS" if all(ok for _, ok, _ in checks) else "SOME_FAIL")
EOF

echo
echo "DTM realtime ingest benchmark — $DATE, commit $COMMIT, $(nproc) cores ($CPU)"
echo "wrk -t$THREADS -d$DURATION, keep-alive, one ~350-byte transactions record per POST, HTTP on loopback"
echo
cat "$TABLE"
echo
echo "dtm peak RSS (VmHWM): $DTM_RSS MB (after ${RSS_AT[*]}); exit status after SIGTERM: $DTM_RC"
echo "stored rows: $STORED, acknowledged requests: $SENT (+1 probe)"
echo
grep -v '^ALL_PASS$\|^SOME_FAIL$' "$VERDICT"

[ -s "$RESULTS" ] || printf '# Benchmark results\n' >"$RESULTS"
{
    echo
    echo "## $DATE — commit $COMMIT — ingest_realtime (BENCH_DURATION=$DURATION)"
    echo
    echo "Machine: $(nproc) cores, $CPU. wrk -t$THREADS, keep-alive, one ~350-byte \`transactions\`"
    echo "record per POST with a unique key, plain HTTP on 127.0.0.1; dtm with its default config"
    echo "(\`dtm serve --https off\`), fresh data dir; nginx \`return 201\`, 2 workers, access_log off."
    echo
    cat "$TABLE"
    echo
    echo "dtm peak RSS (VmHWM): $DTM_RSS MB; stored rows $STORED for $SENT acknowledged requests (+1 probe); exit $DTM_RC after SIGTERM."
    echo
    grep -v '^ALL_PASS$\|^SOME_FAIL$' "$VERDICT"
} >>"$RESULTS"
say "appended to $RESULTS"

if [ "${BENCH_STRICT:-0}" = 1 ] && ! grep -q '^ALL_PASS$' "$VERDICT"; then
    exit 1
fi
exit 0
