"""End-to-end checks of a compiled sample client (Go, .NET), run as a subprocess.

Every language's sample program has the same flags and output, so these checks are written once
and each language's test module calls them with its own command line. They use the fixtures of
`tests/clients/conftest.py`: a live gateway with the embedded engine, the corpus clip, the
progressive HTTP server and the subprocess runners.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.clients.conftest import (
    CLIENT_TIMEOUT_S,
    REPO,
    ClientRun,
    Clip,
    InterruptClient,
    ProgressiveServer,
    RunClient,
    words,
)
from tests.conftest import TIMING
from tests.support.replicas import Fleet

#: The largest word error rate accepted against the corpus reference. Whisper tiny.en gets the
#: clip nearly right; this leaves room for a word or two, never for a wrong or missing transcript.
MAX_WER = 0.25
INTERIM_PREFIX = "~ "


def word_error_rate(reference: Sequence[str], hypothesis: Sequence[str]) -> float:
    """Word-level edit distance (substitutions, insertions, deletions) over the reference length."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(
                min(
                    previous[j] + 1,
                    current[j - 1] + 1,
                    previous[j - 1] + (ref_word != hyp_word),
                )
            )
        previous = current
    return previous[-1] / max(len(reference), 1)


def assert_transcribes(clip: Clip, transcript: str, run: ClientRun) -> None:
    """The transcript's words (lower case, no punctuation) are within MAX_WER of the reference."""
    wer = word_error_rate(clip.reference_words, words(transcript))
    assert wer <= MAX_WER, f"WER {wer:.2f} against {clip.reference!r}\n{run.describe()}"


def finals(run: ClientRun) -> list[str]:
    """The final transcript lines of a text-mode run."""
    return [line for line in run.lines if not line.startswith(INTERIM_PREFIX)]


def json_lines(run: ClientRun) -> list[dict[str, Any]]:
    """Every stdout line parsed as one JSON object."""
    objects = []
    for line in run.lines:
        value = json.loads(line)
        assert isinstance(value, dict), run.describe()
        objects.append(value)
    return objects


def check_file(client: Sequence[str], addr: str, clip: Clip, run_client: RunClient) -> None:
    """A WAV file sent with --fast prints its final transcripts, one per line, and exits 0."""
    run = run_client([*client, "--addr", addr, "--file", str(clip.path), "--fast"])
    assert run.returncode == 0, run.describe()
    assert run.stderr == "", run.describe()
    assert run.lines and finals(run) == run.lines, run.describe()
    assert_transcribes(clip, run.stdout, run)


def check_json(client: Sequence[str], addr: str, clip: Clip, run_client: RunClient, venv_python: str) -> None:
    """--json prints one canonical proto3 JSON object per response and line, as the Python
    client does (same config, same shapes, same numbers)."""
    run = run_client([*client, "--addr", addr, "--file", str(clip.path), "--fast", "--json"])
    assert run.returncode == 0, run.describe()
    objects = json_lines(run)
    assert list(objects[0]) == ["sessionStarted"], run.describe()
    assert list(objects[-1]) == ["summary"], run.describe()
    assert all(len(o) == 1 for o in objects), run.describe()
    config = objects[0]["sessionStarted"]["config"]
    assert config == {"encoding": "AUDIO_ENCODING_LINEAR16", "sampleRate": 16000}, run.describe()
    results = [o["result"] for o in objects if "result" in o]
    assert results and all(r.get("isFinal") is True for r in results), run.describe()
    received = objects[-1]["summary"]["audioReceivedSeconds"]
    assert abs(received - clip.duration_s) < 0.05, run.describe()
    text = " ".join(r["alternatives"][0].get("transcript", "") for r in results if r.get("alternatives"))
    assert_transcribes(clip, text, run)

    python = run_client(
        [
            venv_python,
            "-m",
            "transcribe_client",
            "--addr",
            addr,
            "--file",
            str(clip.path),
            "--fast",
            "--json",
        ],
        env={"PYTHONPATH": str(REPO / "clients" / "python")},
    )
    assert python.returncode == 0, python.describe()
    theirs = json_lines(python)
    assert theirs[0]["sessionStarted"]["config"] == config
    assert shape(objects[-1]) == shape(theirs[-1])
    assert received == theirs[-1]["summary"]["audioReceivedSeconds"]
    assert shape(results[0]["metadata"]) == shape(
        next(o["result"]["metadata"] for o in theirs if "result" in o)
    )


