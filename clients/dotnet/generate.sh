#!/usr/bin/env bash
# The .NET client's stubs are not committed: Grpc.Tools generates them from
# ../../proto/transcribe/v1/transcribe.proto at every build of the library (the <Protobuf> item of
# Transcribe.Client/Transcribe.Client.csproj). Nothing to do here; this builds the library, the
# sample and the unit tests when a .NET SDK is present.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if command -v dotnet >/dev/null 2>&1; then
    for project in Transcribe.Client Transcribe.Cli Transcribe.Client.Tests; do
        dotnet build "$here/$project/$project.csproj" --nologo -v quiet
    done
else
    echo "clients/dotnet: stubs are generated at build time (no .NET SDK here: nothing built)"
fi
