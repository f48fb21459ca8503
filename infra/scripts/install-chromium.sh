#!/usr/bin/env bash
# Installs the headless browser the dashboard tests drive (tests/e2e/test_dashboard.py):
# Debian's chromium and chromium-driver, with apt-get and no recommended packages.
#
# Idempotent and quiet: does nothing when chromium and chromedriver are already on the
# machine. apt-get update runs at most once, only when the package lists are missing or stale.
#
# Exit status: 0 when the binaries are present afterwards, non-zero (with a message) otherwise.
set -euo pipefail

PACKAGES=(chromium chromium-driver)
SEARCH_PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

say() { printf 'install-chromium: %s\n' "$*" >&2; }
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
    have_one_of chromium chromium-browser && have_one_of chromedriver
}

if installed; then
    exit 0
fi

command -v apt-get >/dev/null 2>&1 ||
    fail "chromium is not installed and apt-get is missing: install ${PACKAGES[*]} by hand"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 ||
        fail "chromium is not installed; run this script as root (or install sudo) to apt-get install ${PACKAGES[*]}"
    SUDO=(sudo -n)
fi

LOG="$(mktemp -t install-chromium.XXXXXX.log)"
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

installed || fail "apt-get reported success but chromium or chromedriver is still missing"
say "done: $(PATH="$SEARCH_PATH" chromium --version 2>/dev/null || echo chromium)"
