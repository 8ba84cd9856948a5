"""End-to-end tests of the Python client against a real gateway with the embedded engine.

The sample program and the library run in child processes (`python -m transcribe_client`,
`clients/python/tests/library_probe.py`) with `PYTHONPATH=clients/python`: the client's
generated code cannot be imported next to the gateway's (both define `transcribe.v1` in
protobuf's default pool).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.clients.conftest import REPO, Clip, EchoServer, InterruptClient, RunClient, StallingServer

#: They run the real gateway, which starts the embedded engine.
pytestmark = pytest.mark.engine

CLIENT_DIR = REPO / "clients" / "python"
PROBE = CLIENT_DIR / "tests" / "library_probe.py"
ENV = {"PYTHONPATH": str(CLIENT_DIR)}
MIN_RECALL = 0.8


@pytest.fixture
def client(venv_python: str, live_gateway: str) -> list[str]:
    """The sample program's command line, pointed at the live gateway."""
    return [venv_python, "-m", "transcribe_client", "--addr", live_gateway]


@pytest.fixture
def program(venv_python: str) -> list[str]:
    """The sample program's command line, without an address."""
    return [venv_python, "-m", "transcribe_client"]


def probe(run_client: RunClient, venv_python: str, scenario: str, addr: str, clip: Clip) -> Any:
    run = run_client([venv_python, str(PROBE), scenario, addr, str(clip.path)], env=ENV, cwd=CLIENT_DIR)
    assert run.returncode == 0, run.describe()
    return json.loads(run.stdout)


def test_file_prints_final_transcripts(client: list[str], run_client: RunClient, corpus_clip: Clip) -> None:
    """A WAV file sent with --fast comes back as final transcript lines close to the reference."""
    run = run_client([*client, "--file", str(corpus_clip.path), "--fast"], env=ENV)
    assert run.returncode == 0, run.describe()
    assert run.lines, run.describe()
    assert not any(line.startswith("~ ") for line in run.lines), run.describe()
    assert corpus_clip.recall(run.stdout) >= MIN_RECALL, run.describe()


def test_json_prints_every_response_as_proto3_json(
    client: list[str], run_client: RunClient, corpus_clip: Clip
) -> None:
    """--json prints one lowerCamelCase JSON object per response, session_started to summary."""
    run = run_client([*client, "--file", str(corpus_clip.path), "--fast", "--json"], env=ENV)
    assert run.returncode == 0, run.describe()
    objects = [json.loads(line) for line in run.lines]
    assert list(objects[0]) == ["sessionStarted"], run.describe()
    assert list(objects[-1]) == ["summary"], run.describe()
    config = objects[0]["sessionStarted"]["config"]
    assert config["encoding"] == "AUDIO_ENCODING_LINEAR16"
    assert config["sampleRate"] == 16000
    results = [o["result"] for o in objects if "result" in o]
    assert results and all(r.get("isFinal") for r in results), run.describe()
    assert objects[-1]["summary"]["audioReceivedSeconds"] == pytest.approx(corpus_clip.duration_s, abs=0.05)
    assert not any("_" in key for key in _keys(objects)), run.describe()
    text = " ".join(r["alternatives"][0].get("transcript", "") for r in results if r.get("alternatives"))
    assert corpus_clip.recall(text) >= MIN_RECALL, run.describe()


def test_rejected_config_exits_1_with_the_status_name(
    client: list[str], run_client: RunClient, corpus_clip: Clip
) -> None:
    """A sample rate the gateway rejects ends with exit 1 and `error: INVALID_ARGUMENT: ...`."""
    run = run_client(
        [*client, "--file", str(corpus_clip.path), "--fast",
         "--encoding", "linear16", "--sample-rate", "500000"],
        env=ENV,
    )  # fmt: skip
    assert run.returncode == 1, run.describe()
    assert run.error_line.startswith("error: INVALID_ARGUMENT: "), run.describe()
    assert run.stdout == "", run.describe()


def test_unreachable_gateway_exits_1_unavailable(
    venv_python: str, run_client: RunClient, corpus_clip: Clip
) -> None:
    """A gateway nobody listens for gives `error: UNAVAILABLE: ...` and exit 1."""
    run = run_client(
        [venv_python, "-m", "transcribe_client", "--addr", "127.0.0.1:1",
         "--file", str(corpus_clip.path), "--fast"],
        env=ENV,
    )  # fmt: skip
    assert run.returncode == 1, run.describe()
    assert run.error_line.startswith("error: UNAVAILABLE: "), run.describe()


@pytest.mark.slow
def test_url_streams_an_http_source_as_it_arrives(
    client: list[str], run_client: RunClient, corpus_clip: Clip, progressive_http_server: Any
) -> None:
    """--url relays a progressive HTTP stream (containerised WAV) and prints its transcript."""
    run = run_client([*client, "--url", progressive_http_server.url], env=ENV)
    assert run.returncode == 0, run.describe()
    assert corpus_clip.recall(run.stdout) >= MIN_RECALL, run.describe()


