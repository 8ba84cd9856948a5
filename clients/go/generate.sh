#!/usr/bin/env bash
# Regenerates the Go stubs in gen/transcribe/v1 from proto/transcribe/v1/transcribe.proto.
# OUT=DIR writes them under DIR instead of gen/ (the tests compare that with the committed code).
#
# protoc is the one bundled with grpcio-tools in the project's virtualenv (`make setup`); the two
# Go plugins are built at pinned versions into clients/go/bin (gitignored). The proto has no
# go_package option: the Go import path is given here with an M option instead.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12     # keep equal to google.golang.org/protobuf in go.mod
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
go="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
module="$("$go" -C "$here" list -m)"
proto=transcribe/v1/transcribe.proto
mapping="M$proto=$module/gen/transcribe/v1;transcribev1"

GOBIN="$here/bin" "$go" install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
GOBIN="$here/bin" "$go" install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"

out="${OUT:-$here/gen}"
rm -rf "$out/transcribe"
mkdir -p "$out"
"$python" -m grpc_tools.protoc \
    --plugin=protoc-gen-go="$here/bin/protoc-gen-go" \
    --plugin=protoc-gen-go-grpc="$here/bin/protoc-gen-go-grpc" \
    -I"$root/proto" \
    --go_out="$out" --go_opt=paths=source_relative --go_opt="$mapping" \
    --go-grpc_out="$out" --go-grpc_opt=paths=source_relative --go-grpc_opt="$mapping" \
    "$root/proto/$proto"
echo "generated $(ls "$out"/transcribe/v1/*.go | tr '\n' ' ')"
