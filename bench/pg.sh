# bench/pg.sh — a throw-away PostgreSQL 15 cluster for the benchmarks' PostgreSQL runs of dtm
# (issue 9): initdb + pg_ctl as the postgres user in a temporary directory, loopback only, the
# server's default durable settings (fsync on, synchronous_commit on: a 2xx of dtm means the
# commit is on disk, as with SQLite). Sourced after lib.sh; needs TMP. The caller's EXIT trap
# calls bpg_stop.
# shellcheck shell=bash

BPG_BIN="${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}"
BPG_DIR=""
BPG_UP=0
BPG_BASE=""

bpg_available() { [ -x "$BPG_BIN/initdb" ] && [ -x "$BPG_BIN/pg_ctl" ]; }

# bpg_start: a fresh cluster; sets BPG_BASE (a libpq connection string without dbname)
bpg_start() {
    local port
    port="$(free_port)"
    BPG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/dtm-bench-pgc.XXXXXX")"
    chmod 700 "$BPG_DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$BPG_DIR"
    bpg_as "$BPG_BIN/initdb" -D "$BPG_DIR/data" -A trust -U postgres -E UTF8 --no-locale \
        >"$TMP/bpg-initdb.log" 2>&1 || { cat "$TMP/bpg-initdb.log" >&2; die "initdb failed"; }
    bpg_as "$BPG_BIN/pg_ctl" -D "$BPG_DIR/data" -l "$BPG_DIR/log" -w \
        -o "-p $port -k $BPG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on -c synchronous_commit=on" \
        start >/dev/null || { cat "$BPG_DIR/log" >&2; die "PostgreSQL did not start"; }
    BPG_UP=1
    BPG_BASE="host=127.0.0.1 port=$port user=postgres"
    say "PostgreSQL $("$BPG_BIN/postgres" --version | awk '{ print $3 }') on 127.0.0.1:$port (fsync on, synchronous_commit on)"
}

bpg_as() { # runs a server tool as postgres when root (initdb refuses root)
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# bpg_newdb NAME → prints the DSN of a new empty database NAME ([a-z0-9_])
bpg_newdb() {
    psql "$BPG_BASE dbname=postgres" -X -q -A -t -c "CREATE DATABASE $1" >/dev/null \
        || die "CREATE DATABASE $1 failed"
    echo "$BPG_BASE dbname=$1"
}

# bpg_query DSN SQL → the first column of the first row
bpg_query() { psql "$1" -X -q -A -t -c "$2" 2>/dev/null | head -1; }

bpg_stop() {
    [ "$BPG_UP" = 1 ] && bpg_as "$BPG_BIN/pg_ctl" -D "$BPG_DIR/data" -m immediate -w stop >/dev/null 2>&1
    BPG_UP=0
    [ -n "$BPG_DIR" ] && rm -rf "$BPG_DIR"
    BPG_DIR=""
}
