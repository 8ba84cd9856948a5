"""The .NET client: built from the checkout with `dotnet build` and run end to end.

Where no .NET SDK is installed, every test that needs the build is reported as skipped, with that
reason: the .NET client is then not built and not tested (only its project file is checked).
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

from tests.clients import sample_checks as checks
from tests.clients.conftest import REPO, Clip, InterruptClient, ProgressiveServer, RunClient, StallingServer

#: They run the real gateway, which starts the embedded engine.
pytestmark = pytest.mark.engine

DOTNET_DIR = REPO / "clients" / "dotnet"
PROJECT = DOTNET_DIR / "TranscribeClient.csproj"
BUILD_TIMEOUT_S = 900.0
NO_SDK = "no .NET SDK on this machine: the .NET client was not built"


@pytest.fixture(scope="session")
def dotnet() -> str:
    """The dotnet command, or a skip when there is none."""
    found = shutil.which("dotnet")
    if found is None:
        pytest.skip(NO_SDK)
    return found


@pytest.fixture(scope="session")
def dotnet_client(dotnet: str, tmp_path_factory: pytest.TempPathFactory, run_client: RunClient) -> list[str]:
    """The sample program, built from the checkout (stubs generated from the proto by the build)."""
    out = tmp_path_factory.mktemp("dotnet")
    run = run_client(
        [dotnet, "build", str(PROJECT), "--configuration", "Release", "--output", str(out), "--nologo"],
        env={"DOTNET_CLI_TELEMETRY_OPTOUT": "1", "DOTNET_NOLOGO": "1"},
        cwd=DOTNET_DIR,
        timeout=BUILD_TIMEOUT_S,
    )
    assert run.returncode == 0, run.describe()
    return [dotnet, str(out / "transcribe.dll")]


def test_project_generates_the_client_from_the_proto_with_pinned_packages() -> None:
    """The project compiles the one proto (client stubs only) and pins every package version."""
    project = ET.parse(PROJECT).getroot()
    assert project.findtext("PropertyGroup/TargetFramework") == "net8.0"
    protos = [item.attrib for item in project.iter("Protobuf")]
    assert protos == [
        {
            "Include": "../../proto/transcribe/v1/transcribe.proto",
            "ProtoRoot": "../../proto",
            "GrpcServices": "Client",
        }
    ]
    assert (
        DOTNET_DIR / protos[0]["Include"]
    ).resolve() == REPO / "proto" / "transcribe" / "v1" / "transcribe.proto"
    packages = {
        item.attrib["Include"]: item.attrib.get("Version", "") for item in project.iter("PackageReference")
    }
    assert set(packages) == {"Google.Protobuf", "Grpc.Net.Client", "Grpc.Tools"}
    for name, version in packages.items():
        assert version and all(part.isdigit() for part in version.split(".")), (
            f"{name} is not pinned: {version!r}"
        )
    assert not list(DOTNET_DIR.rglob("*Grpc.cs")), "generated C# is built, not committed"


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
