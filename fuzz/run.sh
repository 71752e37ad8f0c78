#!/bin/sh
# `make fuzz FUZZ_SECONDS=N`: runs every libFuzzer driver (or those named in FUZZ_DRIVERS) for N
# seconds (default 300) from its committed seeds, all at once, in a clang build with ASan + UBSan
# and the engine instrumented for coverage (FUZZ_BUILD, default build-fuzz). New
# interesting inputs go to BUILD/corpus/NAME; a crash stops that driver and leaves
# BUILD/crash-NAME-*, and the script exits 1 naming it. Add a fixed crash to fuzz/corpus/NAME.
set -eu
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-300}
BUILD=${FUZZ_BUILD:-build-fuzz}
DRIVERS=${FUZZ_DRIVERS:-}
scripts/deps.sh fuzz
# (a build dir made otherwise — without the coverage instrumentation — is set up again)
if [ ! -f "$BUILD/build.ninja" ] || [ ! -f "$BUILD/.dtm-fuzz" ]; then
    wipe=""
    [ -f "$BUILD/build.ninja" ] && wipe="--wipe"
    # shellcheck disable=SC2086
    CC=clang CFLAGS=-fsanitize=fuzzer-no-link meson setup $wipe "$BUILD" \
        -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
    touch "$BUILD/.dtm-fuzz"
fi
ninja -C "$BUILD" >/dev/null
if [ -z "$DRIVERS" ]; then # every libFuzzer binary fuzz/meson.build made
    for f in "$BUILD"/fuzz/fuzz_*; do
        case "$f" in *_replay | *.p) continue ;; esac
        [ -x "$f" ] && DRIVERS="$DRIVERS ${f##*/fuzz_}"
    done
fi
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
seeds() {
    case "$1" in
    definition) echo "fuzz/corpus/definition src/dict/builtin" ;;
    decode) echo "fuzz/corpus/decode fuzz/corpus/json fuzz/corpus/ndjson fuzz/corpus/csv fuzz/corpus/xml" ;;
    *) if [ -d "fuzz/corpus/$1" ]; then echo "fuzz/corpus/$1"; fi ;;
    esac
}
pids=""
for d in $DRIVERS; do
    mkdir -p "$BUILD/corpus/$d"
    # shellcheck disable=SC2046
    "$BUILD/fuzz/fuzz_$d" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$BUILD/crash-$d-" "$BUILD/corpus/$d" $(seeds "$d") \
        >"$BUILD/fuzz-$d.log" 2>&1 &
    pids="$pids $!:$d"
done
status=0
for pd in $pids; do
    if wait "${pd%%:*}"; then
        echo "fuzz ${pd#*:}: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$BUILD/fuzz-${pd#*:}.log" | tail -1)"
    else
        echo "fuzz ${pd#*:}: FAILED — see $BUILD/fuzz-${pd#*:}.log and $BUILD/crash-${pd#*:}-*" >&2
        status=1
    fi
done
exit $status
