"""Fixtures shared by the client tests of every language (Python, Node, Go, .NET).

- `speech_clip`: the project's own speech, `gateway/samples/hello.wav` (10.6 s, 16 kHz mono
  linear16), with its reference transcript; `corpus_clip` is the same clip under its old name.
  `long_speech_clip`: that speech three times with two seconds of silence between, for streams
  that must last long enough to be disturbed. `Clip.recall` is the share of the reference's
  words a transcript contains. Nothing here needs ../shared.
- `shared_engine`: one `python -m transcribe_engine serve` for the session; every gateway
  below relays to it (`--upstream-url`), so the model is loaded once.
- `live_gateway`: a real `python -m gateway serve` subprocess on a free loopback port, relaying
  to `shared_engine`; yields its `127.0.0.1:PORT`. One per session.
- `nginx_bin`, `gateway_replicas`: two gateway replicas behind the real nginx
  (`tests/support/replicas.py`); `gateway_replicas.address` is nginx's, and
  `gateway_replicas.terminate_serving()` SIGTERMs the replica serving the open stream. Fresh
  for each test.
- `standin_replicas`: the same fleet relaying to the scripted Deepgram stand-in
  (tests/support/standin.py, run on its own event loop thread), which hears each 80 ms block
  of counter audio as one word `w<n>`: exact transcripts for word-for-word checks.
  `counter_wav` writes such audio as a WAV file.
- `progressive_http_server`: serves files over HTTP on 127.0.0.1 with chunked transfer at about
  real-time pace, as an internet radio would; `.url` streams `speech_clip`.
- `metadata_echo_server`: a stand-in endpoint (plaintext and TLS) that answers UNAUTHENTICATED
  with the `authorization` metadata it got, to check `--token`, `--tls` and `--ca-file`.
- `stalling_server`: a stand-in that never ends a call after the half-close, to check that a
  second Ctrl+C cancels it.
- `run_client`: runs a client program as a subprocess and returns its exit code and output;
  `interrupt_client`: the same, sending SIGINTs while it runs.
- `TESTDATA`: the shared test vectors (`clients/testdata/`, see its README).

Test modules import the helpers and types from here (`from tests.clients.conftest import Clip`;
`tests/clients` is a package like the rest of `tests/`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from transcribe.v1 import transcribe_pb2 as pb

from tests.conftest import ROOT, TIMING
from tests.support import replicas
from tests.support.standin import SAMPLE_RATE as STANDIN_RATE
from tests.support.standin import DeepgramStandIn, counter_audio

#: The repository root (the gateway and the clients are run from here).
REPO = ROOT

#: How long the gateway (and its engine's model load and calibration) may take to start.
GATEWAY_START_TIMEOUT_S = 180.0
#: The clip every client transcribes: the project's own synthetic speech (see its README).
SAMPLE = REPO / "gateway" / "samples" / "hello.wav"
SAMPLE_TEXT = (
    "Hello, and welcome to the transcription gateway. This short recording was made for the "
    "demo, so that anyone can try the service without a network connection."
)
#: `long_speech_clip`: the sample this many times, with this much silence between.
LONG_REPEATS = 3
LONG_GAP_S = 2.0
#: The shared test vectors of every client language.
TESTDATA = REPO / "clients" / "testdata"
#: How long one client run may take (times `TIMING`).
CLIENT_TIMEOUT_S = 120.0

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """Lower-case words of `text`, punctuation dropped (apostrophes kept inside words)."""
    return [w.strip("'") for w in _WORD.findall(text.lower()) if w.strip("'")]


@dataclass(frozen=True, slots=True)
class Clip:
    """A corpus clip: the WAV file, its reference transcript and its length."""

    path: Path
    reference: str
    duration_s: float

    @property
    def reference_words(self) -> list[str]:
        """The reference transcript as `words`."""
        return words(self.reference)

    def recall(self, transcript: str) -> float:
        """Share of the reference's words found in `transcript` (order ignored, with counts)."""
        said: dict[str, int] = {}
        for w in words(transcript):
            said[w] = said.get(w, 0) + 1
        found = 0
        for w in self.reference_words:
            if said.get(w, 0) > 0:
                said[w] -= 1
                found += 1
        return found / len(self.reference_words)


