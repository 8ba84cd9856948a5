"""The embedded engine as a supervised child process: the one seam between gateway and engine.

Recognition is CPU-bound; in the gateway's process it would starve the relay's event loop (and
a hostile stream could freeze it). So the gateway runs ``python -m transcribe_engine serve`` as a
child and only relays to it over loopback:

- The gateway binds the listening socket once and hands it to every child it starts, so the
  engine's URL never changes, no other process can take the port between restarts, and a client
  connecting while a child restarts waits in the backlog instead of being refused.
- The child prints its URL on stdout once it serves; its log lines (JSON on stderr) are logged
  again here under ``transcribe_engine.*``.
- A child that exits, or stops answering its health probe, is marked down (``on_change(False)``:
  the service reads NOT_SERVING), killed, and started again after a bounded, growing delay.
- The listening socket is watched too: once anyone shuts it down (``ss -K``, a ``shutdown()``
  through an inherited descriptor) it refuses every connection, so the child is replaced and a
  new socket is bound to the same port for it; listening again on the old one would take a new
  port, as the kernel released the ephemeral one.
- With ``--workers N`` the engine's state reaches every worker's health through a pipe of its
  own (:class:`StateFanout`, :func:`follow_state`): one byte per change, nothing per request.
- The child runs at a lower CPU priority (``nice``): recognition takes whatever CPU it gets, and
  the relay, health checks included, must get the CPU first whenever it needs it.
- The child asks the kernel to end it with the gateway (see ``transcribe_engine.lifeline``), and
  leaving the context stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gateway.errors import EngineChildError

logger = logging.getLogger(__name__)
_ENGINE_LOGGER: Final = "transcribe_engine"
_PIPE_LIMIT: Final = 1024 * 1024  # one JSON log line, traceback included
_STOP_GRACE_S: Final = 5.0
_NOT_FOR_THE_CHILD: Final = frozenset({"ENGINE_API_KEY", "ENGINE_LISTEN"})
# Lowers its priority, then becomes the engine (same pid, same inherited socket). Done in the
# child, as subprocess's preexec_fn is not safe in a process with threads (grpc's).
_NICE_THEN_EXEC: Final = "import os, sys; os.nice(int(sys.argv[1])); os.execv(sys.argv[2], sys.argv[2:])"


@dataclass(frozen=True, slots=True)
class ChildPolicy:
    """How the child is watched and restarted."""

    ready_timeout_s: float = 120.0  # importing faster-whisper and loading a model, on a busy machine
    probe_interval_s: float = 1.0
    probe_timeout_s: float = 2.0
    probe_failures: int = 3  # consecutive failed probes that count as a hung child
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 10.0
    stable_s: float = 30.0  # a child that lived this long resets the backoff
    nice: int = 10  # added to the child's niceness (0: the gateway's priority)


def restart_delay(failures: int, policy: ChildPolicy) -> float:
    """Delay before the next start after ``failures`` quick failures in a row (0: the first)."""
    # The exponent is capped: 2.0 ** 1024 overflows, and 2 ** 30 already passes any sane bound.
    return min(policy.max_backoff_s, policy.initial_backoff_s * 2.0 ** min(max(0, failures), 30))


@dataclass(slots=True)
class Liveness:
    """Consecutive probe failures; ``dead`` once there were ``threshold`` in a row."""

    threshold: int
    failures: int = 0

    def record(self, ok: bool) -> bool:
        """Note one probe's outcome; True when the child is to be considered dead."""
        self.failures = 0 if ok else self.failures + 1
        return self.failures >= self.threshold


def parse_log_line(line: str) -> tuple[str, int, str]:
    """(logger name, level, message) of one line of the child's stderr.

    JSON lines come from the engine's logging; anything else (a crash before logging was set
    up, a native library writing to stderr) is kept as a warning, as it may explain a failure.
    """
    text = line.rstrip("\r\n")
    try:
        entry = json.loads(text)
    except ValueError:
        entry = None
    if not isinstance(entry, dict) or not isinstance(entry.get("message"), str):
        return _ENGINE_LOGGER, logging.WARNING, text
    name = str(entry.get("logger") or _ENGINE_LOGGER)
    if name != _ENGINE_LOGGER and not name.startswith(_ENGINE_LOGGER + "."):
        name = f"{_ENGINE_LOGGER}.{name}"  # e.g. faster_whisper, inside the engine
    level = logging.getLevelName(str(entry.get("level", "WARNING")))
    message: str = entry["message"]
    if entry.get("request_id"):
        message = f"{message} [request_id={entry['request_id']}]"
    if entry.get("exception"):
        message = f"{message}\n{entry['exception']}"
    return name, level if isinstance(level, int) else logging.WARNING, message


