#!/bin/bash
# Statistics query benchmark (`make bench`, after the ingest benchmarks; never part of `make test`).
#
# Data: BENCH_QUERY_RECORDS `transactions` (default 10 000 000) from the demo generator
# (`dtm init --demo --demo-records N --demo-end 2026-11-20 --seed S`: 90 days, 25 systems), plus a
# consumer system granted `transactions` (reads every record) and a source system for the
# freshness test. The data dir is cached in bench/out/query-r<N>-s<S>-e<END>/ (10 M take several
# minutes), with the records of the 90 days exported once to CSV (`dtm export`) and loaded into
#   SQLite      one typed raw table (bench/query/run.py load-sqlite; started_at as INTEGER epoch
#               milliseconds), indexes (started_at), (system_code, started_at),
#               (service_code, started_at), ANALYZE — cached beside the CSV;
#   PostgreSQL  15, a throw-away cluster on loopback with default settings, locale C: COPY, the
#               same indexes (started_at timestamptz), VACUUM ANALYZE — loaded every run.
# Queries (bench/query/run.py bench), each asked of dtm over HTTP (keep-alive, 3 warm-ups, then
# BENCH_QUERY_REPEAT times, 50 by default) and of SQLite and PostgreSQL as a GROUP BY over the raw
# table (1 warm-up, then up to 10 runs within 30 s, at least 3; PostgreSQL timed by psql's
# \timing in one session):
#   Q1  count by system_code by day over the 90 days                      (cube)
#   Q2  p95 of response_ms by service_code over the last full month       (cube; ±1 %)
#   Q3a daily count and failure rate (rate:status=failed) of one system   (cube)
#   Q3b that system's failures by error_code                              (cube)
#   Q4  GET /api/v1/systems (when the build has it; peer: Q4b's SQL)
#   Q4b count, failure rate, avg and p95 response_ms per system on the last day (cube)
#   Q5  count by priority over the 90 days: no cube holds priority          (scan)
# The dtm answers are checked against SQLite's (exact; percentiles within 1 %), and DTM-Plan
# (cube=… for the cube queries, scan for Q5). Freshness: 20 × POST one record as the source
# system, then the time from its 2xx to the first /stats answer that counts it. The server
# runs on the cached data dir itself: the freshness records stay in it (their time is now, outside
# the 90 days the queries and the CSV cover), and a newer dtm fills its new cubes there once,
# before it listens. Delete bench/out/query-r… to start from fresh data.
#
# Targets: a cube query's dtm p99 <= 20 ms and its p50 >= 100 x faster than each peer's p50;
# /api/v1/systems p99 <= 20 ms; the scan (Q5) no slower than SQLite's GROUP BY (p50);
# freshness <= 1 s.
#
# Env: BENCH_QUERY_RECORDS (10000000; e.g. 300000 for a quick run), BENCH_SEED (1),
#      BENCH_QUERY_END (demo end date, 2026-11-20), BENCH_QUERY_REPEAT (50),
#      BENCH_QUERY_ONLY (comma list of Q1,Q2,Q3a,Q3b,Q4,Q4b,Q5,fresh; default all),
#      BENCH_QUERY_PG=0 (no PostgreSQL), BENCH_QUERY_PREPARE_ONLY=1 (make the cached data and
#      stop), BENCH_PG_PORT (55432; a free port when busy), BENCH_QUERY_START_TIMEOUT (seconds
#      dtm serve may take to listen, 1800: it fills new cubes of an older cached data dir first),
#      BENCH_STRICT=1 (exit 1 when a check fails), DTM_BENCH_NO_BUILD=1 (use build-release/dtm
#      as it is), DTM_BENCH_BIN (benchmark this binary instead; no build),
#      BENCH_RESULTS (default bench/RESULTS.md).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3
RECORDS="${BENCH_QUERY_RECORDS:-10000000}"
SEED="${BENCH_SEED:-1}"
END="${BENCH_QUERY_END:-2026-11-20}"
REPEAT="${BENCH_QUERY_REPEAT:-50}"
ONLY="${BENCH_QUERY_ONLY:-}"
USE_PG="${BENCH_QUERY_PG:-1}"
RESULTS="${BENCH_RESULTS:-$ROOT/bench/RESULTS.md}"
BUILD="$ROOT/build-release"
DTM="${DTM_BENCH_BIN:-$BUILD/dtm}"
OUT="$ROOT/bench/out"
PGBIN=/usr/lib/postgresql/15/bin
CONSUMER=BQCONS
SOURCE=BQFRESH

