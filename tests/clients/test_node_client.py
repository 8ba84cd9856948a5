"""End-to-end tests of the Node client against a real gateway with the embedded engine.

The client is prepared from the checkout (`npm ci` in clients/node, skipped when node_modules
is already up to date) and `node transcribe.js` runs as a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.clients.conftest import REPO, Clip, EchoServer, InterruptClient, RunClient, StallingServer

#: They run the real gateway, which starts the embedded engine.
pytestmark = pytest.mark.engine

NODE_DIR = REPO / "clients" / "node"
MIN_RECALL = 0.8
NPM_TIMEOUT_S = 600.0


@pytest.fixture(scope="session")
def node_client(run_client: RunClient) -> list[str]:
    """`node clients/node/transcribe.js`, with its dependencies installed by `npm ci` if needed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI"):
            pytest.fail("no node/npm on PATH: CI must test the Node client")
        pytest.skip("node/npm are not installed")
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        run = run_client([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, timeout=NPM_TIMEOUT_S)
        assert run.returncode == 0, run.describe()
    return [node, str(NODE_DIR / "transcribe.js")]


@pytest.fixture
def client(node_client: list[str], live_gateway: str) -> list[str]:
    """The sample program's command line, pointed at the live gateway."""
    return [*node_client, "--addr", live_gateway]


@pytest.fixture
def program(node_client: list[str]) -> list[str]:
    """The sample program's command line, without an address."""
    return node_client


def test_unit_tests_pass(node_client: list[str], run_client: RunClient) -> None:
    """The Node client's own unit tests (`node --test`) pass."""
    run = run_client([node_client[0], "--test", "test/"], cwd=NODE_DIR)
    assert run.returncode == 0, run.describe()


def test_generated_types_are_in_sync(
    node_client: list[str], run_client: RunClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The committed TypeScript types are what generate.sh makes from the proto now."""
    out = tmp_path_factory.mktemp("types")
    tool = NODE_DIR / "node_modules" / ".bin" / "proto-loader-gen-types"
    run = run_client(
        [str(tool), "--keepCase", "--longs=String", "--enums=String", "--defaults", "--oneofs",
         "--grpcLib=@grpc/grpc-js", f"--outDir={out}", "../../proto/transcribe/v1/transcribe.proto"],
        cwd=NODE_DIR,
    )  # fmt: skip
    assert run.returncode == 0, run.describe()
    committed = NODE_DIR / "types"
    fresh = sorted(p.relative_to(out) for p in out.rglob("*.ts"))
    assert fresh == sorted(p.relative_to(committed) for p in committed.rglob("*.ts"))
    stale = [p for p in fresh if (out / p).read_bytes() != (committed / p).read_bytes()]
    assert not stale, f"out of date: {stale}; run clients/node/generate.sh"


def test_file_prints_final_transcripts(client: list[str], run_client: RunClient, corpus_clip: Clip) -> None:
    """A WAV file sent with --fast comes back as final transcript lines close to the reference."""
    run = run_client([*client, "--file", str(corpus_clip.path), "--fast"])
    assert run.returncode == 0, run.describe()
    assert run.lines, run.describe()
    assert not any(line.startswith("~ ") for line in run.lines), run.describe()
    assert corpus_clip.recall(run.stdout) >= MIN_RECALL, run.describe()


def test_json_matches_the_python_client(
    client: list[str], run_client: RunClient, corpus_clip: Clip, venv_python: str, live_gateway: str
) -> None:
    """--json prints proto3 JSON, session_started to summary, in the same shape as Python's."""
    node = run_client([*client, "--file", str(corpus_clip.path), "--fast", "--json"])
    assert node.returncode == 0, node.describe()
    python = run_client(
        [venv_python, "-m", "transcribe_client", "--addr", live_gateway,
         "--file", str(corpus_clip.path), "--fast", "--json"],
        env={"PYTHONPATH": str(REPO / "clients" / "python")},
    )  # fmt: skip
    assert python.returncode == 0, python.describe()
    ours = [json.loads(line) for line in node.lines]
    theirs = [json.loads(line) for line in python.lines]
    assert list(ours[0]) == ["sessionStarted"] and list(ours[-1]) == ["summary"], node.describe()
    assert ours[0]["sessionStarted"]["config"] == theirs[0]["sessionStarted"]["config"]
    assert ours[0]["sessionStarted"]["config"]["sampleRate"] == 16000
    assert _shape(ours[-1]) == _shape(theirs[-1])
    assert ours[-1]["summary"]["audioReceivedSeconds"] == theirs[-1]["summary"]["audioReceivedSeconds"]
    results = [o["result"] for o in ours if "result" in o]
    assert results and all(r.get("isFinal") for r in results), node.describe()
    assert _shape(results[0]["metadata"]) == _shape(
        next(o["result"]["metadata"] for o in theirs if "result" in o)
    )
    text = " ".join(r["alternatives"][0].get("transcript", "") for r in results if r.get("alternatives"))
    assert corpus_clip.recall(text) >= MIN_RECALL, node.describe()


def test_rejected_config_exits_1_with_the_status_name(
    client: list[str], run_client: RunClient, corpus_clip: Clip
) -> None:
    """A sample rate the gateway rejects ends with exit 1 and `error: INVALID_ARGUMENT: ...`."""
    run = run_client(
        [*client, "--file", str(corpus_clip.path), "--fast",
         "--encoding", "linear16", "--sample-rate", "500000"]
    )  # fmt: skip
    assert run.returncode == 1, run.describe()
    assert run.error_line.startswith("error: INVALID_ARGUMENT: "), run.describe()
    assert run.stdout == "", run.describe()


def test_bad_command_line_exits_2(node_client: list[str], run_client: RunClient) -> None:
    """Both --file and --url (or neither) is a usage error: exit 2."""
    run = run_client([*node_client, "--file", "a.wav", "--url", "http://127.0.0.1:9/"])
    assert run.returncode == 2, run.describe()


@pytest.mark.slow
def test_url_streams_an_http_source_as_it_arrives(
    client: list[str], run_client: RunClient, corpus_clip: Clip, progressive_http_server: Any
) -> None:
    """--url relays a progressive HTTP stream (containerised WAV) and prints its transcript."""
    run = run_client([*client, "--url", progressive_http_server.url])
    assert run.returncode == 0, run.describe()
    assert corpus_clip.recall(run.stdout) >= MIN_RECALL, run.describe()


@pytest.mark.slow
def test_interrupt_ends_the_audio_and_prints_what_is_left(
    client: list[str], interrupt_client: InterruptClient, corpus_clip: Clip
) -> None:
    """Ctrl+C during real-time streaming half-closes: the results so far print, exit 0."""
    run = interrupt_client([*client, "--file", str(corpus_clip.path), "--interim"], after_s=[4.0])
    assert run.returncode == 0, run.describe()
    finals = [line for line in run.lines if not line.startswith("~ ")]
    assert finals, run.describe()
    assert corpus_clip.recall(" ".join(finals)) < 0.9, run.describe()  # the audio was cut


def test_second_interrupt_cancels_with_130(
    program: list[str], interrupt_client: InterruptClient, corpus_clip: Clip, stalling_server: StallingServer
) -> None:
    """The first Ctrl+C half-closes; a second one, while results are pending, cancels: exit 130."""
    half_closes, cancels = stalling_server.half_closes, stalling_server.cancels
    run = interrupt_client(
        [*program, "--addr", stalling_server.addr, "--file", str(corpus_clip.path)],
        after_s=[1.0, 0.5],
    )
    assert run.returncode == 130, run.describe()
    assert run.error_line.startswith("error: CANCELLED: "), run.describe()
    assert stalling_server.half_closes == half_closes + 1, run.describe()
    assert _eventually(lambda: stalling_server.cancels == cancels + 1), run.describe()


def test_token_is_sent_as_bearer_metadata(
    program: list[str], run_client: RunClient, corpus_clip: Clip, metadata_echo_server: EchoServer
) -> None:
    """--token sends `authorization: Bearer TOKEN`; the stand-in's UNAUTHENTICATED is reported."""
    run = run_client(
        [*program, "--addr", metadata_echo_server.addr, "--file", str(corpus_clip.path),
         "--fast", "--token", "s3cret"]
    )  # fmt: skip
    assert run.returncode == 1, run.describe()
    assert run.error_line.startswith("error: UNAUTHENTICATED: authorization=Bearer s3cret"), run.describe()


def test_tls_trusts_the_ca_file(
    program: list[str], run_client: RunClient, corpus_clip: Clip, metadata_echo_server: EchoServer
) -> None:
    """--tls --ca-file reaches a server with that certificate; without the CA it is refused."""
    args = [*program, "--addr", metadata_echo_server.tls_addr, "--file", str(corpus_clip.path),
            "--fast", "--tls", "--token", "t"]  # fmt: skip
    trusted = run_client([*args, "--ca-file", str(metadata_echo_server.ca_file)])
    assert trusted.returncode == 1, trusted.describe()
    assert trusted.error_line.startswith("error: UNAUTHENTICATED: authorization=Bearer t"), trusted.describe()
    untrusted = run_client(args)
    assert untrusted.returncode == 1, untrusted.describe()
    assert untrusted.error_line.startswith("error: UNAVAILABLE: "), untrusted.describe()


def probe(run_client: RunClient, node: str, scenario: str, addr: str, clip: Clip) -> Any:
    run = run_client([node, "e2e/probe.js", scenario, addr, str(clip.path)], cwd=NODE_DIR)
    assert run.returncode == 0, run.describe()
    return json.loads(run.stdout)


def test_library_transcribe(
    node_client: list[str], run_client: RunClient, live_gateway: str, corpus_clip: Clip
) -> None:
    """`transcribe()` yields session_started first, the results, then summary."""
    report = probe(run_client, node_client[0], "transcribe", live_gateway, corpus_clip)
    assert report["kinds"][0] == "session_started"
    assert report["kinds"][-1] == "summary"
    assert corpus_clip.recall(report["transcript"]) >= MIN_RECALL, report


def test_library_raises_transcribe_error(
    node_client: list[str], run_client: RunClient, live_gateway: str, corpus_clip: Clip
) -> None:
    """A rejected config throws TranscribeError carrying INVALID_ARGUMENT."""
    report = probe(run_client, node_client[0], "error", live_gateway, corpus_clip)
    assert report["status"] == "INVALID_ARGUMENT", report
    assert "sample_rate" in report["details"], report


def test_library_audio_failure_half_closes_then_throws(
    node_client: list[str], run_client: RunClient, live_gateway: str, corpus_clip: Clip
) -> None:
    """An error thrown by the audio source ends the stream cleanly and is thrown after summary."""
    report = probe(run_client, node_client[0], "audio_failure", live_gateway, corpus_clip)
    assert report["raised"] == "microphone unplugged", report
    assert report["kinds"][0] == "session_started"
    assert report["kinds"][-1] == "summary"


def _shape(value: Any) -> Any:
    """The keys of a JSON value, recursively, without its values."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else type(value).__name__


def _eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Polls `condition` (a stand-in's counter, updated on its own thread) until true or timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
