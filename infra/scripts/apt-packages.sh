# Shared by the install-*.sh scripts (sourced, not run): apt-get install of PACKAGES once per
# machine, quietly, only when the caller's `installed` check fails. The caller sets NAME (for
# messages), PACKAGES and WHAT (what is missing, for the error text), defines `installed`, then
# calls `ensure_packages`.
# shellcheck shell=bash

SEARCH_PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

say() { printf '%s: %s\n' "$NAME" "$*" >&2; }
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

ensure_packages() {
    if installed; then
        return 0
    fi

    command -v apt-get >/dev/null 2>&1 ||
        fail "$WHAT is not installed and apt-get is missing: install ${PACKAGES[*]} by hand"

    local SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            fail "$WHAT is not installed; run this script as root (or install sudo) to apt-get install ${PACKAGES[*]}"
        SUDO=(sudo -n)
    fi

    LOG="$(mktemp -t "$NAME".XXXXXX.log)"
    trap 'rm -f "$LOG"' EXIT

    APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y
        -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

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
}