# shellcheck source=bench/lib.sh
. "$HERE/../lib.sh"

if ! [[ "$RECORDS" =~ ^[1-9][0-9]*$ ]] || [ "$RECORDS" -lt 10000 ]; then
    die "BENCH_QUERY_RECORDS must be a number >= 10000 (got $RECORDS)"
fi
[[ "$SEED" =~ ^[0-9]+$ ]] || die "BENCH_SEED must be a number (got $SEED)"
[[ "$END" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || die "BENCH_QUERY_END must be YYYY-MM-DD (got $END)"
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_QUERY_REPEAT must be a number >= 1 (got $REPEAT)"
FIRST="$(date -u -d "$END - 89 days" +%F)" # the demo's 90 days: FIRST … END
LAST="$END"

# ---- prerequisites --------------------------------------------------------------------------
if [ "$USE_PG" = 1 ] && ! [ -x "$PGBIN/initdb" ]; then
    "$ROOT/scripts/deps.sh" bench
fi
if [ "$USE_PG" = 1 ]; then
    [ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 is not installed (scripts/deps.sh bench: postgresql-15)"
    id postgres >/dev/null 2>&1 || die "no 'postgres' user (created by the postgresql-15 package)"
fi
"$PY" -c 'import requests, sqlite3' 2>/dev/null || die "$PY lacks requests (python3-requests)"

if [ "${DTM_BENCH_NO_BUILD:-0}" != 1 ] && [ -z "${DTM_BENCH_BIN:-}" ]; then
    if [ ! -f "$BUILD/build.ninja" ]; then
        say "configuring $BUILD (release)"
        (cd "$ROOT" && meson setup build-release -Dbuildtype=release >/dev/null)
    fi
    say "building $DTM"
    ninja -C "$BUILD" >/dev/null
fi
[ -x "$DTM" ] || die "no binary at $DTM"

# ---- scratch space and cleanup -------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/dtm-bench-query.XXXXXX")"
PGTMP=""
PG_UP=0
DTM_PID=""
CHILD=""   # a long step run by child (generation, loads, the queries)
GEN_DIR="" # a data dir being generated (removed when interrupted)
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    set +e
    stop_pid "$CHILD" TERM 50
    stop_pid "$DTM_PID" TERM 100
    if [ "$PG_UP" = 1 ]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate -w stop >/dev/null 2>&1
    fi
    [ -n "$PGTMP" ] && rm -rf "$PGTMP"
    [ -n "$GEN_DIR" ] && rm -rf "$GEN_DIR"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# child CMD…: runs CMD in the background and waits for it, so that a signal stops the benchmark
# (and the trap stops CMD) at once instead of after CMD; CMD's exit status
child() {
    local rc=0
    "$@" <&0 & # <&0: keep our standard input (a background job's would be /dev/null)
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}
port_free() { # PORT → 0 when nothing listens on 127.0.0.1:PORT
    "$PY" -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1])))' "$1" 2>/dev/null
}
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
json_get() { # FILE KEY → the value ("" when missing)
    "$PY" -c 'import json,sys
try: print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))
except Exception: print("")' "$1" "$2"
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# the commit of the tree being measured (read now: the tree may move while the bench runs)
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no-commit")"
[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null | head -1)" ] && COMMIT="$COMMIT+dirty"
LOAD_START="$(loadavg)"

# ---- the data (cached in bench/out/, keyed by records, seed and end date) --------------------
mkdir -p "$OUT"
CACHE="$OUT/query-r$RECORDS-s$SEED-e$END"
DATA="$CACHE/data"
KEYS="$CACHE/keys.json"
CSV="$CACHE/transactions.csv"
SQLITE_DB="$CACHE/raw-v$(sed -n 's/^LOADER_VERSION = \([0-9]*\).*/\1/p' "$HERE/run.py").sqlite"
mkdir -p "$CACHE"
if ! [ -s "$KEYS" ] || ! [ -f "$DATA/dtm.conf" ]; then
    rm -rf "$DATA" "$CSV" "$CACHE"/raw-v*.sqlite "$KEYS"
    GEN_DIR="$CACHE/data.tmp"
    rm -rf "$GEN_DIR"
    say "generating $RECORDS demo transactions (seed $SEED, 90 days ending $END) into $DATA; progress below"
    t0="$(now)"
    # the demo's progress lines go to stderr as they come
    child "$DTM" init --data-dir "$GEN_DIR" --demo --demo-records "$RECORDS" --demo-end "$END" --seed "$SEED" \
        >"$TMP/init.out" || die "dtm init --demo failed"
    GEN_S="$(elapsed "$t0" "$(now)")"
    "$DTM" system add --data-dir "$GEN_DIR" --code "$CONSUMER" --name "Benchmark consumer" \
        --role consumer --json >"$TMP/cons.json" || die "dtm system add (consumer) failed"
    if ! "$DTM" grant add --data-dir "$GEN_DIR" --system "$CONSUMER" --dataset transactions \
        >"$TMP/grant.out" 2>&1; then
        cat "$TMP/grant.out" >&2
        die "dtm grant add failed (a consumer needs a grant to read statistics)"
    fi
    "$DTM" system add --data-dir "$GEN_DIR" --code "$SOURCE" --name "Benchmark freshness source" \
        --role source --json >"$TMP/src.json" || die "dtm system add (source) failed"
    "$PY" - "$TMP/cons.json" "$TMP/src.json" "$GEN_S" "$("$DTM" version 2>/dev/null | head -1)" \
        "$(grep -E '^demo_(records|rejected|systems):' "$TMP/init.out" | tr '\n' ' ')" >"$KEYS.tmp" <<'EOF'
