#!/usr/bin/env bash
# Installs the headless browser the dashboard tests drive (tests/e2e/test_dashboard.py):
# Debian's chromium and chromium-driver, with apt-get and no recommended packages.
#
# Idempotent and quiet: does nothing when chromium and chromedriver are already on the
# machine. apt-get update runs at most once, only when the package lists are missing or stale.
#
# Exit status: 0 when the binaries are present afterwards, non-zero (with a message) otherwise.
set -euo pipefail

NAME=install-chromium
WHAT=chromium
PACKAGES=(chromium chromium-driver)
# shellcheck source=infra/scripts/apt-packages.sh
source "$(dirname "$0")/apt-packages.sh"

installed() {
    have_one_of chromium chromium-browser && have_one_of chromedriver
}

if installed; then
    exit 0
fi
ensure_packages
installed || fail "apt-get reported success but chromium or chromedriver is still missing"
say "done: $(PATH="$SEARCH_PATH" chromium --version 2>/dev/null || echo chromium)"
