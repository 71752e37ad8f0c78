# bench/lib.sh — helpers shared by the benchmark scripts (sourced; needs PY set).
# shellcheck shell=bash

say() { printf '[bench] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# stop_pid PID SIGNAL TENTHS: signal PID, wait up to TENTHS × 0.1 s, then SIGKILL; reaps it.
stop_pid() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
    kill "-$2" "$1"
    for _ in $(seq 1 "$3"); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    return 0
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # URL: until it answers (any status) or 20 s pass
    for _ in $(seq 1 200); do
        code="$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' "$1" || true)"
        [ "$code" != "000" ] && return 0
        sleep 0.1
    done
    return 1
}

# What bounds a run on this machine (issue 9: "say what limits it"): the share of all cores busy
# during it, from /proc/stat (user + nice + system + irq + softirq + steal over the total).
# cpu_mark prints the counters; cpu_busy MARK prints the busy percentage since MARK.
cpu_mark() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
cpu_busy() {
    local b0 i0 b1 i1
    read -r b0 i0 <<<"$1"
    read -r b1 i1 < <(cpu_mark)
    awk -v b="$((b1 - b0))" -v i="$((i1 - i0))" 'BEGIN { printf "%.0f", (b + i) ? 100 * b / (b + i) : 0 }'
}

vmhwm_mb() { # PID → peak resident set in MB (VmHWM)
    awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}