import json, sys
c, s = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
json.dump({"consumer": c["system_code"], "consumer_key": c["api_key"],
           "source": s["system_code"], "source_key": s["api_key"],
           "generated_s": sys.argv[3], "generated_by": sys.argv[4], "demo": sys.argv[5]}, sys.stdout)
EOF
    mv "$GEN_DIR" "$DATA"
    GEN_DIR=""
    mv "$KEYS.tmp" "$KEYS"
    say "generated in $GEN_S s: $(json_get "$KEYS" demo)"
else
    say "using cached $DATA ($(json_get "$KEYS" demo); generated by $(json_get "$KEYS" generated_by) in $(json_get "$KEYS" generated_s) s)"
fi
CONS_KEY="$(json_get "$KEYS" consumer_key)"
SRC_KEY="$(json_get "$KEYS" source_key)"
DATA_MB="$(du -sm "$DATA" | cut -f1)"

if ! [ -s "$CSV" ]; then
    # only the 90 days: the freshness records of earlier runs (started now) stay out
    say "exporting the transactions of $FIRST … $LAST to $CSV"
    t0="$(now)"
    child "$DTM" export --data-dir "$DATA" --dataset transactions --from "$FIRST" --to "$LAST" \
        --format csv -o "$CSV.tmp" >&2 || die "dtm export failed"
    mv "$CSV.tmp" "$CSV"
    say "exported in $(elapsed "$t0" "$(now)") s"
fi
CSV_ROWS="$(($(wc -l <"$CSV") - 1))" # no record holds a newline (checked against SQLite below)
CSV_MB="$(du -m "$CSV" | cut -f1)"

SQLITE_NOTE="cached"
if ! [ -s "$SQLITE_DB" ]; then
    rm -f "$CACHE"/raw-v*.sqlite
    say "loading $CSV into SQLite ($SQLITE_DB)"
    child "$PY" "$HERE/run.py" load-sqlite "$CSV" "$SQLITE_DB" >"$TMP/sqlite_load.json" || die "SQLite load failed"
    SQLITE_NOTE="loaded in $(json_get "$TMP/sqlite_load.json" load_s) s + indexes/ANALYZE $(json_get "$TMP/sqlite_load.json" index_s) s"
fi
SQLITE_ROWS="$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM tx").fetchone()[0])' "$SQLITE_DB")"
SQLITE_MB="$(du -m "$SQLITE_DB" | cut -f1)"
[ "$SQLITE_ROWS" = "$CSV_ROWS" ] || say "warning: SQLite holds $SQLITE_ROWS rows, the CSV $CSV_ROWS lines"
say "$CSV_ROWS records in the 90 days ($CSV_MB MB CSV; SQLite $SQLITE_MB MB, $SQLITE_NOTE; dtm data dir $DATA_MB MB)"
if [ "${BENCH_QUERY_PREPARE_ONLY:-0}" = 1 ]; then
    say "BENCH_QUERY_PREPARE_ONLY=1: the cache in $CACHE is ready; no queries"
    exit 0
fi

