"""End-to-end tests of the Node client against a real gateway with the embedded engine.

The client is prepared from the checkout (`npm ci` in clients/node, skipped when node_modules
is already up to date; its `prepare` step copies the proto into the package) and
`node transcribe.js` runs as a subprocess. The packed tarball is installed in an empty project
(`npm ci`, from a lock made of clients/node's own) and the README's programs run from there.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from transcribe.v1 import transcribe_pb2 as pb

from tests.clients.conftest import (
    CLIENT_TIMEOUT_S,
    REPO,
    Clip,
    EchoServer,
    InterruptClient,
    RunClient,
    StallingServer,
    serving,
    words,
)
from tests.conftest import TIMING
from tests.support.replicas import Fleet

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
    else:  # the copy of the proto inside the package, as `npm ci` makes it
        run = run_client([npm, "run", "--silent", "prepare"], cwd=NODE_DIR)
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
    out = tmp_path_factory.mktemp("types") / "types"
    run = run_client(["bash", "generate.sh", str(out)], cwd=NODE_DIR)
    assert run.returncode == 0, run.describe()
    committed = NODE_DIR / "types"
    fresh = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert fresh and fresh == sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    stale = [p for p in fresh if (out / p).read_bytes() != (committed / p).read_bytes()]
    assert not stale, f"out of date: {stale}; run clients/node/generate.sh"


def test_file_prints_final_transcripts(client: list[str], run_client: RunClient, speech_clip: Clip) -> None:
    """A WAV file sent with --fast comes back as final transcript lines close to the reference."""
    run = run_client([*client, "--file", str(speech_clip.path), "--fast"])
    assert run.returncode == 0, run.describe()
    assert run.lines, run.describe()
    assert not any(line.startswith("~ ") for line in run.lines), run.describe()
    assert speech_clip.recall(run.stdout) >= MIN_RECALL, run.describe()


def test_json_matches_the_python_client(
    client: list[str], run_client: RunClient, speech_clip: Clip, venv_python: str, live_gateway: str
) -> None:
    """--json prints proto3 JSON, session_started to summary, in the same shape as Python's."""
    node = run_client([*client, "--file", str(speech_clip.path), "--fast", "--json"])
    assert node.returncode == 0, node.describe()
    python = run_client(
        [venv_python, "-m", "transcribe_client", "--addr", live_gateway,
         "--file", str(speech_clip.path), "--fast", "--json"],
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
    assert speech_clip.recall(text) >= MIN_RECALL, node.describe()


def test_rejected_config_exits_1_with_the_status_name(
    client: list[str], run_client: RunClient, speech_clip: Clip
) -> None:
    """A sample rate the gateway rejects ends with exit 1 and `error: INVALID_ARGUMENT: ...`."""
    run = run_client(
        [*client, "--file", str(speech_clip.path), "--fast",
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
    client: list[str], run_client: RunClient, speech_clip: Clip, progressive_http_server: Any
) -> None:
    """--url relays a progressive HTTP stream (containerised WAV) and prints its transcript."""
    run = run_client([*client, "--url", progressive_http_server.url])
    assert run.returncode == 0, run.describe()
    assert speech_clip.recall(run.stdout) >= MIN_RECALL, run.describe()


@pytest.mark.slow
def test_interrupt_ends_the_audio_and_prints_what_is_left(
    client: list[str], interrupt_client: InterruptClient, speech_clip: Clip
) -> None:
    """Ctrl+C during real-time streaming half-closes: the results so far print, exit 0."""
    run = interrupt_client([*client, "--file", str(speech_clip.path), "--interim"], after_s=[4.0])
    assert run.returncode == 0, run.describe()
    finals = [line for line in run.lines if not line.startswith("~ ")]
    assert finals, run.describe()
    assert speech_clip.recall(" ".join(finals)) < 0.9, run.describe()  # the audio was cut


def test_second_interrupt_cancels_with_130(
    program: list[str], interrupt_client: InterruptClient, speech_clip: Clip, stalling_server: StallingServer
) -> None:
    """The first Ctrl+C half-closes; a second one, while results are pending, cancels: exit 130."""
    half_closes, cancels = stalling_server.half_closes, stalling_server.cancels
    run = interrupt_client(
        [*program, "--addr", stalling_server.addr, "--file", str(speech_clip.path)],
        after_s=[1.0, 0.5],
    )
    assert run.returncode == 130, run.describe()
    assert run.error_line.startswith("error: CANCELLED: "), run.describe()
    assert stalling_server.half_closes == half_closes + 1, run.describe()
    assert _eventually(lambda: stalling_server.cancels == cancels + 1), run.describe()


def test_token_is_sent_as_bearer_metadata(
    program: list[str], run_client: RunClient, speech_clip: Clip, metadata_echo_server: EchoServer
) -> None:
    """--token sends `authorization: Bearer TOKEN`; the stand-in's UNAUTHENTICATED is reported."""
    run = run_client(
        [*program, "--addr", metadata_echo_server.addr, "--file", str(speech_clip.path),
         "--fast", "--token", "s3cret"]
    )  # fmt: skip
    assert run.returncode == 1, run.describe()
    assert run.error_line.startswith("error: UNAUTHENTICATED: authorization=Bearer s3cret"), run.describe()


def test_tls_trusts_the_ca_file(
    program: list[str], run_client: RunClient, speech_clip: Clip, metadata_echo_server: EchoServer
) -> None:
    """--tls --ca-file reaches a server with that certificate; without the CA it is refused."""
    args = [*program, "--addr", metadata_echo_server.tls_addr, "--file", str(speech_clip.path),
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
    node_client: list[str], run_client: RunClient, live_gateway: str, speech_clip: Clip
) -> None:
    """`transcribe()` yields session_started first, the results, then summary."""
    report = probe(run_client, node_client[0], "transcribe", live_gateway, speech_clip)
    assert report["kinds"][0] == "sessionStarted"
    assert report["kinds"][-1] == "summary"
    assert speech_clip.recall(report["transcript"]) >= MIN_RECALL, report


def test_library_raises_transcribe_error(
    node_client: list[str], run_client: RunClient, live_gateway: str, speech_clip: Clip
) -> None:
    """A rejected config throws TranscribeError carrying INVALID_ARGUMENT."""
    report = probe(run_client, node_client[0], "error", live_gateway, speech_clip)
    assert report["status"] == "INVALID_ARGUMENT", report
    assert "sample_rate" in report["details"], report


def test_library_audio_failure_half_closes_then_throws(
    node_client: list[str], run_client: RunClient, live_gateway: str, speech_clip: Clip
) -> None:
    """An error thrown by the audio source ends the stream cleanly and is thrown after summary."""
    report = probe(run_client, node_client[0], "audio_failure", live_gateway, speech_clip)
    assert report["raised"] == "microphone unplugged", report
    assert report["kinds"][0] == "sessionStarted"
    assert report["kinds"][-1] == "summary"


def test_library_stream_api(
    node_client: list[str], run_client: RunClient, live_gateway: str, speech_clip: Clip
) -> None:
    """`client.stream()` by hand: send, finalize, end while reading; one session, all results."""
    report = probe(run_client, node_client[0], "stream", live_gateway, speech_clip)
    assert report["kinds"][0] == "sessionStarted" and report["kinds"][-1] == "summary", report
    assert report["kinds"].count("sessionStarted") == 1, report
    assert speech_clip.recall(report["transcript"]) >= MIN_RECALL, report


def test_library_sends_any_chunk_as_whole_frames_of_at_most_32_kib(
    node_client: list[str], run_client: RunClient, speech_clip: Clip
) -> None:
    """`send()` takes chunks of any size. The gateway gets messages of at most 32 KiB on whole
    16-bit frames counted from the first byte; a frame cut short waits for the next chunk, and a
    control or the end sends it as it is, so the Finalize keeps its place (as the Python and Go
    libraries send)."""
    seen: list[int | str] = []
    audio = bytearray()

    def stream_transcribe(
        requests: Iterator[pb.StreamTranscribeRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.StreamTranscribeResponse]:
        for request in requests:
            kind = request.WhichOneof("request")
            if kind == "audio":
                seen.append(len(request.audio))
                audio.extend(request.audio)
            elif kind == "control":
                seen.append(str(request.control.WhichOneof("command")))
        yield pb.StreamTranscribeResponse(summary=pb.SessionSummary())

    with serving(stream_transcribe, typed=True) as addr:
        report = probe(run_client, node_client[0], "odd_chunks", addr, speech_clip)
    # 100001 bytes: three of 32 KiB, then up to the last whole frame; its odd byte waits. It and
    # 3 more make two frames; 1 byte waits, then goes before the Finalize; the next 2 bytes
    # complete that frame (1) and start one, whose byte goes at the end.
    assert seen == [32768, 32768, 32768, 1696, 4, 1, "finalize", 1, 1]
    assert bytes(audio) == bytes(i % 251 for i in range(report["sent"]))


def test_token_comes_from_the_environment(
    program: list[str], run_client: RunClient, speech_clip: Clip, metadata_echo_server: EchoServer
) -> None:
    """Without --token, TRANSCRIBE_TOKEN is sent as the bearer token."""
    run = run_client(
        [*program, "--addr", metadata_echo_server.addr, "--file", str(speech_clip.path), "--fast"],
        env={"TRANSCRIBE_TOKEN": "from-env"},
    )
    assert run.returncode == 1, run.describe()
    assert run.error_line.startswith("error: UNAUTHENTICATED: authorization=Bearer from-env"), run.describe()


def test_stdin_streams_audio_as_it_arrives(client: list[str], speech_clip: Clip) -> None:
    """`--file -` sends stdin as it arrives: with audio piped in at real-time pace, the first
    transcript prints while the pipe still has audio to come, and the whole speech comes back."""
    with wave.open(str(speech_clip.path), "rb") as wav:
        rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
    piece = rate * 2 // 10  # 100 ms
    written = threading.Event()
    with subprocess.Popen(
        [*client, "--file", "-", "--encoding", "linear16", "--sample-rate", str(rate)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as process:  # fmt: skip
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None

        def feed() -> None:  # a live source: 100 ms of audio every 100 ms
            start = time.monotonic()
            with_stdin = process.stdin
            assert with_stdin is not None
            for offset in range(0, len(pcm), piece):
                delay = start + offset / (rate * 2) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                with_stdin.write(pcm[offset : offset + piece])
                with_stdin.flush()
            written.set()
            with_stdin.close()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        first = process.stdout.readline().decode()
        still_feeding = not written.is_set()
        rest = process.stdout.read().decode()
        stderr = process.stderr.read().decode()
        returncode = process.wait(timeout=CLIENT_TIMEOUT_S * TIMING)
        feeder.join(timeout=CLIENT_TIMEOUT_S * TIMING)
    described = f"exit {returncode}\n--- stdout\n{first}{rest}\n--- stderr\n{stderr}"
    assert returncode == 0, described
    assert first.strip(), described
    assert still_feeding, f"the first transcript came only after the whole input\n{described}"
    assert speech_clip.recall(first + rest) >= MIN_RECALL, described


#: The README's programs, in fenced blocks whose first line names them.
_EXAMPLE = re.compile(r"```js\n(// (example\.[mc]js)[^\n]*\n.*?)```", re.DOTALL)

_TYPED_CONSUMER = """\
import { TranscribeClient, TranscribeError, type Response } from 'transcribe-gateway-client';
const client = new TranscribeClient('127.0.0.1:1', { resume: { maxAttempts: 2 } });
const stream = client.stream({ encoding: 'AUDIO_ENCODING_LINEAR16', sampleRate: 16000 });
stream.on('resuming', (e) => console.log(e.resumePoint.committedSeconds, e.error.reason));
export async function run(): Promise<string[]> {
  await stream.send(new Uint8Array(2));
  const finals: string[] = [];
  for await (const r of stream) {
    const response: Response = r;
    if (response.result?.isFinal) finals.push(response.result.alternatives[0]?.transcript ?? '');
  }
  return finals;
}
export const isError = (e: unknown): boolean => e instanceof TranscribeError && e.resumePoint !== null;
"""


def _consumer_lock(tarball: Path) -> dict[str, Any]:
    """A lock for an empty project depending on `tarball`: the package's own locked tree
    (clients/node/package-lock.json, without its dev-only packages) under it, so that `npm ci`
    installs exactly the versions the package is tested with."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    own = lock["packages"][""]
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    packages: dict[str, Any] = {
        "": {"name": "consumer", "version": "1.0.0", "dependencies": {own["name"]: f"file:{tarball.name}"}},
        f"node_modules/{own['name']}": {
            "version": own["version"], "resolved": f"file:{tarball.name}", "integrity": integrity,
            "license": own["license"], "dependencies": own["dependencies"], "bin": own["bin"],
            "engines": own["engines"],
        },
    }  # fmt: skip
    packages.update({k: v for k, v in lock["packages"].items() if k and not v.get("dev")})
    return {
        "name": "consumer",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": True,
        "packages": packages,
    }


@pytest.fixture(scope="session")
def consumer_project(
    node_client: list[str], run_client: RunClient, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An empty project with the packed tarball installed (`npm pack`, then `npm ci`)."""
    npm = shutil.which("npm")
    assert npm is not None
    project = tmp_path_factory.mktemp("consumer")
    packed = run_client([npm, "pack", "--silent", "--pack-destination", str(project)], cwd=NODE_DIR)
    assert packed.returncode == 0, packed.describe()
    tarball = project / packed.lines[-1]
    lock = _consumer_lock(tarball)
    (project / "package.json").write_text(json.dumps(lock["packages"][""], indent=2))
    (project / "package-lock.json").write_text(json.dumps(lock, indent=2))
    run = run_client([npm, "ci", "--no-audit", "--no-fund"], cwd=project, timeout=NPM_TIMEOUT_S)
    assert run.returncode == 0, run.describe()
    return project


def test_packed_tarball_runs_the_readme_programs_in_an_empty_project(
    node_client: list[str],
    consumer_project: Path,
    run_client: RunClient,
    live_gateway: str,
    speech_clip: Clip,
) -> None:
    """The tarball carries the proto and the types: the README's ESM and CommonJS programs,
    installed from it in an empty project, print the transcript the CLI prints."""
    installed = consumer_project / "node_modules" / "transcribe-gateway-client"
    assert (installed / "proto" / "transcribe" / "v1" / "transcribe.proto").read_bytes() == (
        REPO / "proto" / "transcribe" / "v1" / "transcribe.proto"
    ).read_bytes()
    examples = {m.group(2): m.group(1) for m in _EXAMPLE.finditer((NODE_DIR / "README.md").read_text())}
    assert set(examples) == {"example.mjs", "example.cjs"}, examples
    cli = run_client([*node_client, "--addr", live_gateway, "--file", str(speech_clip.path), "--fast"])
    assert cli.returncode == 0 and cli.lines, cli.describe()
    for name, source in examples.items():
        (consumer_project / name).write_text(source)
        run = run_client(
            [node_client[0], name, str(speech_clip.path)],
            cwd=consumer_project,
            env={"TRANSCRIBE_ADDR": live_gateway},
        )
        assert run.returncode == 0, run.describe()
        assert run.lines == cli.lines, run.describe()


def test_packed_tarball_types_check_in_a_typescript_consumer(
    consumer_project: Path, run_client: RunClient
) -> None:
    """A strict TypeScript program type-checks against the installed package's .d.ts files,
    and a wrong use of them does not."""
    tsc = str(NODE_DIR / "node_modules" / ".bin" / "tsc")
    flags = [
        "--noEmit",
        "--strict",
        "--module",
        "nodenext",
        "--moduleResolution",
        "nodenext",
        "--target",
        "es2022",
    ]
    (consumer_project / "consumer.mts").write_text(_TYPED_CONSUMER)
    ok = run_client([tsc, *flags, "consumer.mts"], cwd=consumer_project)
    assert ok.returncode == 0, ok.describe()
    (consumer_project / "wrong.mts").write_text(_TYPED_CONSUMER + "export const n: number = stream.closed;\n")
    wrong = run_client([tsc, *flags, "wrong.mts"], cwd=consumer_project)
    assert wrong.returncode != 0 and "TS2322" in wrong.stdout, wrong.describe()


def _finals(json_lines: list[str]) -> list[dict[str, Any]]:
    results = [json.loads(line).get("result") for line in json_lines]
    return [r for r in results if r and r.get("isFinal")]


def _final_text(json_lines: list[str]) -> list[str]:
    return words(
        " ".join(
            r["alternatives"][0].get("transcript", "") for r in _finals(json_lines) if r.get("alternatives")
        )
    )


def _words_of(finals: list[dict[str, Any]]) -> list[str]:
    return words(
        " ".join(r["alternatives"][0].get("transcript", "") for r in finals if r.get("alternatives"))
    )


def _timed_words(finals: list[dict[str, Any]]) -> list[tuple[float, str]]:
    """(start, word) of every word of the final results' first alternatives, normalised."""
    return [
        (w.get("startSeconds", 0.0), " ".join(words(w["word"])))
        for r in finals
        if r.get("alternatives")
        for w in r["alternatives"][0].get("words", [])
        if words(w["word"])
    ]


def _tail_wav(clip: Clip, from_s: float, path: Path) -> Path:
    """The clip from `from_s` on (whole frames), as a WAV file."""
    with wave.open(str(clip.path), "rb") as wav:
        params = wav.getparams()
        wav.setpos(round(from_s * params.framerate))
        frames = wav.readframes(params.nframes)
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    return path


@pytest.mark.slow
def test_stream_resumes_across_a_rolling_restart(
    node_client: list[str],
    run_client: RunClient,
    gateway_replicas: Fleet,
    long_speech_clip: Clip,
    tmp_path: Path,
) -> None:
    """Two replicas behind nginx; one real-time stream; the serving replica is SIGTERMed in the
    silence after the first speech. The library resumes on the other replica by itself: 0 words
    lost, 0 repeated, times on one monotonic base.

    What "0 lost, 0 repeated" is compared with: before the resume point, the undisturbed run's
    words; after it, the words (and times, shifted by the resume point) of an undisturbed stream
    of the audio from that point on. The embedded engine's segments, and so a marginal word
    ("demo"/"memo" in the repeated speech), depend on where its stream starts, so the whole
    resumed transcript is not always the whole undisturbed one; a stream of the same audio from
    the same point is, and any audio lost or resent would change it. The audio accounting is
    exact: resume point + the last call's audio = the clip.
    """
    args = [*node_client, "--addr", gateway_replicas.address, "--json"]
    undisturbed = run_client([*args, "--file", str(long_speech_clip.path)])
    assert undisturbed.returncode == 0, undisturbed.describe()
    assert long_speech_clip.recall(" ".join(_final_text(undisturbed.lines))) >= MIN_RECALL, (
        undisturbed.describe()
    )

    lines: list[str] = []
    first_speech_done = threading.Event()
    with subprocess.Popen(
        [*args, "--file", str(long_speech_clip.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if "connection" in _final_text([line]):  # the first speech's last words
                    first_speech_done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert first_speech_done.wait(CLIENT_TIMEOUT_S * TIMING), "".join(lines)
        drained = gateway_replicas.terminate_serving()
        stderr = process.stderr.read()
        returncode = process.wait(timeout=CLIENT_TIMEOUT_S * TIMING)
        reader.join(timeout=CLIENT_TIMEOUT_S * TIMING)
    described = f"exit {returncode}\n--- stdout\n{''.join(lines)}\n--- stderr\n{stderr}"
    assert returncode == 0, described
    resumed = re.findall(r"^resuming: UNAVAILABLE: .*\(attempt 1, from ([0-9.]+) s\)$", stderr, re.MULTILINE)
    assert len(resumed) == 1, described
    cut_s = float(resumed[0])
    assert gateway_replicas.wait_exited(drained) == 0, described
    assert [r for r in gateway_replicas.replicas if r is not drained and r.running], described

    responses = [json.loads(line) for line in lines]
    assert [list(r) for r in responses].count(["sessionStarted"]) == 1, described
    summaries = [r["summary"] for r in responses if "summary" in r]
    assert len(summaries) == 1 and list(responses[-1]) == ["summary"], described
    assert abs(cut_s + summaries[0]["audioReceivedSeconds"] - long_speech_clip.duration_s) < 1e-5, described

    finals = _finals(lines)
    timed = _timed_words(finals)
    reference = _timed_words(_finals(undisturbed.lines))
    assert [w for t, w in timed if t < cut_s] == [w for t, w in reference if t < cut_s], described

    tail = run_client([*args, "--file", str(_tail_wav(long_speech_clip, cut_s, tmp_path / "tail.wav"))])
    assert tail.returncode == 0, tail.describe()
    after = [(t, w) for t, w in timed if t >= cut_s]
    fresh = _timed_words(_finals(tail.lines))
    assert [w for _, w in after] == [w for _, w in fresh], f"{described}\n--- tail\n{tail.stdout}"
    assert all(abs(t - cut_s - u) < 0.002 for (t, _), (u, _) in zip(after, fresh, strict=True)), described

    starts = [r.get("startSeconds", 0.0) for r in finals]
    assert starts == sorted(starts), described
    ends = [
        w.get("endSeconds", 0.0)
        for r in finals
        if r.get("alternatives")
        for w in r["alternatives"][0].get("words", [])
    ]
    assert ends == sorted(ends), described
    assert ends[-1] > long_speech_clip.duration_s - 3.0, (
        described
    )  # the last speech, on the first stream's time base


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
