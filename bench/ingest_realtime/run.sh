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
#      $'[ratelimit]\nenabled = false' to measure what the rate limits cost),
#      BENCH_PG (default 1 when PostgreSQL 15 is installed: also measure dtm on PostgreSQL; 0 =
#      SQLite only).
#
# PostgreSQL (issue 9): the same run then measures dtm on a throw-away PostgreSQL 15 cluster
# (bench/pg.sh; durable: fsync and synchronous_commit on), one node, then two nodes — two
# `dtm serve` on different ports sharing the database and the data dir (the deployment of
# docs/SCALING.md), the load split between them (two wrk, -t1 and half the connections each,
# at once). It prints req/s (= records/s, one record a request) and the ratios PostgreSQL/SQLite
# and two nodes/one node. Targets: one node on PostgreSQL >= 0.5 x SQLite; two nodes >= 1.3 x
# one node.
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
# shellcheck source=bench/pg.sh
. "$HERE/../pg.sh"
PG_ON="${BENCH_PG:-1}"
bpg_available || PG_ON=0

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
DTM2_PID=""
NGINX_PID=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    set +e
    stop_pid "$DTM_PID" TERM 100
    stop_pid "$DTM2_PID" TERM 100
    stop_pid "$NGINX_PID" QUIT 50
    bpg_stop
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wrk_run NAME URL CONNS KEY → sets R_RPS R_P50 R_P99 R_NON2XX R_SOCK R_REQS; keeps the output
wrk_run() {
    local name="$1" url="$2" c="$3" key="$4" out="$TMP/wrk-$1-c$3.txt" mark
    say "wrk $name -t$THREADS -c$c -d$DURATION"
    mark="$(cpu_mark)"
    DTM_KEY="$key" DTM_RUN="$name$c$RANDOM" \
        wrk -t"$THREADS" -c"$c" -d"$DURATION" --latency -s "$HERE/post.lua" "$url" >"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk failed"; }
    R_CPU="$(cpu_busy "$mark")"
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

declare -A RPS P50 P99 ERR REQS CPUB
RSS_AT=()
for c in $CONNS; do
    wrk_run dtm "$DTM_URL" "$c" "$KEY"
    RPS[dtm$c]=$R_RPS; P50[dtm$c]=$R_P50; P99[dtm$c]=$R_P99; CPUB[dtm$c]=$R_CPU
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

