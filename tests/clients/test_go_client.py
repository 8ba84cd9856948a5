"""The Go client: its package's unit tests (the shared vectors), vet, its generated code, and
the sample program end to end: against a live gateway, from a real-time pipe, across a rolling
restart of two replicas behind nginx, and the README's program in a new module that uses the
package through a `replace`.

The program is built from the checkout (`go build` into a temporary directory) and run as a
subprocess. Go modules come from the module proxy the first time (about a minute on two
cores); later runs use Go's caches.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import wave
from pathlib import Path

import pytest

from tests.clients import sample_checks as checks
from tests.clients.conftest import (
    CLIENT_TIMEOUT_S,
    REPO,
    Clip,
    EchoServer,
    InterruptClient,
    ProgressiveServer,
    RunClient,
    StallingServer,
    counter_wav,
)
from tests.conftest import TIMING
from tests.support.replicas import Fleet

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
    """`go test ./...` passes: the package against the shared vectors (send plans, the recorded
    stream's text and JSON output, error statuses, resume and commit positions, the buffer)."""
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


@pytest.mark.slow
def test_stdin_streams_audio_as_a_pipe_delivers_it(
    go_client: list[str], live_gateway: str, corpus_clip: Clip
) -> None:
    """`--file -` with raw linear16 written to the pipe at real time: a transcript prints before
    the writer is done (nothing waits for the whole input), and all of it is transcribed."""
    with wave.open(str(corpus_clip.path), "rb") as wav:
        pcm, rate = wav.readframes(wav.getnframes()), wav.getframerate()
    command = [
        *go_client,
        "--addr",
        live_gateway,
        "--file",
        "-",
        "--encoding",
        "linear16",
        "--sample-rate",
        str(rate),
    ]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        finished = threading.Event()

        def feed() -> None:
            assert process.stdin is not None
            step, start = rate * 2 // 10, time.monotonic()
            for i, offset in enumerate(range(0, len(pcm), step)):
                time.sleep(max(start + i * 0.1 - time.monotonic(), 0))  # the live source's clock
                process.stdin.write(pcm[offset : offset + step])
                process.stdin.flush()
            process.stdin.close()
            finished.set()

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        lines, early = [], []
        for raw in process.stdout:
            early.append(not finished.is_set())
            lines.append(raw.decode().strip())
        process.wait(timeout=CLIENT_TIMEOUT_S * TIMING)
        writer.join(timeout=5)
        stderr = process.stderr.read().decode() if process.stderr else ""
    assert process.returncode == 0, stderr
    assert early and early[0], lines
    assert corpus_clip.recall(" ".join(lines)) >= 0.8, lines


def test_token_comes_from_the_environment_too(
    go_client: list[str], corpus_clip: Clip, run_client: RunClient, metadata_echo_server: EchoServer
) -> None:
    """$TRANSCRIBE_TOKEN is sent as `authorization: Bearer TOKEN` when --token is not given."""
    args = [*go_client, "--addr", metadata_echo_server.addr, "--file", str(corpus_clip.path), "--fast"]
    run = run_client(args, env={"TRANSCRIBE_TOKEN": "from-env"})
    assert run.error_line.startswith("error: UNAUTHENTICATED: authorization=Bearer from-env"), run.describe()
    run = run_client([*args, "--token", "flag"], env={"TRANSCRIBE_TOKEN": "from-env"})
    assert run.error_line.startswith("error: UNAUTHENTICATED: authorization=Bearer flag"), run.describe()


@pytest.mark.slow
def test_a_rolling_restart_loses_and_repeats_no_word(
    go_client: list[str], standin_replicas: Fleet, tmp_path: Path
) -> None:
    """Counter audio through two replicas behind nginx, the serving one SIGTERMed mid-stream:
    the transcript is exactly w0 ... w149, as an undisturbed run's."""
    wav = counter_wav(tmp_path / "counter.wav", 150)
    checks.check_rolling_restart_counter(go_client, standin_replicas, wav, 150)


@pytest.mark.slow
def test_a_rolling_restart_of_real_speech_is_transcribed_once(
    go_client: list[str], gateway_replicas: Fleet, long_speech_clip: Clip
) -> None:
    """Real speech through two replicas on the embedded engine, the serving one SIGTERMed in a
    pause: every repetition once, times monotonic."""
    checks.check_rolling_restart_speech(go_client, gateway_replicas, long_speech_clip)


def _readme_program() -> str:
    text = (GO_DIR / "README.md").read_text()
    found = re.search(r"```go\n(.*?)```", text, re.DOTALL)
    assert found, "the README has no Go program"
    return found.group(1)


@pytest.mark.slow
def test_a_new_module_using_the_package_by_replace_prints_the_transcript(
    go: str, tmp_path: Path, live_gateway: str, corpus_clip: Clip
) -> None:
    """A new module that requires the package with the README's `replace` line, running the
    README's program, prints the transcript from a live gateway."""
    project = tmp_path / "hello"
    project.mkdir()
    (project / "main.go").write_text(_readme_program())
    (project / "go.mod").write_text(
        "module example.com/hello\n\ngo 1.26.0\n\n"
        "require github.com/transcribe-gateway/clients/go v0.0.0\n\n"
        f"replace github.com/transcribe-gateway/clients/go => {GO_DIR}\n"
    )

    def go_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [go, *args],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S * TIMING,
            check=False,
        )

    tidy = go_run("mod", "tidy")
    assert tidy.returncode == 0, tidy.stderr
    done = go_run("run", ".", live_gateway, str(corpus_clip.path))
    assert done.returncode == 0, done.stderr
    assert corpus_clip.recall(done.stdout) >= 0.8, done.stdout + done.stderr
    body = _readme_program().split("func main() {", 1)[1]
    assert len([line for line in body.strip().splitlines() if line.strip()]) <= 11