@dataclass(frozen=True, slots=True)
class ClientRun:
    """A finished client process."""

    args: Sequence[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """The non-empty stdout lines."""
        return [line for line in self.stdout.splitlines() if line.strip()]

    @property
    def error_line(self) -> str:
        """The last stderr line starting with `error: ` ("" if none); runtimes (gRPC core,
        Node) may log other lines around it."""
        found = [line for line in self.stderr.splitlines() if line.startswith("error: ")]
        return found[-1] if found else ""

    def describe(self) -> str:
        """The run, for assertion messages."""
        return (
            f"{' '.join(self.args)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


#: `run_client(args, *, env=None, cwd=None, timeout=CLIENT_TIMEOUT_S) -> ClientRun`
RunClient = Callable[..., ClientRun]
#: `interrupt_client(args, *, after_s, env=None, cwd=None, timeout=..., started=None) -> ClientRun`
InterruptClient = Callable[..., ClientRun]


def _clip(path: Path, reference: str) -> Clip:
    with wave.open(str(path), "rb") as wav:
        return Clip(path, reference, wav.getnframes() / wav.getframerate())


@pytest.fixture(scope="session")
def speech_clip() -> Clip:
    """`gateway/samples/hello.wav` with its reference transcript."""
    return _clip(SAMPLE, SAMPLE_TEXT)


@pytest.fixture(scope="session")
def corpus_clip(speech_clip: Clip) -> Clip:
    """The old name of `speech_clip` (the tests once read a clip from ../shared/corpus)."""
    return speech_clip


@pytest.fixture(scope="session")
def long_speech_clip(tmp_path_factory: pytest.TempPathFactory, speech_clip: Clip) -> Clip:
    """The sample LONG_REPEATS times with LONG_GAP_S of silence between (about 36 s)."""
    with wave.open(str(speech_clip.path), "rb") as wav:
        params = wav.getparams()
        frames = wav.readframes(wav.getnframes())
    gap = b"\0" * int(LONG_GAP_S * params.framerate) * params.sampwidth * params.nchannels
    path = tmp_path_factory.mktemp("speech") / "hello-x3.wav"
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(gap.join([frames] * LONG_REPEATS))
    return _clip(path, " ".join([speech_clip.reference] * LONG_REPEATS))


@pytest.fixture(scope="session")
def venv_python() -> str:
    """The interpreter of the project's virtualenv (falls back to the one running pytest)."""
    candidate = REPO / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


@pytest.fixture(scope="session")
def shared_engine(tmp_path_factory: pytest.TempPathFactory, venv_python: str) -> Iterator[str]:
    """One embedded engine (`python -m transcribe_engine serve`) for the session; its ws:// URL."""
    try:
        with replicas.engine_process(tmp_path_factory.mktemp("engine"), venv_python) as url:
            yield url
    except replicas.FleetError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def live_gateway(
    tmp_path_factory: pytest.TempPathFactory, venv_python: str, shared_engine: str
) -> Iterator[str]:
    """A real gateway (`python -m gateway serve`) relaying to `shared_engine`; yields HOST:PORT."""
    workdir = tmp_path_factory.mktemp("gateway")
    ready = workdir / "ready"
    log_path = workdir / "gateway.log"
    env = {k: v for k, v in os.environ.items() if k != "DEEPGRAM_API_KEY"}
    env.pop("GATEWAY_UPSTREAM_URL", None)
    command = [
        venv_python, "-m", "gateway", "serve",
        "--listen", "127.0.0.1:0", "--ready-file", str(ready), "--upstream-url", shared_engine,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + GATEWAY_START_TIMEOUT_S * TIMING
        while not (ready.exists() and ready.read_text().strip()):
            if process.poll() is not None:
                pytest.fail(f"the gateway exited with {process.returncode}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"the gateway did not get ready:\n{_tail(log_path)}")
            time.sleep(0.1)
        yield ready.read_text().strip()
    finally:
        _stop(process)


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    """nginx from `.tools/bin`; missing, it fails the test on CI and skips it elsewhere."""
    found = replicas.find_tool("nginx")
    if found is None:
        reason = "nginx is not installed (run bash tools/install-ops-tools.sh)"
        if _on_ci():
            pytest.fail(f"{reason}; CI must install it before the tests")
        pytest.skip(reason)
    return found


@pytest.fixture
def gateway_replicas(
    tmp_path: Path, nginx_bin: str, shared_engine: str, venv_python: str
) -> Iterator[replicas.Fleet]:
    """Two gateway replicas relaying to `shared_engine`, behind nginx; fresh for each test."""
    try:
        with replicas.replica_fleet(
            tmp_path / "fleet", nginx_bin, shared_engine, python=venv_python
        ) as fleet:
            yield fleet
    except replicas.FleetError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def standin_replicas(tmp_path: Path, nginx_bin: str, venv_python: str) -> Iterator[replicas.Fleet]:
    """Two gateway replicas relaying to one scripted Deepgram stand-in, behind nginx."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="standin", daemon=True)
    thread.start()
    standin = DeepgramStandIn()
    asyncio.run_coroutine_threadsafe(standin.__aenter__(), loop).result(timeout=30)
    try:
        with replicas.replica_fleet(tmp_path / "fleet", nginx_bin, standin.url, python=venv_python) as fleet:
            yield fleet
    except replicas.FleetError as exc:
        pytest.fail(str(exc))
    finally:
        asyncio.run_coroutine_threadsafe(standin.__aexit__(None, None, None), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def counter_wav(path: Path, blocks: int) -> Path:
    """`blocks` blocks of counter audio (w0 ... w<blocks-1>) as a 16 kHz mono WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(STANDIN_RATE)
        out.writeframes(counter_audio(0, blocks))
    return path


def _stop(process: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s * TIMING)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def run_client() -> RunClient:
    """Runs `args` (a client program) to completion: `run_client(args, env=..., cwd=...)`."""

    def run(
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = CLIENT_TIMEOUT_S,
    ) -> ClientRun:
        done = subprocess.run(
            list(args),
            cwd=cwd or REPO,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout * TIMING,
            check=False,
        )
        return ClientRun(args, done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture(scope="session")
def interrupt_client() -> InterruptClient:
    """Runs `args`, sends SIGINT after each delay of `after_s` (seconds, cumulative), and waits.

    `interrupt_client(args, after_s=[3.0, 0.2])` interrupts 3 s after the start, then again
    0.2 s later. With `started`, the delays count from when `started()` is first true (say,
    when a stand-in has seen the call), so a slow start-up does not eat them. With
    `after_first_line`, they count from the client's first line of output (and none is sent if
    it ends without one).
    """

    def run(
        args: Sequence[str],
        *,
        after_s: Sequence[float],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = CLIENT_TIMEOUT_S,
        started: Callable[[], bool] | None = None,
        after_first_line: bool = False,
    ) -> ClientRun:
        with subprocess.Popen(
            list(args),
            cwd=cwd or REPO,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            deadline = time.monotonic() + timeout * TIMING
            while started is not None and not started() and process.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)  # a stand-in's counter, updated on its own thread
            first = ""
            if after_first_line:
                assert process.stdout is not None
                first = process.stdout.readline()  # "" if it ended without a line
                if not first:
                    after_s = []
            for delay in after_s:
                time.sleep(delay)  # a sync fixture in a subprocess driver: no event loop here
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
            try:
                stdout, stderr = process.communicate(timeout=timeout * TIMING)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
        return ClientRun(args, process.returncode, first + stdout, stderr)

    return run


@dataclass
class ProgressiveServer:
    """An HTTP server on 127.0.0.1 that streams registered files at a set byte rate."""

    base_url: str
    url: str = ""
    _files: dict[str, tuple[Path, float]] = field(default_factory=dict)

    def url_for(self, path: Path, bytes_per_second: float | None = None) -> str:
        """Registers `path` and returns its URL; a WAV file's default rate is its byte rate."""
        rate = bytes_per_second or _wav_byte_rate(path) or 16_000.0
        name = f"/{len(self._files)}/{path.name}"
        self._files[name] = (path, rate)
        return self.base_url + name


def _wav_byte_rate(path: Path) -> float | None:
    try:
        with wave.open(str(path), "rb") as wav:
            return float(wav.getframerate() * wav.getnchannels() * wav.getsampwidth())
    except (wave.Error, EOFError):
        return None


@pytest.fixture(scope="session")
def progressive_http_server(speech_clip: Clip) -> Iterator[ProgressiveServer]:
    """Serves files with chunked transfer at about real-time pace; `.url` streams `speech_clip`."""
    files: dict[str, tuple[Path, float]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            entry = files.get(self.path)
            if entry is None:
                self.send_error(404)
                return
            path, rate = entry
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            step = max(1, int(rate / 10))  # 100 ms of audio per chunk
            start = time.monotonic()
            with contextlib.suppress(ConnectionError):
                for offset in range(0, len(data), step):
                    delay = start + offset / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    piece = data[offset : offset + step]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            """Keeps the test output quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="progressive-http", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    progressive = ProgressiveServer(base_url=f"http://{host!s}:{port}", _files=files)
    progressive.url = progressive.url_for(speech_clip.path)
    try:
        yield progressive
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True, slots=True)
class EchoServer:
    """A stand-in `StreamTranscribe` endpoint that answers every call with UNAUTHENTICATED and
    the call's `authorization` metadata as the message: `authorization=<value or none>`.

    `addr` is plaintext; `tls_addr` serves TLS with a self-signed certificate for 127.0.0.1
    whose PEM is `ca_file`.
    """

    addr: str
    tls_addr: str
    ca_file: Path


@pytest.fixture(scope="session")
def metadata_echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoServer]:
    """Checks what a client sends as metadata, over plaintext and over TLS (no generated code)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate for the TLS stand-in")
    workdir = tmp_path_factory.mktemp("tls")
    key, cert = workdir / "key.pem", workdir / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip

    def stream_transcribe(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        metadata = dict(context.invocation_metadata())
        next(requests, None)  # the config
        context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            f"authorization={metadata.get('authorization', 'none')}",
        )
        yield b""  # never reached: makes this a generator, as a streaming handler must be

    handler = grpc.method_handlers_generic_handler(
        "transcribe.v1.TranscribeService",
        {"StreamTranscribe": grpc.stream_stream_rpc_method_handler(stream_transcribe)},
    )
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    tls_port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield EchoServer(f"127.0.0.1:{port}", f"127.0.0.1:{tls_port}", cert)
    finally:
        server.stop(None).wait()


#: A serialized `StreamTranscribeResponse{session_started{session_id: "stall"}}`, written by hand
#: so that no generated code is imported here.
_SESSION_STARTED = b"\x0a\x07\x0a\x05stall"


@dataclass
class StallingServer:
    """A stand-in `StreamTranscribe` endpoint that sends `session_started`, reads the audio, and
    after the client's half-close never ends the call: only a client cancel ends it.

    `calls` counts the calls opened; `half_closes` those whose request stream was half-closed;
    `cancels` those that the client then cancelled.
    """

    addr: str
    calls: int = 0
    half_closes: int = 0
    cancels: int = 0


@pytest.fixture(scope="session")
def stalling_server() -> Iterator[StallingServer]:
    """Makes "a second Ctrl+C cancels the call" testable without racing the gateway's flush."""
    stand_in = StallingServer(addr="")
    lock = threading.Lock()

    def stream_transcribe(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        with lock:
            stand_in.calls += 1
        yield _SESSION_STARTED
        for _ in requests:
            pass
        with lock:
            stand_in.half_closes += 1
        deadline = time.monotonic() + 60
        while context.is_active() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not context.is_active():
            with lock:
                stand_in.cancels += 1

    with serving(stream_transcribe) as stand_in.addr:
        yield stand_in


@contextlib.contextmanager
def serving(
    stream_transcribe: Callable[[Any, grpc.ServicerContext], Iterator[Any]], *, typed: bool = False
) -> Iterator[str]:
    """A blocking grpc server whose `StreamTranscribe` is ``stream_transcribe``, on a free
    loopback port; yields its address. Its messages are raw bytes, or with ``typed`` the
    contract's request and response messages."""
    method = grpc.stream_stream_rpc_method_handler(
        stream_transcribe,
        request_deserializer=pb.StreamTranscribeRequest.FromString if typed else None,
        response_serializer=pb.StreamTranscribeResponse.SerializeToString if typed else None,
    )
    handler = grpc.method_handlers_generic_handler(
        "transcribe.v1.TranscribeService", {"StreamTranscribe": method}
    )
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        yield address
    finally:
        server.stop(None).wait()
