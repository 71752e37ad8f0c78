#!/bin/sh
# `make test`: install what is missing, build with warnings as errors, check style and the
# message catalogue, run unit and end-to-end tests against the real binary — then all of it again
# under ASan + UBSan.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
PY=/usr/bin/python3
STATUS=0
# The end-to-end suites run their test files on DTM_TEST_JOBS pytest-xdist workers at once
# (default 3: the tests mostly wait on servers, sockets and the database, so three keep this
# 2-core machine busy). Every test file has its own servers, ports and data dirs (and, on
# PostgreSQL, each worker its own throw-away cluster); --dist loadfile keeps a file's tests,
# which share a module's server, on one worker. DTM_TEST_JOBS=0 runs them one at a time.
JOBS=${DTM_TEST_JOBS:-3}
E2E="-q -n $JOBS --dist loadfile tests/e2e"
[ "$JOBS" -gt 0 ] || E2E="-q tests/e2e"
step() { printf '\n==== %s\n' "$*"; }

step "build (warnings are errors)"
[ -f build/build.ninja ] || meson setup build -Dwerror=true
ninja -C build

step "source checks"
scripts/checksrc.sh
msgfmt --check -o /dev/null po/vi.po && echo "po/vi.po: ok"
if command -v clang-format >/dev/null 2>&1; then
    if clang-format --dry-run -Werror $(git ls-files 'src/*.[ch]' 'tests/unit/*.[ch]'); then
        echo "format: ok"
    else
        echo "format: run 'make format'" >&2
        STATUS=1
    fi
fi

step "OpenAPI document (issue 8): redocly lint of what build/dtm serves, offline"
# tests/e2e/test_openapi_catalog.py checks too that it describes every route and nothing else
if build/dtm openapi >build/openapi.json && build/dtm openapi --lang vi >build/openapi.vi.json &&
    REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_COLOR=1 \
        docs/api/node_modules/.bin/redocly lint --config docs/api/redocly.yaml \
        build/openapi.json build/openapi.vi.json; then
    echo "openapi: ok"
else
    STATUS=1
fi

step "unit tests"
meson test -C build --suite unit --print-errorlogs || STATUS=1

step "end-to-end tests (build/dtm)"
DTM_BIN="$PWD/build/dtm" $PY -m pytest $E2E || STATUS=1

# The whole end-to-end suite again on PostgreSQL 15 (issue 9 item 2). tests/e2e/pgcluster.py
# starts one throw-away cluster for the run: initdb and pg_ctl in a temporary directory, a free
# loopback port, no system service — as the unprivileged `postgres` user when this runs as root
# (CI), since initdb refuses root. Every test server gets a database of its own: copies of a
# template migrated by build/dtm, made ahead by a background thread (CREATE DATABASE … TEMPLATE),
# so a test waits for neither. The cluster runs with fsync=off (a throw-away cluster: the tests
# kill dtm, never the database's machine; synchronous_commit stays on, so a 2xx still means
# COMMIT returned). Only the plain build runs on PostgreSQL; the ASan + UBSan run below is on
# SQLite.
step "end-to-end tests on PostgreSQL 15 (build/dtm)"
DTM_TEST_STORE=postgresql DTM_BIN="$PWD/build/dtm" $PY -m pytest $E2E || STATUS=1

step "browser tests of the dashboard (build/dtm, headless chromium; screenshots in build/browser-artifacts)"
DTM_BIN="$PWD/build/dtm" node tests/browser/run.mjs build/browser-artifacts || STATUS=1

step "build with ASan + UBSan"
[ -f build-asan/build.ninja ] || meson setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
ninja -C build-asan
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=24"

step "unit tests under ASan + UBSan"
meson test -C build-asan --suite unit --print-errorlogs || STATUS=1

step "end-to-end tests under ASan + UBSan (build-asan/dtm)"
# two workers here, not three: under ASan the timing-bound tests (2 s warning buckets) have the
# least headroom, and one of them missed its spike once with three
ASAN_JOBS=$((JOBS > 2 ? 2 : JOBS))
E2E_ASAN="-q -n $ASAN_JOBS --dist loadfile tests/e2e"
[ "$ASAN_JOBS" -gt 0 ] || E2E_ASAN="-q tests/e2e"
DTM_BIN="$PWD/build-asan/dtm" DTM_SANITIZED=1 $PY -m pytest $E2E_ASAN || STATUS=1

if [ $STATUS -ne 0 ]; then
    echo "make test: FAILED" >&2
else
    echo "make test: all passed"
fi
exit $STATUS