# ---- dtm on PostgreSQL: one node, then two nodes sharing the database -------------------------
# wrk2_run NAME URL1 URL2 CONNS KEY: two wrk at once, -t1 and CONNS/2 connections each, one per
# node → R_RPS (the sum), R_P50/R_P99 (the larger of the two), R_NON2XX, R_SOCK, R_REQS (sums)
wrk2_run() {
    local name="$1" c="$4" key="$5" half pids=() i out url r1 r2 mark
    half=$(($4 / 2))
    say "wrk $name: 2 x (-t1 -c$half -d$DURATION), one per node"
    mark="$(cpu_mark)"
    for i in 1 2; do
        out="$TMP/wrk-$name-c$c-$i.txt"
        url="$2"
        [ "$i" = 2 ] && url="$3"
        DTM_KEY="$key" DTM_RUN="$name$c$i$RANDOM" \
            wrk -t1 -c"$half" -d"$DURATION" --latency -s "$HERE/post.lua" "$url" >"$out" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || die "wrk failed"; done
    R_CPU="$(cpu_busy "$mark")"
    r1="$("$PY" "$HERE/wrkparse.py" "$TMP/wrk-$name-c$c-1.txt")"
    r2="$("$PY" "$HERE/wrkparse.py" "$TMP/wrk-$name-c$c-2.txt")"
    read -r R_RPS R_P50 R_P99 R_NON2XX R_SOCK R_REQS < <("$PY" -c '
import sys
a, b = (x.split() for x in sys.argv[1:])
def f(v):
    try: return float(v)
    except ValueError: return float("nan")
print("%.0f" % (f(a[0]) + f(b[0])), max(a[1], b[1], key=f), max(a[2], b[2], key=f),
      *("%d" % (int(f(a[i])) + int(f(b[i]))) for i in (3, 4, 5)))' "$r1" "$r2")
}

# pg_node DATA DSN → a data dir on the database DSN with the benchmark system; prints its key
pg_node() {
    "$DTM" init --data-dir "$1" --store-dsn "$2" >/dev/null 2>"$TMP/pg-init.log" \
        || { cat "$TMP/pg-init.log" >&2; die "dtm init --store-dsn failed"; }
    [ -z "${BENCH_DTM_CONF:-}" ] || printf '\n%s\n' "$BENCH_DTM_CONF" >>"$1/dtm.conf"
    "$DTM" system add --data-dir "$1" --code BENCH01 --name "Benchmark source" \
        --role source --tier gold | awk -F': ' '$1 == "api_key" { print $2 }'
}

# pg_serve DATA → starts a node, sets SERVE_PID and SERVE_URL
pg_serve() {
    local port
    port="$(free_port)"
    "$DTM" serve --data-dir "$1" --http "127.0.0.1:$port" --https off 2>>"$TMP/dtm-pg.stderr.log" &
    SERVE_PID=$!
    SERVE_URL="http://127.0.0.1:$port"
    wait_http "$SERVE_URL/healthz" || { tail -20 "$TMP/dtm-pg.stderr.log" >&2; die "dtm (PostgreSQL) did not start"; }
}

PG_STORED="-"; PG2_STORED="-"; PG_SENT=0; PG2_SENT=0; PG_RSS="-"
if [ "$PG_ON" = 1 ]; then
    bpg_start
    # one node
    PG_DSN="$(bpg_newdb rt_one)"
    PKEY="$(pg_node "$TMP/pgdata" "$PG_DSN")"
    [ -n "$PKEY" ] || die "dtm system add (PostgreSQL) printed no api_key"
    pg_serve "$TMP/pgdata"
    DTM_PID=$SERVE_PID
    for c in $CONNS; do
        sync; sleep 2
        wrk_run pg1 "$SERVE_URL" "$c" "$PKEY"
        RPS[pg1$c]=$R_RPS; P50[pg1$c]=$R_P50; P99[pg1$c]=$R_P99; CPUB[pg1$c]=$R_CPU
        ERR[pg1$c]=$((R_NON2XX + R_SOCK)); REQS[pg1$c]=$R_REQS
        PG_SENT=$((PG_SENT + R_REQS - R_NON2XX - R_SOCK))
        kill -0 "$DTM_PID" 2>/dev/null || { tail -20 "$TMP/dtm-pg.stderr.log" >&2; die "dtm (PostgreSQL) died under load"; }
    done
    PG_RSS="$(vmhwm_mb "$DTM_PID")"
    stop_pid "$DTM_PID" TERM 100; DTM_PID=""
    PG_STORED="$(bpg_query "$PG_DSN" "SELECT count(*) FROM records")"
    # two nodes: one database, one data dir (shared storage, as docs/SCALING.md deploys them)
    PG2_DSN="$(bpg_newdb rt_two)"
    PKEY2="$(pg_node "$TMP/pgdata2" "$PG2_DSN")"
    [ -n "$PKEY2" ] || die "dtm system add (PostgreSQL, two nodes) printed no api_key"
    pg_serve "$TMP/pgdata2"; DTM_PID=$SERVE_PID; URL_A=$SERVE_URL
    pg_serve "$TMP/pgdata2"; DTM2_PID=$SERVE_PID; URL_B=$SERVE_URL
    for c in $CONNS; do
        sync; sleep 2
        wrk2_run pg2 "$URL_A" "$URL_B" "$c" "$PKEY2"
        RPS[pg2$c]=$R_RPS; P50[pg2$c]=$R_P50; P99[pg2$c]=$R_P99; CPUB[pg2$c]=$R_CPU
        ERR[pg2$c]=$((R_NON2XX + R_SOCK)); REQS[pg2$c]=$R_REQS
        PG2_SENT=$((PG2_SENT + R_REQS - R_NON2XX - R_SOCK))
        kill -0 "$DTM2_PID" 2>/dev/null || { tail -20 "$TMP/dtm-pg.stderr.log" >&2; die "dtm node 2 died under load"; }
    done
    stop_pid "$DTM_PID" TERM 100; DTM_PID=""
    stop_pid "$DTM2_PID" TERM 100; DTM2_PID=""
    PG2_STORED="$(bpg_query "$PG2_DSN" "SELECT count(*) FROM records")"
    bpg_stop
fi

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
PGTABLE="$TMP/pgtable.md"
if [ "$PG_ON" = 1 ]; then
    {
        echo "| store | conns | records/s | p50 ms | p99 ms | errors | CPU busy (both cores) | PostgreSQL/SQLite | 2 nodes/1 node |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        for c in $CONNS; do
            echo "| SQLite, 1 node | $c | ${RPS[dtm$c]} | ${P50[dtm$c]} | ${P99[dtm$c]} | ${ERR[dtm$c]} | ${CPUB[dtm$c]} % | | |"
            echo "| PostgreSQL, 1 node | $c | ${RPS[pg1$c]} | ${P50[pg1$c]} | ${P99[pg1$c]} | ${ERR[pg1$c]} | ${CPUB[pg1$c]} % | $(ratio "${RPS[pg1$c]}" "${RPS[dtm$c]}") | |"
            echo "| PostgreSQL, 2 nodes | $c | ${RPS[pg2$c]} | ${P50[pg2$c]} | ${P99[pg2$c]} | ${ERR[pg2$c]} | ${CPUB[pg2$c]} % | $(ratio "${RPS[pg2$c]}" "${RPS[dtm$c]}") | $(ratio "${RPS[pg2$c]}" "${RPS[pg1$c]}") |"
        done
    } >"$PGTABLE"
else
    echo "(PostgreSQL not measured: BENCH_PG=0 or PostgreSQL 15 not installed)" >"$PGTABLE"
fi

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
echo
echo "dtm on PostgreSQL 15 (same run; two nodes = two dtm serve sharing the database, load split):"
echo
cat "$PGTABLE"
echo
echo "PostgreSQL rows: one node $PG_STORED stored / $PG_SENT acknowledged; two nodes $PG2_STORED / $PG2_SENT; one node's peak RSS $PG_RSS MB"

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
    if [ "$PG_ON" = 1 ]; then
        echo
        echo "dtm on PostgreSQL 15 (throw-away cluster, fsync and synchronous_commit on), same run:"
        echo
        cat "$PGTABLE"
        echo
        echo "PostgreSQL rows: one node $PG_STORED stored / $PG_SENT acknowledged; two nodes $PG2_STORED / $PG2_SENT (+1 probe each)."
    fi
} >>"$RESULTS"
say "appended to $RESULTS"

if [ "${BENCH_STRICT:-0}" = 1 ] && ! grep -q '^ALL_PASS$' "$VERDICT"; then
    exit 1
fi
exit 0
