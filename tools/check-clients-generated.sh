#!/usr/bin/env bash
# Regenerate-and-diff for the clients: runs every clients/*/generate.sh and fails when that changed,
# added or removed a file under clients/ compared with before the run (the committed generated code
# is stale). Changes already in the work tree before the run are not blamed on the generators.
set -euo pipefail
cd "$(dirname "$0")/.."
snapshot() { git status --porcelain --untracked-files=all -- clients; git diff --no-ext-diff -- clients | sha256sum; }
before="$(snapshot)"
for g in clients/*/generate.sh; do
    bash "$g" >/dev/null || { echo "check-clients-generated: $g failed" >&2; exit 1; }
done
after="$(snapshot)"
if [[ "$before" != "$after" ]]; then
    echo "check-clients-generated: generated client code differs from the proto; run make generate and commit:" >&2
    diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") >&2 || true
    exit 1
fi
echo "check-clients-generated: every client's generated code matches the proto"
