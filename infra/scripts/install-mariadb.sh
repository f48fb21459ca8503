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

NAME=install-mariadb
WHAT="MariaDB (>= 10.6)"
PACKAGES=(mariadb-server-core mariadb-client-core)
# shellcheck source=infra/scripts/apt-packages.sh
source "$(dirname "$0")/apt-packages.sh"

installed() {
    have_one_of mariadbd mysqld &&
        have_one_of mariadb-install-db mysql_install_db &&
        have_one_of my_print_defaults
}

if installed; then
    exit 0
fi
ensure_packages
installed || fail "apt-get reported success but mariadbd, mariadb-install-db or my_print_defaults is still missing"
say "done: $(PATH="$SEARCH_PATH" mariadbd --version 2>/dev/null || PATH="$SEARCH_PATH" mysqld --version)"
