#!/bin/sh
# Rejects banned C functions (curl's checksrc): unbounded or unchecked string handling.
set -eu
cd "$(dirname "$0")/.."
hits=$(grep -nE '(^|[^_a-zA-Z0-9])(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|strtok)[[:space:]]*\(' \
    $(find src tests/unit fuzz -name '*.[ch]' 2>/dev/null) || true)
if [ -n "$hits" ]; then
    echo "$hits"
    echo "checksrc: banned function used (see STYLE.md)" >&2
    exit 1
fi
echo "checksrc: ok"
