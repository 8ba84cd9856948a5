#!/usr/bin/env bash
# Installs what the browser tests (tests/web/test_browser.py) need:
#
#   /usr/bin/chromium                   Debian's chromium package (apt-get)
#   tools/browser/node_modules/         playwright-core, pinned by tools/browser/package-lock.json
#   tests/web/node-sdk/node_modules/    @deepgram/sdk, pinned by its package-lock.json, for the
#                                       JS SDK test of the same front door (tests/web/test_sdk.py)
#
# playwright-core is the driver only: it downloads no browser of its own, and the tests launch
# Debian's chromium with executablePath. Idempotent and quick when both are present: nothing is
# fetched then. Needs apt-get (Debian/Ubuntu, as root) for chromium and npm for the driver.
#
# Usage: tools/install-browser.sh [--check]    (--check: report what is missing, install nothing)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$ROOT/tools/browser"
CHECK_ONLY=0
[[ "${1:-}" == "--check" ]] && CHECK_ONLY=1

say() { printf 'install-browser: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

install_chromium() {
    if [[ -x /usr/bin/chromium ]]; then
        return 0
    fi
    (( CHECK_ONLY )) && { say "chromium: missing"; return 1; }
    command -v apt-get >/dev/null || die "chromium is not installed and there is no apt-get to install it"
    # An empty or stale package list has no candidate for chromium: refresh it once.
    local policy
    policy="$(apt-cache policy chromium 2>/dev/null || true)"
    if [[ "$policy" != *"Candidate: "[0-9]* ]]; then
        say "chromium: apt-get update"
        apt-get update -qq || die "apt-get update failed (run as root)"
    fi
    say "chromium: apt-get install"
    local log
    log="$(mktemp)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >"$log" 2>&1 \
        || { cat "$log" >&2; rm -f "$log"; die "apt-get install chromium failed (run as root)"; }
    rm -f "$log"
    [[ -x /usr/bin/chromium ]] || die "chromium installed but /usr/bin/chromium is missing"
    say "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)"
}

# npm_folder DIR PACKAGE: `npm ci` in DIR unless its node_modules is newer than its lock.
npm_folder() {
    local dir="$1" package="$2"
    local stamp="$dir/node_modules/.installed"
    if [[ -f "$stamp" && "$stamp" -nt "$dir/package-lock.json" && -d "$dir/node_modules/$package" ]]; then
        return 0
    fi
    (( CHECK_ONLY )) && { say "$package: missing"; return 1; }
    command -v npm >/dev/null || die "npm is needed to install $package"
    say "$package: npm ci in ${dir#"$ROOT"/}"
    # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing, but say so anyway.
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent) \
        || die "npm ci in $dir failed"
    touch "$stamp"
}

status=0
install_chromium || status=1
npm_folder "$DIR" playwright-core || status=1
npm_folder "$ROOT/tests/web/node-sdk" @deepgram/sdk || status=1
exit "$status"
