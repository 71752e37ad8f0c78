#!/bin/sh
# Installs the Debian packages DTM needs to build, run, test and benchmark.
# Idempotent: installs only what is missing. Called by `make`, `make run`, `make test`.
set -eu
PKGS="gcc make meson ninja-build pkg-config
libmicrohttpd-dev libgnutls28-dev libcjson-dev libinih-dev libpcre2-dev libsqlite3-dev
libssl-dev libsodium-dev libxml2-dev zlib1g-dev libcurl4-gnutls-dev libxlsxwriter-dev libcmocka-dev
libjwt-dev liboath-dev libqrencode-dev
sqlite3 curl openssl gettext clang-format python3 python3-requests python3-pytest python3-openpyxl
oathtool python3-jwt python3-cryptography python3-aiosmtpd"
case "${1:-}" in
bench) PKGS="$PKGS wrk nginx-light postgresql-15 time bc" ;;
fuzz) PKGS="$PKGS clang libclang-rt-14-dev" ;;
esac
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