@pytest.mark.slow
def test_interrupt_ends_the_audio_and_prints_what_is_left(
    client: list[str], interrupt_client: InterruptClient, corpus_clip: Clip
) -> None:
    """Ctrl+C during real-time streaming half-closes: the results so far print, exit 0."""
    run = interrupt_client([*client, "--file", str(corpus_clip.path), "--interim"], after_s=[4.0], env=ENV)
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
        env=ENV,
    )
    assert run.returncode == 130, run.describe()
    assert run.error_line.startswith("error: CANCELLED: "), run.describe()
    assert stalling_server.half_closes == half_closes + 1, run.describe()
    assert _eventually(lambda: stalling_server.cancels == cancels + 1), run.describe()


def test_async_helper(run_client: RunClient, venv_python: str, live_gateway: str, corpus_clip: Clip) -> None:
    """`transcribe` yields session_started first, the results, then summary."""
    report = probe(run_client, venv_python, "async_transcribe", live_gateway, corpus_clip)
    assert report["kinds"][0] == "session_started"
    assert report["kinds"][-1] == "summary"
    assert "result" in report["kinds"]
    assert corpus_clip.recall(report["transcript"]) >= MIN_RECALL, report
    assert json.loads(report["json_first"])["sessionStarted"]["config"]["sampleRate"] == 16000


def test_sync_helper(run_client: RunClient, venv_python: str, live_gateway: str, corpus_clip: Clip) -> None:
    """`transcribe_sync` yields the same sequence with blocking gRPC."""
    report = probe(run_client, venv_python, "sync_transcribe", live_gateway, corpus_clip)
    assert report["kinds"][0] == "session_started"
    assert report["kinds"][-1] == "summary"
    assert corpus_clip.recall(report["transcript"]) >= MIN_RECALL, report


@pytest.mark.parametrize("scenario", ["async_error", "sync_error"])
def test_helpers_raise_transcribe_error(
    run_client: RunClient, venv_python: str, live_gateway: str, corpus_clip: Clip, scenario: str
) -> None:
    """A rejected config raises TranscribeError carrying INVALID_ARGUMENT."""
    report = probe(run_client, venv_python, scenario, live_gateway, corpus_clip)
    assert report["status"] == "INVALID_ARGUMENT", report
    assert "sample_rate" in report["details"], report


def test_audio_failure_half_closes_then_raises(
    run_client: RunClient, venv_python: str, live_gateway: str, corpus_clip: Clip
) -> None:
    """An exception from the audio source ends the stream cleanly and is raised after summary."""
    report = probe(run_client, venv_python, "audio_failure", live_gateway, corpus_clip)
    assert report["raised"] == "microphone unplugged", report
    assert report["kinds"][0] == "session_started"
    assert report["kinds"][-1] == "summary"


def test_pace_releases_audio_at_real_time(run_client: RunClient, venv_python: str, corpus_clip: Clip) -> None:
    """`pace` spreads one second of audio over about one second."""
    report = probe(run_client, venv_python, "pacing", "unused", corpus_clip)
    assert report["bytes"] == 32000
    assert 0.8 <= report["elapsed_s"] < 3.0, report


def test_token_is_sent_as_bearer_metadata(
    program: list[str], run_client: RunClient, corpus_clip: Clip, metadata_echo_server: EchoServer
) -> None:
    """--token sends `authorization: Bearer TOKEN`; the stand-in's UNAUTHENTICATED is reported."""
    run = run_client(
        [*program, "--addr", metadata_echo_server.addr, "--file", str(corpus_clip.path),
         "--fast", "--token", "s3cret"],
        env=ENV,
    )  # fmt: skip
    assert run.returncode == 1, run.describe()
    assert run.error_line.startswith("error: UNAUTHENTICATED: authorization=Bearer s3cret"), run.describe()


def test_tls_trusts_the_ca_file(
    program: list[str], run_client: RunClient, corpus_clip: Clip, metadata_echo_server: EchoServer
) -> None:
    """--tls --ca-file reaches a server with that certificate; without the CA it is refused."""
    args = [*program, "--addr", metadata_echo_server.tls_addr, "--file", str(corpus_clip.path),
            "--fast", "--tls", "--token", "t"]  # fmt: skip
    trusted = run_client([*args, "--ca-file", str(metadata_echo_server.ca_file)], env=ENV)
    assert trusted.returncode == 1, trusted.describe()
    assert trusted.error_line.startswith("error: UNAUTHENTICATED: authorization=Bearer t"), trusted.describe()
    untrusted = run_client(args, env=ENV)
    assert untrusted.returncode == 1, untrusted.describe()
    assert untrusted.error_line.startswith("error: UNAVAILABLE: "), untrusted.describe()


def _keys(value: Any) -> list[str]:
    """Every object key in a JSON value, except the keys of proto maps (ids chosen by data)."""
    if isinstance(value, list):
        return [k for item in value for k in _keys(item)]
    if not isinstance(value, dict):
        return []
    keys: list[str] = []
    for key, item in value.items():
        keys.append(key)
        if key not in ("modelInfo", "extra", "upstreamParams") or "name" in item:
            keys.extend(_keys(item))
    return keys


def _eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Polls `condition` (a stand-in's counter, updated on its own thread) until true or timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