def shape(value: Any) -> Any:
    """The keys of a JSON value, recursively, without its values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


def check_rejected_config(client: Sequence[str], addr: str, clip: Clip, run_client: RunClient) -> None:
    """A sample rate the gateway rejects exits 1 with `error: INVALID_ARGUMENT: ...` on stderr."""
    run = run_client(
        [*client, "--addr", addr, "--file", str(clip.path), "--fast",
         "--encoding", "linear16", "--sample-rate", "500000"]
    )  # fmt: skip
    assert run.returncode == 1, run.describe()
    assert run.stderr.startswith("error: INVALID_ARGUMENT: "), run.describe()
    assert run.stderr.count("\n") == 1, run.describe()
    assert run.stdout == "", run.describe()


def check_unreachable(client: Sequence[str], clip: Clip, run_client: RunClient) -> None:
    """A gateway nobody listens for exits 1 with `error: UNAVAILABLE: ...`."""
    run = run_client([*client, "--addr", "127.0.0.1:1", "--file", str(clip.path), "--fast"])
    assert run.returncode == 1, run.describe()
    assert run.stderr.startswith("error: UNAVAILABLE: "), run.describe()


def check_unreadable_file(client: Sequence[str], addr: str, clip: Clip, run_client: RunClient) -> None:
    """A file that cannot be read exits 1 with `error: INVALID_ARGUMENT: cannot read ...`."""
    missing = clip.path.with_name("no-such-clip.wav")
    run = run_client([*client, "--addr", addr, "--file", str(missing)])
    assert run.returncode == 1, run.describe()
    assert run.stderr.startswith(f"error: INVALID_ARGUMENT: cannot read {missing}: "), run.describe()


def check_usage(client: Sequence[str], run_client: RunClient) -> None:
    """A command line without --file or --url exits 2; --help exits 0."""
    run = run_client([*client, "--fast"])
    assert run.returncode == 2, run.describe()
    assert "--file" in run.stderr, run.describe()
    run = run_client([*client, "--help"])
    assert run.returncode == 0, run.describe()
    assert "--chunk-ms" in run.stdout + run.stderr, run.describe()


def check_url(
    client: Sequence[str],
    addr: str,
    clip: Clip,
    server: ProgressiveServer,
    run_client: RunClient,
) -> None:
    """--url relays a progressive HTTP stream (a WAV container at real-time pace) with interims."""
    run = run_client([*client, "--addr", addr, "--url", server.url, "--interim"])
    assert run.returncode == 0, run.describe()
    assert any(line.startswith(INTERIM_PREFIX) for line in run.lines), run.describe()
    assert_transcribes(clip, " ".join(finals(run)), run)


def check_interrupt(client: Sequence[str], addr: str, clip: Clip, interrupt: InterruptClient) -> None:
    """Ctrl+C during real-time streaming ends the audio: the rest of the results and the summary
    still come, and the program exits 0."""
    run = interrupt([*client, "--addr", addr, "--file", str(clip.path), "--json"], after_s=[4.0])
    assert run.returncode == 0, run.describe()
    objects = json_lines(run)
    assert list(objects[0]) == ["sessionStarted"], run.describe()
    assert list(objects[-1]) == ["summary"], run.describe()
    received = objects[-1]["summary"]["audioReceivedSeconds"]
    assert 2.0 < received < clip.duration_s - 2.0, run.describe()  # the audio was cut


def check_second_interrupt(client: Sequence[str], addr: str, clip: Clip, interrupt: InterruptClient) -> None:
    """A second Ctrl+C while the last results are pending cancels the call: exit 130."""
    run = interrupt([*client, "--addr", addr, "--file", str(clip.path)], after_s=[3.0, 0.2])
    assert run.returncode == 130, run.describe()
    assert run.stderr == "error: CANCELLED: interrupted\n", run.describe()


def run_disturbed(
    command: Sequence[str],
    fleet: Fleet,
    trigger: Callable[[list[str]], bool],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ClientRun:
    """Runs a client against `fleet`; once its stdout lines so far satisfy `trigger`, SIGTERMs
    the replica serving its stream (once), and waits for the client to end."""
    with subprocess.Popen(
        list(command),
        cwd=cwd or REPO,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line)
            if not fleet.terminated and trigger([x.strip() for x in lines if x.strip()]):
                fleet.terminate_serving()
        try:
            process.wait(timeout=CLIENT_TIMEOUT_S * TIMING)
        except subprocess.TimeoutExpired:
            process.kill()
        stderr = process.stderr.read()
    return ClientRun(command, process.returncode, "".join(lines), stderr)


def check_rolling_restart_counter(client: Sequence[str], fleet: Fleet, wav: Path, blocks: int) -> None:
    """Counter audio at real time through nginx; the serving replica is SIGTERMed after 40
    words: the transcript is w0 ... w<blocks-1> exactly (0 lost, 0 repeated), exit 0, one
    resume reported on stderr."""
    run = run_disturbed(
        [*client, "--addr", fleet.address, "--file", str(wav)],
        fleet,
        lambda lines: len(words(" ".join(lines))) >= 40,
    )
    assert run.returncode == 0, run.describe()
    assert len(fleet.terminated) == 1, run.describe()
    assert words(run.stdout) == [f"w{n}" for n in range(blocks)], run.describe()
    resumes = [line for line in run.stderr.splitlines() if line.startswith("resuming: UNAVAILABLE: ")]
    assert len(resumes) == 1, run.describe()


def check_rolling_restart_speech(client: Sequence[str], fleet: Fleet, clip: Clip) -> None:
    """Real speech (three repetitions) through nginx; the serving replica is SIGTERMed in the
    pause after the first repetition: each repetition is transcribed once (its first and last
    words appear three times), and the JSON times only move forward."""
    run = run_disturbed(
        [*client, "--addr", fleet.address, "--file", str(clip.path), "--json"],
        fleet,
        lambda lines: '"connection' in lines[-1] if lines else False,
    )
    assert run.returncode == 0, run.describe()
    assert len(fleet.terminated) == 1, run.describe()
    objects = json_lines(run)
    assert [next(iter(o)) for o in objects].count("sessionStarted") == 1, run.describe()
    assert list(objects[-1]) == ["summary"], run.describe()
    results = [o["result"] for o in objects if "result" in o and o["result"].get("isFinal")]
    text = " ".join(r["alternatives"][0].get("transcript", "") for r in results if r.get("alternatives"))
    said = words(text)
    for boundary in ("hello", "welcome", "gateway", "connection"):
        assert said.count(boundary) == 3, run.describe()
    starts = [r.get("startSeconds", 0) for r in results]
    assert starts == sorted(starts), run.describe()
