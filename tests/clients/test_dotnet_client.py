"""The .NET client: the Transcribe.Client library, its xunit tests (on the shared vectors in
clients/testdata), its NuGet package and the sample program on it, built with `dotnet` from the
checkout and run end to end.

Where no .NET SDK is installed, every test that needs the build is reported as skipped, with that
reason: the .NET client is then not built and not tested (only its project files are checked).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from tests.clients import sample_checks as checks
from tests.clients.conftest import (
    CLIENT_TIMEOUT_S,
    REPO,
    Clip,
    InterruptClient,
    ProgressiveServer,
    RunClient,
    StallingServer,
)
from tests.conftest import TIMING
from tests.support.replicas import Fleet

#: They run the real gateway, which starts the embedded engine.
pytestmark = pytest.mark.engine

DOTNET_DIR = REPO / "clients" / "dotnet"
LIBRARY = DOTNET_DIR / "Transcribe.Client" / "Transcribe.Client.csproj"
CLI = DOTNET_DIR / "Transcribe.Cli" / "Transcribe.Cli.csproj"
UNIT_TESTS = DOTNET_DIR / "Transcribe.Client.Tests" / "Transcribe.Client.Tests.csproj"
PROTO = REPO / "proto" / "transcribe" / "v1" / "transcribe.proto"
BUILD_TIMEOUT_S = 900.0
NO_SDK = "no .NET SDK on this machine: the .NET client was not built"
DOTNET_ENV = {"DOTNET_CLI_TELEMETRY_OPTOUT": "1", "DOTNET_NOLOGO": "1"}


@pytest.fixture(scope="session")
def dotnet() -> str:
    """The dotnet command, or a skip when there is none."""
    found = shutil.which("dotnet")
    if found is None:
        pytest.skip(NO_SDK)
    return found


@pytest.fixture(scope="session")
def dotnet_client(dotnet: str, tmp_path_factory: pytest.TempPathFactory, run_client: RunClient) -> list[str]:
    """The sample program, built from the checkout on the library (stubs generated from the proto)."""
    out = tmp_path_factory.mktemp("dotnet")
    run = run_client(
        [dotnet, "build", str(CLI), "--configuration", "Release", "--output", str(out), "--nologo"],
        env=DOTNET_ENV,
        cwd=DOTNET_DIR,
        timeout=BUILD_TIMEOUT_S,
    )
    assert run.returncode == 0, run.describe()
    return [dotnet, str(out / "transcribe.dll")]


def _packages(project: ET.Element) -> dict[str, str]:
    return {
        item.attrib["Include"]: item.attrib.get("Version", "") for item in project.iter("PackageReference")
    }


def test_projects_generate_the_client_from_the_proto_with_pinned_packages() -> None:
    """The library compiles the one proto (client stubs only), pins every package and carries
    NuGet metadata; the sample and the unit tests build on it."""
    library = ET.parse(LIBRARY).getroot()
    assert library.findtext("PropertyGroup/TargetFramework") == "net8.0"
    for field in ("PackageId", "Version", "Description", "PackageLicenseExpression", "Authors"):
        assert library.findtext(f"PropertyGroup/{field}"), field
    protos = [item.attrib for item in library.iter("Protobuf")]
    assert protos == [
        {
            "Include": "../../../proto/transcribe/v1/transcribe.proto",
            "ProtoRoot": "../../../proto",
            "GrpcServices": "Client",
        }
    ]
    assert (LIBRARY.parent / protos[0]["Include"]).resolve() == PROTO
    assert set(_packages(library)) == {"Google.Protobuf", "Grpc.Net.Client", "Grpc.StatusProto", "Grpc.Tools"}
    for project_file in (LIBRARY, UNIT_TESTS):
        for name, version in _packages(ET.parse(project_file).getroot()).items():
            assert version and all(part.isdigit() for part in version.split(".")), (
                f"{name} is not pinned: {version!r}"
            )
    for project_file in (CLI, UNIT_TESTS):
        references = [r.attrib["Include"] for r in ET.parse(project_file).getroot().iter("ProjectReference")]
        assert references == ["../Transcribe.Client/Transcribe.Client.csproj"], project_file
    assert ET.parse(CLI).getroot().findtext("PropertyGroup/AssemblyName") == "transcribe"
    assert not list(DOTNET_DIR.rglob("*Grpc.cs")), "generated C# is built, not committed"


def test_unit_tests_pass(dotnet: str, run_client: RunClient) -> None:
    """The library's xunit tests (the shared vectors in clients/testdata) pass."""
    run = run_client(
        [dotnet, "test", str(UNIT_TESTS), "--configuration", "Release", "--nologo"],
        env=DOTNET_ENV,
        cwd=DOTNET_DIR,
        timeout=BUILD_TIMEOUT_S,
    )
    assert run.returncode == 0, run.describe()
    assert re.search(r"Passed!|Failed:\s+0,", run.stdout), run.describe()


def test_pack_makes_a_nuget_package(dotnet: str, run_client: RunClient, tmp_path: Path) -> None:
    """`dotnet pack` makes Transcribe.Client's .nupkg with the library and its README."""
    run = run_client(
        [dotnet, "pack", str(LIBRARY), "--configuration", "Release", "--output", str(tmp_path), "--nologo"],
        env=DOTNET_ENV,
        cwd=DOTNET_DIR,
        timeout=BUILD_TIMEOUT_S,
    )
    assert run.returncode == 0, run.describe()
    [package] = tmp_path.glob("Transcribe.Client.*.nupkg")
    names = zipfile.ZipFile(package).namelist()
    assert "lib/net8.0/Transcribe.Client.dll" in names and "README.md" in names, names