def listening(sock: socket.socket) -> bool:
    """Whether ``sock`` still accepts connections (a shutdown by any holder of it ends that)."""
    try:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    except OSError:
        return False


def engine_installed() -> bool:
    return importlib.util.find_spec("transcribe_engine.server") is not None


class EngineChild:
    """``async with EngineChild(...) as engine:`` — serves at ``engine.url`` until the block ends."""

    def __init__(
        self,
        *,
        recognizer: str = "whisper",
        model_dir: Path | None = None,
        max_streams: int | None = None,
        on_change: Callable[[bool], Awaitable[None]] | None = None,
        policy: ChildPolicy | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self._engine_args = ["--recognizer", recognizer]
        if model_dir is not None:
            self._engine_args += ["--model-dir", str(model_dir)]
        if max_streams is not None:
            self._engine_args += ["--max-streams", str(max_streams)]
        self._on_change = on_change
        self._policy = policy or ChildPolicy()
        self._host = host
        self._sock: socket.socket | None = None
        self._port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self.up = False
        self.restarts = 0
        self._changed = asyncio.Event()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"ws://{self._host}:{self.port}/v1/listen"

    @property
    def pid(self) -> int | None:
        """The running child's process id (None while it is being restarted)."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    async def wait_for(self, *, up: bool) -> None:
        """Return once the child is (or is no longer) serving."""
        while self.up != up:
            self._changed.clear()
            await self._changed.wait()

    async def __aenter__(self) -> EngineChild:
        if not engine_installed():
            raise EngineChildError("the embedded engine is not installed: install the `engine` extra")
        self._sock = socket.create_server((self._host, 0))
        self._port = int(self._sock.getsockname()[1])
        try:
            self._process = await self._launch()
        except BaseException:
            await self._stop()
            raise
        await self._set_up(True)
        self._supervisor = asyncio.create_task(self._supervise(), name="engine-child-supervisor")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    async def _stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        if self._process is not None:
            await _terminate(self._process, _STOP_GRACE_S)
            self._process = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.up = False

    async def _set_up(self, up: bool) -> None:
        if up == self.up:
            return
        self.up = up
        self._changed.set()
        if self._on_change is not None:
            await self._on_change(up)

    # ---- starting ----

    def _command(self) -> list[str]:
        assert self._sock is not None
        level = logging.getLevelName(logging.getLogger(_ENGINE_LOGGER).getEffectiveLevel())
        niced = [sys.executable, "-c", _NICE_THEN_EXEC, str(self._policy.nice)] if self._policy.nice else []
        return [
            *niced,
            sys.executable,
            "-m",
            "transcribe_engine",
            "serve",
            "--listen-fd",
            str(self._sock.fileno()),
            "--parent-pid",
            str(os.getpid()),
            "--print-url",
            "--log-format",
            "json",
            "--log-level",
            str(level),
            *self._engine_args,
        ]

    def _ensure_listening(self) -> None:
        """Replace a listening socket that was shut down by a new one on the same port."""
        assert self._sock is not None
        if listening(self._sock):
            return
        try:
            replacement = socket.create_server((self._host, self._port))  # SO_REUSEADDR
        except OSError as exc:
            raise EngineChildError(f"cannot listen on {self._host}:{self._port} again: {exc}") from exc
        self._sock.close()
        self._sock = replacement
        logger.warning("the engine's listening socket was shut down: listening on %s again", self.url)

    async def _launch(self) -> asyncio.subprocess.Process:
        """Start one child and return once it serves; kill it and raise if it does not."""
        self._ensure_listening()
        assert self._sock is not None
        # ENGINE_* variables tune the child (decode workers, segment lengths...), but a key or an
        # address meant for a standalone engine must not change what the gateway relays to.
        env = {k: v for k, v in os.environ.items() if k not in _NOT_FOR_THE_CHILD}
        process = await asyncio.create_subprocess_exec(
            *self._command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(self._sock.fileno(),),
            env=env,
            limit=_PIPE_LIMIT,
        )
        assert process.stdout is not None and process.stderr is not None
        self._spawn(_forward_logs(process.stderr))
        try:
            async with asyncio.timeout(self._policy.ready_timeout_s):
                line = await process.stdout.readline()
        except TimeoutError:
            await _terminate(process, 0)
            raise EngineChildError(
                f"the engine did not start within {self._policy.ready_timeout_s:g} s"
            ) from None
        except BaseException:
            await _terminate(process, 0)
            raise
        if not line:
            code = await process.wait()
            raise EngineChildError(f"the engine exited with code {code} while starting (see its log)")
        self._spawn(_drain(process.stdout))
        logger.info("engine child %d serving at %s", process.pid, self.url)
        return process

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- watching ----

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        policy = self._policy
        failures = 0
        started = loop.time()
        while True:
            process = self._process
            if process is None:
                try:
                    self._process = await self._launch()
                except EngineChildError as exc:
                    delay = restart_delay(failures, policy)
                    failures += 1
                    logger.warning("%s; next attempt in %.1f s", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                self.restarts += 1
                started = loop.time()
                await self._set_up(True)
                continue
            reason = await self._watch(process)
            await self._set_up(False)
            await _terminate(process, 0)
            self._process = None
            failures = 0 if loop.time() - started >= policy.stable_s else failures + 1
            delay = restart_delay(failures - 1, policy)
            logger.warning("engine child %d %s; restarting it in %.1f s", process.pid, reason, delay)
            await asyncio.sleep(delay)

    async def _watch(self, process: asyncio.subprocess.Process) -> str:
        """Return why ``process`` is to be replaced: it exited, its socket was shut down, or it
        stopped answering."""
        policy = self._policy
        liveness = Liveness(policy.probe_failures)
        exited = asyncio.ensure_future(process.wait())
        try:
            while True:
                done, _ = await asyncio.wait({exited}, timeout=policy.probe_interval_s)
                if done:
                    return f"exited with code {process.returncode}"
                assert self._sock is not None
                # Certain at once, unlike a probe that fails: no need to wait for more.
                if not listening(self._sock):
                    return "lost its listening socket (shut down)"
                probe = asyncio.ensure_future(self._probe())
                await asyncio.wait({exited, probe}, return_when=asyncio.FIRST_COMPLETED)
                if exited.done():
                    probe.cancel()
                    return f"exited with code {process.returncode}"
                if liveness.record(probe.result()):
                    return f"did not answer {policy.probe_failures} health probes in a row"
        finally:
            exited.cancel()

    async def _probe(self) -> bool:
        """GET the engine's health path; only the child's event loop can answer it."""
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self._policy.probe_timeout_s):
                reader, writer = await asyncio.open_connection(self._host, self.port)
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n")
                status = await reader.readline()
        except (OSError, TimeoutError):
            return False
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        return status.split(b" ")[1:2] == [b"200"]


# ---- the engine's state, from the supervisor to its worker processes ----

_UP: Final = b"1"
_DOWN: Final = b"0"


def last_state(data: bytes) -> bool:
    """Whether the engine serves, from what a worker read on its pipe: the last byte wins; end of
    file (nothing) means the supervisor, and with it the engine, is gone."""
    return data[-1:] == _UP


class StateFanout:
    """The supervisor's side: tells each worker whether the engine serves, one byte per change
    on a pipe of its own. A pipe keeps the changes in order (signals would not), and a worker
    only reads when one comes, so it costs nothing per request."""

    def __init__(self, up: bool) -> None:
        self.up = up
        self._writers: list[int] = []

    def open_pipe(self) -> int:
        """A new worker's read end (to pass to it, then close here), the current state in it."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        self._writers.append(write_fd)
        self._send(write_fd)
        return read_fd

    async def publish(self, up: bool) -> None:
        """The ``on_change`` of the supervisor's :class:`EngineChild`."""
        self.up = up
        for fd in self._writers:
            self._send(fd)

    def _send(self, fd: int) -> None:
        # A worker that is gone (BrokenPipeError) is the supervisor's to notice; a full pipe
        # (BlockingIOError) would take 64 k changes its worker never read.
        with contextlib.suppress(BrokenPipeError, BlockingIOError):
            os.write(fd, _UP if self.up else _DOWN)

    def close(self) -> None:
        for fd in self._writers:
            os.close(fd)
        self._writers.clear()


def read_state_now(fd: int) -> bool | None:
    """The state waiting on the pipe (the supervisor writes it before starting the worker), or
    None when nothing is waiting."""
    os.set_blocking(fd, False)
    try:
        return last_state(os.read(fd, 4096))
    except BlockingIOError:
        return None


async def follow_state(fd: int, on_change: Callable[[bool], Awaitable[None]]) -> None:
    """The worker's side: apply each state the supervisor sends, until the pipe closes."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    try:
        while True:
            await readable.wait()
            readable.clear()
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                continue
            await on_change(last_state(data))
            if not data:
                return
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def _forward_logs(stderr: asyncio.StreamReader) -> None:
    while True:
        try:
            line = await stderr.readline()
        except ValueError:  # a line beyond the pipe limit: skip what was buffered
            continue
        if not line:
            return
        name, level, message = parse_log_line(line.decode("utf-8", "replace"))
        if message:
            logging.getLogger(name).log(level, "%s", message)


async def _drain(stdout: asyncio.StreamReader) -> None:
    # Nothing more is expected on stdout, but a full pipe would block the child.
    while await stdout.read(65536):
        pass


async def _terminate(process: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM, then SIGKILL after ``grace_s`` (at once when 0); wait for the exit."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
        try:
            async with asyncio.timeout(grace_s or None):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    await process.wait()
