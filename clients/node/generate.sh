#!/usr/bin/env bash
# Installs the locked dependencies if needed and regenerates the TypeScript declarations in
# types/ from the contract. The client itself loads the .proto at run time, so nothing else
# is generated; the types only serve editors and type-checking JSDoc users.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
[ -d node_modules/@grpc/proto-loader ] || npm ci --no-audit --no-fund --silent
rm -rf types
npx --no-install proto-loader-gen-types \
    --keepCase --longs=String --enums=String --defaults --oneofs \
    --grpcLib=@grpc/grpc-js --outDir=types \
    ../../proto/transcribe/v1/transcribe.proto