# ---- PostgreSQL ---------------------------------------------------------------------------------
PSQL_JSON=""
PG_NOTE="not run (BENCH_QUERY_PG=0)"
if [ "$USE_PG" = 1 ]; then
    port="${BENCH_PG_PORT:-55432}"
    port_free "$port" || port="$(free_port)"
    PGTMP="$(mktemp -d "${TMPDIR:-/tmp}/dtm-bench-pgq.XXXXXX")"
    chown postgres "$PGTMP"
    runuser -u postgres -- "$PGBIN/initdb" -D "$PGTMP/data" -A trust -E UTF8 --no-locale \
        >"$TMP/initdb.log" 2>&1 || { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/log" -w \
        -o "-p $port -k $PGTMP -c listen_addresses=127.0.0.1" \
        start >/dev/null || { cat "$PGTMP/log" >&2; die "PostgreSQL did not start"; }
    PG_UP=1
    PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
    "${PSQL[@]}" -d postgres -c 'CREATE DATABASE bench' >/dev/null
    say "PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }') on 127.0.0.1:$port: COPY of $CSV_ROWS rows, indexes, VACUUM ANALYZE"
    t0="$(now)"
    "$PY" "$HERE/run.py" pg-ddl "$CSV" >"$TMP/pg_load.sql"
    # the script with -f, the CSV on psql's standard input (\copy … FROM pstdin)
    child "${PSQL[@]}" -d bench -f "$TMP/pg_load.sql" <"$CSV" >"$TMP/pg_load.out" 2>&1 \
        || { cat "$TMP/pg_load.out" >&2; die "the PostgreSQL load failed"; }
    PG_LOAD_S="$(elapsed "$t0" "$(now)")"
    read -r PG_ROWS PG_MB < <("${PSQL[@]}" -d bench -At -F ' ' -c \
        "SELECT count(*), pg_total_relation_size('tx') / 1048576 FROM tx")
    PG_NOTE="PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }'): $PG_ROWS rows, table + indexes $PG_MB MB, loaded in $PG_LOAD_S s (COPY, 3 indexes, VACUUM ANALYZE)"
    say "$PG_NOTE"
    PSQL_JSON="$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${PSQL[@]}" -d bench)"
fi

# ---- dtm serve on the cached data dir -------------------------------------------------------
port="$(free_port)"
DTM_URL="http://127.0.0.1:$port"
say "dtm serve --data-dir $DATA on 127.0.0.1:$port"
"$DTM" serve --data-dir "$DATA" --http "127.0.0.1:$port" --https off 2>"$TMP/dtm.stderr.log" &
DTM_PID=$!
# a first start on a data dir made by an older dtm may migrate it or fill new rollups (cubes)
# from its records before it listens: minutes for 10 M records
deadline=$((SECONDS + ${BENCH_QUERY_START_TIMEOUT:-1800}))
next=$((SECONDS + 30))
code=000
while [ "$SECONDS" -lt "$deadline" ]; do
    code="$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' "$DTM_URL/healthz" || true)"
    [ "$code" != "000" ] && break
    kill -0 "$DTM_PID" 2>/dev/null || { tail -20 "$TMP/dtm.stderr.log" >&2; die "dtm serve exited"; }
    if [ "$SECONDS" -ge "$next" ]; then
        say "  dtm serve not listening yet (filling rollups?): $(tail -1 "$TMP/dtm.stderr.log" | head -c 200)"
        next=$((SECONDS + 30))
    fi
    sleep 0.1
done
[ "$code" != "000" ] || { tail -20 "$TMP/dtm.stderr.log" >&2; die "dtm serve did not answer in ${BENCH_QUERY_START_TIMEOUT:-1800} s"; }
REBUILT="$(grep '"rollups rebuilt"' "$TMP/dtm.stderr.log" | grep '"transactions"' | sed -n 's/.*"records":\([0-9]*\),"ms":\([0-9]*\).*/\1 records in \2 ms/p' | head -1 || true)"
[ -n "$REBUILT" ] && say "dtm filled new rollups of transactions before serving: $REBUILT"
code="$(curl --noproxy '*' -s -o "$TMP/probe.json" -w '%{http_code}' -H "X-API-Key: $CONS_KEY" \
    "$DTM_URL/api/v1/stats/transactions?metrics=count")"
[ "$code" = 200 ] || die "the consumer's /stats answered $code: $(head -c 300 "$TMP/probe.json")"

# ---- the queries ----------------------------------------------------------------------------
say "queries (dtm ${REPEAT}x each after 3 warm-ups; peers up to 10x within 30 s); load average $(loadavg)"
BENCH_ARGS=(--out "$TMP/res" --url "$DTM_URL" --key "$CONS_KEY" --source-key "$SRC_KEY"
    --source-code "$SOURCE" --sqlite "$SQLITE_DB" --first-day "$FIRST" --last-day "$LAST"
    --repeat "$REPEAT")
