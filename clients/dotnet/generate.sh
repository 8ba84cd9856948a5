#!/usr/bin/env bash
# The .NET client's stubs are not committed: Grpc.Tools generates them from
# ../../proto/transcribe/v1/transcribe.proto at every build (the <Protobuf> item of
# TranscribeClient.csproj). Nothing to do here; this builds the project when a .NET SDK is present.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if command -v dotnet >/dev/null 2>&1; then
    dotnet build "$here/TranscribeClient.csproj" --nologo -v quiet
else
    echo "clients/dotnet: stubs are generated at build time (no .NET SDK here: nothing built)"
fi
