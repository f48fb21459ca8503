#!/usr/bin/env bash
# Installs the MariaDB server binaries the connector tests start (tests/support/mariadb.py).
#
# Idempotent and quiet: does nothing when a server (mariadbd or mysqld), mariadb-install-db (or
# mysql_install_db) and my_print_defaults are already on the machine. Otherwise installs
# Debian's mariadb-server-core and mariadb-client-core with apt-get: the server binary,
# mariadb-install-db, my_print_defaults and the mariadb client, and no init script, so no system
# service is started or enabled (the tests run their own server on a private data dir and a
# loopback port). apt-get update runs at most once, only when the package lists are missing or
# stale.
#
# Exit status: 0 when the binaries are present afterwards, non-zero (with a message) otherwise.
set -euo pipefail

PACKAGES=(mariadb-server-core mariadb-client-core)
SEARCH_PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

say() { printf 'install-mariadb: %s\n' "$*" >&2; }
fail() {
    say "ERROR: $*"
    exit 1
}

have_one_of() {
    local name
    for name in "$@"; do
        if PATH="$SEARCH_PATH" command -v "$name" >/dev/null 2>&1; then
            return 0
        fi
    done
    return 1
}

installed() {
    have_one_of mariadbd mysqld &&
        have_one_of mariadb-install-db mysql_install_db &&
        have_one_of my_print_defaults
}

if installed; then
    exit 0
fi

command -v apt-get >/dev/null 2>&1 ||
    fail "MariaDB is not installed and apt-get is missing: install ${PACKAGES[*]} (or MariaDB >= 10.6) by hand"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 ||
        fail "MariaDB is not installed; run this script as root (or install sudo) to apt-get install ${PACKAGES[*]}"
    SUDO=(sudo -n)
fi

LOG="$(mktemp -t install-mariadb.XXXXXX.log)"
trap 'rm -f "$LOG"' EXIT

APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y
    -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

apt_update() {
    "${APT[@]}" update >>"$LOG" 2>&1 || {
        cat "$LOG" >&2
        fail "apt-get update failed (see the output above)"
    }
}

apt_install() {
    "${APT[@]}" install --no-install-recommends "${PACKAGES[@]}" >>"$LOG" 2>&1
}

has_candidate() {
    local package candidate
    for package in "${PACKAGES[@]}"; do
        candidate="$(apt-cache policy "$package" 2>/dev/null | awk '/Candidate:/ {print $2}')"
        if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
            return 1
        fi
    done
    return 0
}

say "installing ${PACKAGES[*]} with apt-get (once per machine)"
updated=0
if ! has_candidate; then
    apt_update
    updated=1
fi
if ! apt_install; then
    if [ "$updated" -eq 1 ]; then
        cat "$LOG" >&2
        fail "apt-get install ${PACKAGES[*]} failed (see the output above)"
    fi
    # The package lists were stale (a version no longer on the mirror): refresh them once.
    apt_update
    apt_install || {
        cat "$LOG" >&2
        fail "apt-get install ${PACKAGES[*]} failed (see the output above)"
    }
fi

installed || fail "apt-get reported success but mariadbd, mariadb-install-db or my_print_defaults is still missing"
say "done: $(PATH="$SEARCH_PATH" mariadbd --version 2>/dev/null || PATH="$SEARCH_PATH" mysqld --version)"