[ -n "$PSQL_JSON" ] && BENCH_ARGS+=(--psql "$PSQL_JSON")
[ -n "$ONLY" ] && BENCH_ARGS+=(--only "$ONLY")
if ! child "$PY" "$HERE/run.py" bench "${BENCH_ARGS[@]}"; then
    if ! kill -0 "$DTM_PID" 2>/dev/null; then
        rc=0
        wait "$DTM_PID" || rc=$?
        DTM_PID=""
        tail -5 "$TMP/dtm.stderr.log" >&2
        die "dtm serve exited with status $rc during the queries (signal $((rc > 128 ? rc - 128 : 0)))"
    fi
    die "run.py bench failed"
fi
RSS="$(vmhwm_mb "$DTM_PID")"
LOAD_END="$(loadavg)"
kill -TERM "$DTM_PID"
wait "$DTM_PID" || say "dtm serve exited with status $? after SIGTERM"
DTM_PID=""
if [ "$PG_UP" = 1 ]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGTMP/data" -m fast -w stop >/dev/null
    PG_UP=0
    rm -rf "$PGTMP"
    PGTMP=""
fi

# ---- report -----------------------------------------------------------------------------------
DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
CPU="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
DTMVER="$("$DTM" version 2>/dev/null | head -1)"
SYSX="$(json_get "$TMP/res/results.json" system_q3)"
MONTH="$(json_get "$TMP/res/results.json" month)"

echo
echo "DTM statistics query benchmark — $DATE, commit $COMMIT, $(nproc) cores ($CPU), load average $LOAD_START at the start, $LOAD_END at the end"
echo "$CSV_ROWS transactions over $FIRST … $LAST (demo, seed $SEED); dtm data dir $DATA_MB MB, server peak RSS $RSS MB"
echo
cat "$TMP/res/table.md"
echo
grep -v '^ALL_PASS$\|^SOME_FAIL$' "$TMP/res/verdict.txt"

[ -s "$RESULTS" ] || printf '# Benchmark results\n' >"$RESULTS"
{
    echo
    echo "## $DATE — commit $COMMIT — query (BENCH_QUERY_RECORDS=$RECORDS)"
    echo
    echo "Machine: $(nproc) cores, $CPU; load average $LOAD_START at the start, $LOAD_END at the end"
    echo "(other engineers build and test on it). Data: \`dtm init --demo --demo-records $RECORDS"
    echo "--demo-end $END --seed $SEED\`: $CSV_ROWS \`transactions\` over $FIRST … $LAST (UTC+07:00 days),"
    echo "25 systems; dtm data dir $DATA_MB MB. dtm${DTMVER:+ ($DTMVER)}: \`$(basename "$(dirname "$DTM")")/dtm serve\`,"
    echo "default config, HTTP on 127.0.0.1, keep-alive (python requests), a consumer system granted"
    echo "\`transactions\`; 3 warm-ups, then up to $REPEAT requests (a scan: within 60 s, at least 3);"
    echo "server peak RSS $RSS MB. Peers: the same records exported to CSV and loaded into one raw"
    echo "table each, the same indexes (started_at), (system_code, started_at), (service_code, started_at):"
    echo "SQLite $("$PY" -c 'import sqlite3; print(sqlite3.sqlite_version)') (python sqlite3, started_at INTEGER epoch ms, ANALYZE, 64 MB page cache; $SQLITE_MB MB);"
    echo "$PG_NOTE;"
    printf '%s\n' "default settings, locale C, started_at timestamptz, timed with psql's \\timing in one session."
    echo "A peer query: 1 warm-up, then up to 10 runs within 30 s (at least 3). p99 = nearest rank"
    echo "(with 50 runs: the largest)."
    echo "Q3's system: $SYSX (the most failures); Q2's month: $MONTH. /api/v1/systems (Q4) computes"
    echo "today's figures, and with a fixed demo end the real today holds no demo record: its peer"
    echo "column shows Q4b's GROUP BY over the demo's last day, without a ratio."
    [ -n "$REBUILT" ] && echo "The cached data dir was made by an older dtm: this one filled its new cubes first ($REBUILT)."
    echo
    cat "$TMP/res/table.md"
    echo
    grep -v '^ALL_PASS$\|^SOME_FAIL$' "$TMP/res/verdict.txt"
} >>"$RESULTS"
say "appended to $RESULTS"

if [ "${BENCH_STRICT:-0}" = 1 ] && ! grep -q '^ALL_PASS$' "$TMP/res/verdict.txt"; then
    exit 1
fi
exit 0
