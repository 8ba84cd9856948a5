#!/usr/bin/env bash
# Regenerates the Python stubs in transcribe_client/_pb/ from the contract.
# protoc's virtual-path form (-I<package path>=<proto root>) makes the generated imports
# absolute inside this package, so they never clash with another copy of transcribe.v1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
cd "$here"
rm -rf transcribe_client/_pb/transcribe
# protoc finds protoc-gen-mypy and protoc-gen-mypy_grpc next to the interpreter.
PATH="$(dirname "$py"):$PATH" "$py" -m grpc_tools.protoc \
    -Itranscribe_client/_pb=../../proto \
    --python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. \
    ../../proto/transcribe/v1/transcribe.proto
touch transcribe_client/_pb/__init__.py transcribe_client/_pb/transcribe/__init__.py \
    transcribe_client/_pb/transcribe/v1/__init__.py
