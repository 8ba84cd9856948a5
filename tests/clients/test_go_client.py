"""The Go client: its own unit tests, its generated code, and the sample program end to end.

The program is built from the checkout (`go build` into a temporary directory) and run as a
subprocess against a real gateway with the embedded engine. Go modules come from the module
proxy the first time (about a minute on two cores); later runs use Go's caches.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.clients import sample_checks as checks
from tests.clients.conftest import REPO, Clip, InterruptClient, ProgressiveServer, RunClient, StallingServer

#: They run the real gateway, which starts the embedded engine.
pytestmark = pytest.mark.engine

GO_DIR = REPO / "clients" / "go"
BUILD_TIMEOUT_S = 900.0


@pytest.fixture(scope="session")
def go() -> str:
    """The go command; on CI a missing toolchain fails, elsewhere it skips."""
    found = shutil.which("go") or next((str(p) for p in [Path("/usr/local/go/bin/go")] if p.exists()), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("no Go toolchain on PATH: CI must build the Go client")
        pytest.skip("no Go toolchain on this machine: the Go client was not built")
    return found


@pytest.fixture(scope="session")
def go_client(go: str, tmp_path_factory: pytest.TempPathFactory, run_client: RunClient) -> list[str]:
    """The sample program, built from the checkout into a temporary directory."""
    binary = tmp_path_factory.mktemp("go") / "transcribe"
    run = run_client(
        [go, "build", "-o", str(binary), "./cmd/transcribe"], cwd=GO_DIR, timeout=BUILD_TIMEOUT_S
    )
    assert run.returncode == 0, run.describe()
    return [str(binary)]


def test_go_unit_tests_pass(go: str, run_client: RunClient) -> None:
    """`go test ./...` passes: flags, WAV parsing, JSON output, status names, a fake gateway."""
    run = run_client([go, "test", "./..."], cwd=GO_DIR, timeout=BUILD_TIMEOUT_S)
    assert run.returncode == 0, run.describe()


def test_go_sources_are_gofmt_and_vet_clean(go: str, run_client: RunClient) -> None:
    """gofmt has nothing to change and go vet finds nothing."""
    gofmt = str(Path(go).with_name("gofmt"))
    run = run_client([gofmt if Path(gofmt).exists() else "gofmt", "-l", "."], cwd=GO_DIR)
    assert run.returncode == 0 and run.stdout == "", run.describe()
    run = run_client([go, "vet", "./..."], cwd=GO_DIR, timeout=BUILD_TIMEOUT_S)
    assert run.returncode == 0, run.describe()


def test_go_stubs_match_the_proto(go: str, venv_python: str, run_client: RunClient, tmp_path: Path) -> None:
    """The committed gen/ is exactly what generate.sh makes from the proto today."""
    run = run_client(
        ["bash", str(GO_DIR / "generate.sh")],
        env={"OUT": str(tmp_path), "GO": go, "PYTHON": venv_python},
        timeout=BUILD_TIMEOUT_S,
    )
    assert run.returncode == 0, run.describe()
    committed = sorted(p.relative_to(GO_DIR / "gen") for p in (GO_DIR / "gen").rglob("*.go"))
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.go"))
    assert generated == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (GO_DIR / "gen" / name).read_bytes(), (
            f"clients/go/gen/{name} is stale: run clients/go/generate.sh"
        )


def test_file_prints_final_transcripts(
    go_client: list[str], live_gateway: str, corpus_clip: Clip, run_client: RunClient
) -> None:
    """A WAV file sent with --fast prints its final transcripts close to the reference."""
    checks.check_file(go_client, live_gateway, corpus_clip, run_client)


def test_json_prints_every_response_as_python_does(
    go_client: list[str], live_gateway: str, corpus_clip: Clip, run_client: RunClient, venv_python: str
) -> None:
    """--json prints one lowerCamelCase proto3 JSON object per response and line, like Python's."""
    checks.check_json(go_client, live_gateway, corpus_clip, run_client, venv_python)


def test_rejected_config_exits_1_with_the_status_name(
    go_client: list[str], live_gateway: str, corpus_clip: Clip, run_client: RunClient
) -> None:
    """A sample rate the gateway rejects exits 1 with `error: INVALID_ARGUMENT: ...`."""
    checks.check_rejected_config(go_client, live_gateway, corpus_clip, run_client)


def test_unreachable_gateway_exits_1_unavailable(
    go_client: list[str], corpus_clip: Clip, run_client: RunClient
) -> None:
    """A gateway nobody listens for exits 1 with `error: UNAVAILABLE: ...`."""
    checks.check_unreachable(go_client, corpus_clip, run_client)


def test_unreadable_file_exits_1_invalid_argument(
    go_client: list[str], live_gateway: str, corpus_clip: Clip, run_client: RunClient
) -> None:
    """A missing file exits 1 with `error: INVALID_ARGUMENT: cannot read PATH: ...`."""
    checks.check_unreadable_file(go_client, live_gateway, corpus_clip, run_client)


def test_bad_command_line_exits_2(go_client: list[str], run_client: RunClient) -> None:
    """No --file nor --url exits 2; --help prints the flags and exits 0."""
    checks.check_usage(go_client, run_client)


@pytest.mark.slow
def test_url_relays_a_progressive_http_stream(
    go_client: list[str],
    live_gateway: str,
    corpus_clip: Clip,
    progressive_http_server: ProgressiveServer,
    run_client: RunClient,
) -> None:
    """--url relays an HTTP stream as it arrives; --interim adds `~ ` lines."""
    checks.check_url(go_client, live_gateway, corpus_clip, progressive_http_server, run_client)


@pytest.mark.slow
def test_interrupt_ends_the_audio_cleanly(
    go_client: list[str], live_gateway: str, corpus_clip: Clip, interrupt_client: InterruptClient
) -> None:
    """Ctrl+C half-closes: the remaining results and the summary print, exit 0."""
    checks.check_interrupt(go_client, live_gateway, corpus_clip, interrupt_client)


@pytest.mark.slow
def test_second_interrupt_cancels_with_130(
    go_client: list[str],
    stalling_server: StallingServer,
    corpus_clip: Clip,
    interrupt_client: InterruptClient,
) -> None:
    """A second Ctrl+C cancels the call: exit 130, `error: CANCELLED: interrupted`.

    Against a server that never ends the call after the half-close, so that results are still
    pending when the second Ctrl+C comes, however fast a real upstream would have been.
    """
    checks.check_second_interrupt(go_client, stalling_server.addr, corpus_clip, interrupt_client)