def test_file_prints_final_transcripts(
    dotnet_client: list[str], live_gateway: str, corpus_clip: Clip, run_client: RunClient
) -> None:
    """A WAV file sent with --fast prints its final transcripts close to the reference."""
    checks.check_file(dotnet_client, live_gateway, corpus_clip, run_client)


def test_json_prints_every_response_as_python_does(
    dotnet_client: list[str], live_gateway: str, corpus_clip: Clip, run_client: RunClient, venv_python: str
) -> None:
    """--json prints one lowerCamelCase proto3 JSON object per response and line, like Python's."""
    checks.check_json(dotnet_client, live_gateway, corpus_clip, run_client, venv_python)


def test_rejected_config_exits_1_with_the_status_name(
    dotnet_client: list[str], live_gateway: str, corpus_clip: Clip, run_client: RunClient
) -> None:
    """A sample rate the gateway rejects exits 1 with `error: INVALID_ARGUMENT: ...`."""
    checks.check_rejected_config(dotnet_client, live_gateway, corpus_clip, run_client)


def test_unreachable_gateway_exits_1_unavailable(
    dotnet_client: list[str], corpus_clip: Clip, run_client: RunClient
) -> None:
    """A gateway nobody listens for exits 1 with `error: UNAVAILABLE: ...`."""
    checks.check_unreachable(dotnet_client, corpus_clip, run_client)


def test_unreadable_file_exits_1_invalid_argument(
    dotnet_client: list[str], live_gateway: str, corpus_clip: Clip, run_client: RunClient
) -> None:
    """A missing file exits 1 with `error: INVALID_ARGUMENT: cannot read PATH: ...`."""
    checks.check_unreadable_file(dotnet_client, live_gateway, corpus_clip, run_client)


def test_bad_command_line_exits_2(dotnet_client: list[str], run_client: RunClient) -> None:
    """No --file nor --url exits 2; --help prints the flags and exits 0."""
    checks.check_usage(dotnet_client, run_client)


@pytest.mark.slow
def test_url_relays_a_progressive_http_stream(
    dotnet_client: list[str],
    live_gateway: str,
    corpus_clip: Clip,
    progressive_http_server: ProgressiveServer,
    run_client: RunClient,
) -> None:
    """--url relays an HTTP stream as it arrives; --interim adds `~ ` lines."""
    checks.check_url(dotnet_client, live_gateway, corpus_clip, progressive_http_server, run_client)


@pytest.mark.slow
def test_interrupt_ends_the_audio_cleanly(
    dotnet_client: list[str], live_gateway: str, corpus_clip: Clip, interrupt_client: InterruptClient
) -> None:
    """Ctrl+C half-closes: the remaining results and the summary print, exit 0."""
    checks.check_interrupt(dotnet_client, live_gateway, corpus_clip, interrupt_client)


@pytest.mark.slow
def test_second_interrupt_cancels_with_130(
    dotnet_client: list[str],
    stalling_server: StallingServer,
    corpus_clip: Clip,
    interrupt_client: InterruptClient,
) -> None:
    """A second Ctrl+C cancels the call: exit 130, `error: CANCELLED: interrupted` (against a
    server that never ends the call, so results are pending whatever the upstream's speed)."""
    checks.check_second_interrupt(dotnet_client, stalling_server.addr, corpus_clip, interrupt_client)


@pytest.mark.slow
def test_stream_resumes_across_a_rolling_restart(
    dotnet_client: list[str], gateway_replicas: Fleet, long_speech_clip: Clip
) -> None:
    """Two replicas behind nginx; the serving one is SIGTERMed in the silence after the first
    speech: the library resumes on the other by itself, one session and one summary, and the
    audio accounting is exact (resume point + the last call's audio = the clip)."""
    args = [
        *dotnet_client,
        "--addr",
        gateway_replicas.address,
        "--file",
        str(long_speech_clip.path),
        "--json",
    ]
    lines: list[str] = []
    first_speech_done = threading.Event()
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None and process.stderr is not None

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if '"connection"' in line and '"isFinal":true' in line:  # the first speech's last words
                    first_speech_done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert first_speech_done.wait(CLIENT_TIMEOUT_S * TIMING), "".join(lines)
        gateway_replicas.terminate_serving()
        stderr = process.stderr.read()
        returncode = process.wait(timeout=CLIENT_TIMEOUT_S * TIMING)
        reader.join(timeout=CLIENT_TIMEOUT_S * TIMING)
    described = f"exit {returncode}\n--- stdout\n{''.join(lines)}\n--- stderr\n{stderr}"
    assert returncode == 0, described
    resumed = re.findall(r"^resuming: UNAVAILABLE: .*\(attempt 1, from ([0-9.]+) s\)$", stderr, re.MULTILINE)
    assert len(resumed) == 1, described
    responses = [json.loads(line) for line in lines]
    assert [list(r) for r in responses].count(["sessionStarted"]) == 1, described
    summaries = [r["summary"] for r in responses if "summary" in r]
    assert len(summaries) == 1 and list(responses[-1]) == ["summary"], described
    assert abs(float(resumed[0]) + summaries[0]["audioReceivedSeconds"] - long_speech_clip.duration_s) < 1e-5
    starts = [r["result"].get("startSeconds", 0.0) for r in responses if r.get("result", {}).get("isFinal")]
    assert starts == sorted(starts), described
