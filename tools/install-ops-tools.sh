#!/usr/bin/env bash
# Installs what the deployment tests (tests/deploy) need into .tools/ in the repository:
#
#   .tools/bin/nginx              nginx from Debian's packages (grpc_pass, HTTP/2)
#   .tools/bin/grpcurl            github.com/fullstorydev/grpcurl, pinned
#   .tools/bin/grpc_health_probe  github.com/grpc-ecosystem/grpc-health-probe, pinned
#
# Idempotent: a tool already in .tools/bin at the pinned version is left alone, so a second run
# does nothing. nginx already on PATH is linked, not installed. Otherwise Debian's nginx package
# is downloaded with apt-get and unpacked into .tools/nginx (dpkg-deb -x): nothing is installed
# system-wide and no nginx service is started. The Go tools are built with `go install` from the
# Go module proxy. Needs apt (Debian/Ubuntu) for nginx and Go >= 1.22 for the others.
#
# Usage: tools/install-ops-tools.sh [--check]    (--check: report what is missing, install nothing)
set -euo pipefail

GRPCURL_VERSION=v1.9.4
GRPC_HEALTH_PROBE_VERSION=v0.4.61

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
CHECK_ONLY=0
[[ "${1:-}" == "--check" ]] && CHECK_ONLY=1

say() { printf 'install-ops-tools: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

mkdir -p "$BIN"

# ---- nginx -------------------------------------------------------------------------------
install_nginx() {
    if [[ -x "$BIN/nginx" ]] && "$BIN/nginx" -v >/dev/null 2>&1; then
        return 0
    fi
    local found
    found="$(PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$BIN" | paste -sd: -)" command -v nginx || true)"
    if [[ -z "$found" && -x /usr/sbin/nginx ]]; then
        found=/usr/sbin/nginx  # installed but /usr/sbin not on PATH (a non-root shell)
    fi
    if [[ -n "$found" ]]; then
        say "nginx: using $found"
        ln -sfn "$found" "$BIN/nginx"
        return 0
    fi
    (( CHECK_ONLY )) && { say "nginx: missing"; return 1; }
    command -v apt-get >/dev/null || die "nginx is not installed and there is no apt-get to fetch it"
    local cache="$TOOLS/cache"
    mkdir -p "$cache"
    # An empty or stale package list has no candidate for nginx: refresh it once.
    local policy
    policy="$(apt-cache policy nginx 2>/dev/null || true)"
    if [[ "$policy" != *"Candidate: "[0-9]* ]]; then
        say "nginx: apt-get update"
        apt-get update -qq || die "apt-get update failed (run as root)"
    fi
    say "nginx: downloading Debian's package"
    rm -f "$cache"/nginx_*.deb
    # apt-get download writes into the current directory; as root it warns that it cannot drop
    # to the _apt user for a directory _apt cannot write to, which is harmless here.
    (cd "$cache" && apt-get download -qq nginx 2>&1 | grep -v 'unsandboxed as root' >&2 || true)
    local deb
    deb="$(ls "$cache"/nginx_*.deb 2>/dev/null | head -n1)"
    [[ -n "$deb" ]] || die "apt-get download nginx gave no package"
    rm -rf "$TOOLS/nginx"
    dpkg-deb -x "$deb" "$TOOLS/nginx"
    if ! "$TOOLS/nginx/usr/sbin/nginx" -v >/dev/null 2>&1; then
        # The binary's shared libraries (PCRE2, OpenSSL, zlib, libcrypt) are in any Debian base
        # image with Python; install them if this one lacks them. Libraries start no service.
        say "nginx: installing its libraries"
        apt-get install -y -qq --no-install-recommends libpcre2-8-0 libssl3 zlib1g libcrypt1 >&2 \
            || die "could not install nginx's libraries"
    fi
    "$TOOLS/nginx/usr/sbin/nginx" -v >/dev/null 2>&1 || die "the unpacked nginx does not run"
    ln -sfn "$TOOLS/nginx/usr/sbin/nginx" "$BIN/nginx"
    say "nginx: $("$BIN/nginx" -v 2>&1) in $TOOLS/nginx"
}

# ---- Go tools -------------------------------------------------------------------------------
# go_tool NAME PACKAGE VERSION: `go install PACKAGE@VERSION`, installed as .tools/bin/NAME, unless
# the binary there was built from that module at that version (go version -m reads it back).
go_tool() {
    local name="$1" package="$2" version="$3" build
    if [[ -x "$BIN/$name" ]]; then
        command -v go >/dev/null || return 0  # cannot tell its version without Go: keep it
        local info
        info="$(go version -m "$BIN/$name" 2>/dev/null || true)"
        if grep -qE "^[[:space:]]+mod[[:space:]].*[[:space:]]$version([[:space:]]|$)" <<<"$info"; then
            return 0
        fi
    fi
    (( CHECK_ONLY )) && { say "$name: missing or not $version"; return 1; }
    command -v go >/dev/null || die "$name needs Go (go install); Go is not on PATH"
    say "$name: go install $package@$version"
    build="$(mktemp -d "$TOOLS/gobin.XXXXXX")"
    GOBIN="$build" GOFLAGS="${GOFLAGS:-} -trimpath" go install "$package@$version" \
        || { rm -rf "$build"; die "go install $package@$version failed"; }
    # The binary is named after the package's last path element; install it under NAME.
    mv -f "$build/${package##*/}" "$BIN/$name"
    rm -rf "$build"
}

status=0
install_nginx || status=1
go_tool grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl "$GRPCURL_VERSION" || status=1
go_tool grpc_health_probe github.com/grpc-ecosystem/grpc-health-probe "$GRPC_HEALTH_PROBE_VERSION" || status=1
if (( status == 0 )) && (( ! CHECK_ONLY )); then
    say "ready: $BIN/{nginx,grpcurl,grpc_health_probe}"
fi
exit "$status"
