#!/usr/bin/env bash
# Regenerates the message type declarations in types/ (committed, shipped in the package) from
# the contract: proto-loader-gen-types writes TypeScript for the plain objects the library
# hands out (camelCase fields, enums and 64-bit integers as strings, defaults filled, oneof
# names), and tsc turns them into .d.ts files. The library itself loads the .proto at run time
# (a copy inside the package, made by the `prepare` script), so no JavaScript is generated.
# Usage: ./generate.sh [OUT_DIR] (default types/; a test writes elsewhere to compare).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# OUT_DIR is relative to the caller's directory; the default is this package's types/.
out="$(realpath -m "${1:-$here/types}")"
cd "$here"
[ -x node_modules/.bin/tsc ] || npm ci --no-audit --no-fund --silent
work="$(mktemp -d "$here/.generate.XXXXXX")" # inside, so tsc finds node_modules
trap 'rm -rf "$work"' EXIT
node_modules/.bin/proto-loader-gen-types \
    --longs=String --enums=String --defaults --oneofs \
    --grpcLib=@grpc/grpc-js --outDir="$work/src" \
    ../../proto/transcribe/v1/transcribe.proto
rm -rf "$out"
node_modules/.bin/tsc --declaration --emitDeclarationOnly --skipLibCheck \
    --module commonjs --moduleResolution node10 --target es2022 \
    --rootDir "$work/src" --outDir "$out" $(find "$work/src" -name '*.ts' | sort)
# The generated imports have no file extensions, which only CommonJS declarations allow; the
# library's own lib/index.d.ts (ESM) imports these as types, which works across the two.
printf '{\n  "type": "commonjs"\n}\n' > "$out/package.json"
