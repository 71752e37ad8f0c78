#!/bin/sh
# Installs the Debian packages DTM needs to build, run, test and benchmark.
# Idempotent: installs only what is missing. Called by `make`, `make run`, `make test`.
set -eu
PKGS="gcc make meson ninja-build pkg-config
libmicrohttpd-dev libgnutls28-dev libcjson-dev libinih-dev libpcre2-dev libsqlite3-dev
libssl-dev libsodium-dev libxml2-dev zlib1g-dev libcurl4-gnutls-dev libxlsxwriter-dev libcmocka-dev
libcairo2-dev libpango1.0-dev fonts-dejavu-core poppler-utils
libjwt-dev liboath-dev libqrencode-dev libsystemd-dev libpq-dev postgresql-15
sqlite3 curl openssl gettext clang-format python3 python3-requests python3-pytest python3-openpyxl
oathtool python3-jwt python3-cryptography python3-aiosmtpd prometheus python3-rdflib
python3-jsonschema
python3-zeep libxml2-utils python3-pytest-xdist
chromium"
case "${1:-}" in
bench) PKGS="$PKGS wrk nginx-light postgresql-15 time bc" ;;
fuzz) PKGS="$PKGS clang libclang-rt-14-dev" ;;
esac
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Node.js and npm build the dashboard (web/); any install of them will do (Debian's or another)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
# The dashboard's npm packages (issue 6): `npm ci` from the committed lockfile, only when
# web/node_modules is missing or was installed from another lockfile.
WEB="$(dirname "$0")/../web"
lock_sum=$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$WEB/node_modules/.dtm-lock.sha256" 2>/dev/null)" != "$lock_sum" ]; then
    echo "installing the dashboard's npm packages (npm ci in web/)" >&2
    (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" >"$WEB/node_modules/.dtm-lock.sha256"
fi
# The API reference's npm packages (issue 8): Redoc's standalone bundle, embedded in the binary
# for /docs, and @redocly/cli, which lints the OpenAPI document in CI; like web/, `npm ci` only
# when docs/api/node_modules is missing or was installed from another lockfile.
DOCS="$(dirname "$0")/../docs/api"
docs_sum=$(sha256sum "$DOCS/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$DOCS/node_modules/.dtm-lock.sha256" 2>/dev/null)" != "$docs_sum" ]; then
    echo "installing the API reference's npm packages (npm ci in docs/api/)" >&2
    (cd "$DOCS" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$docs_sum" >"$DOCS/node_modules/.dtm-lock.sha256"
fi
