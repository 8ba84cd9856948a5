"""``gateway serve --workers N``: N gateway processes sharing one listening port.

One Python process runs one event loop on one core. gRPC opens its listening socket with
SO_REUSEPORT, so N processes can bind the same port and the kernel spreads new connections
over them. This supervisor starts the embedded engine once (when it is the upstream), starts N
workers relaying to the same upstream, forwards SIGTERM/SIGINT to them (each drains on its
own), and stops them all if one dies. While the engine is down (being restarted), every
worker's service health reads NOT_SERVING: the supervisor sends each the engine's state on a
pipe (``--engine-state-fd``, see :class:`gateway.engine_child.StateFanout`).

Workers end when the supervisor dies, however it dies (``kill -9`` included): a worker left
behind would hold the port and answer health checks while its upstream, the supervisor's engine,
is gone. Each worker runs through :func:`worker_main`, which asks the kernel for a SIGTERM when
its parent dies (``PR_SET_PDEATHSIG``, Linux) and, elsewhere, watches its parent id; the SIGTERM
drains it as any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path

from gateway import logs
from gateway.config import Settings
from gateway.engine_child import EngineChild, StateFanout
from gateway.errors import StartupError, WorkerError
from gateway.metrics import MULTIPROC_ENV, MetricsServer, multiprocess_registry

logger = logging.getLogger(__name__)

# Settings the supervisor decides for its workers; the others are passed through as given.
_DECIDED = frozenset(
    {"workers", "listen", "upstream_url", "ready_file", "metrics_listen", "deepgram_api_key"}
)
_READY_TIMEOUT_S = 120.0
# The supervisor's pid, given to each worker in its environment.
SUPERVISOR_ENV = "GATEWAY_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1
_PARENT_POLL_S = 1.0


async def supervise(settings: Settings, global_flags: list[str]) -> None:
    """Run ``settings.workers`` worker processes until a signal, then drain them."""
    async with contextlib.AsyncExitStack() as stack:
        secrets = {settings.api_key or "", *settings.client_tokens, *logs.url_secrets(settings.upstream_url)}
        stack.enter_context(logs.redacting(secrets - {""}))
        upstream = settings.relay_url
        fanout: StateFanout | None = None
        if upstream is None:
            fanout = StateFanout(up=False)
            stack.callback(fanout.close)
            # One engine child (and so one model in memory) for all workers, supervised here.
            engine = await stack.enter_async_context(
                EngineChild(
                    recognizer=settings.engine_recognizer,
                    model_dir=settings.engine_model_dir,
                    on_change=fanout.publish,
                )
            )
            upstream = engine.url
        host, port = _listen_address(settings.listen)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-workers-")))
        env = {SUPERVISOR_ENV: str(os.getpid()), "GATEWAY_UPSTREAM_URL": upstream}
        if settings.metrics_listen is not None:
            # One scrape endpoint for all workers: they write their values to files in one folder
            # (prometheus_client's multiprocess mode), which the supervisor sums and serves.
            metrics_dir = Path(os.environ.get(MULTIPROC_ENV) or workdir / "metrics")
            os.makedirs(metrics_dir, exist_ok=True)
            env[MULTIPROC_ENV] = str(metrics_dir)
            metrics_host, _, metrics_port = settings.metrics_listen.rpartition(":")
            try:
                metrics = MetricsServer(multiprocess_registry(metrics_dir), metrics_host, int(metrics_port))
            except OSError as exc:
                raise StartupError(f"cannot serve metrics on {settings.metrics_listen}: {exc}") from exc
            stack.push_async_callback(metrics.close)
        processes = [
            await _start_worker(
                settings,
                global_flags,
                index=i,
                host=host,
                port=port,
                env=env,
                workdir=workdir,
                state_fd=fanout.open_pipe() if fanout is not None else None,
            )
            for i in range(settings.workers)
        ]
        try:
            await _wait_ready([workdir / f"worker{i}.ready" for i in range(len(processes))], processes)
            logger.info("%d workers serving on %s:%d, relaying to %s", len(processes), host, port, upstream)
            if settings.ready_file is not None:
                settings.ready_file.write_text(f"{host}:{port}\n")
            await _until_signal_or_exit(processes)
        finally:
            await _stop(processes, settings.drain_grace_s + 5)


def _listen_address(listen: str) -> tuple[str, int]:
    host, _, port_text = listen.rpartition(":")
    port = int(port_text)
    if port == 0:
        # Workers must share one port: pick it here (gRPC binds with SO_REUSEPORT).
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host.strip("[]"), 0))
            port = int(probe.getsockname()[1])
    return host, port


async def _start_worker(
    settings: Settings,
    global_flags: list[str],
    *,
    index: int,
    host: str,
    port: int,
    env: dict[str, str],
    workdir: Path,
    state_fd: int | None,
) -> asyncio.subprocess.Process:
    args = [sys.executable, "-m", "gateway.workers", *global_flags, "serve", "--workers", "1"]
    args += ["--listen", f"{host}:{port}"]
    args += ["--ready-file", str(workdir / f"worker{index}.ready")]
    if state_fd is not None:
        args += ["--engine-state-fd", str(state_fd)]
    for name in sorted(settings.model_fields_set - _DECIDED):
        value = getattr(settings, name)
        if value is not None and name != "auth_tokens":  # secrets travel in the environment
            args += ["--" + name.replace("_", "-"), str(value)]
    # The upstream URL (in ``env``) may carry credentials (user:pass@, ?token=): the environment,
    # unlike argv, does not show in process lists.
    try:
        return await asyncio.create_subprocess_exec(
            *args, env={**os.environ, **env}, pass_fds=() if state_fd is None else (state_fd,)
        )
    finally:
        if state_fd is not None:
            os.close(state_fd)  # the worker's end: only the worker keeps it open


async def _wait_ready(ready_files: list[Path], processes: list[asyncio.subprocess.Process]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _READY_TIMEOUT_S
    while not all(path.exists() for path in ready_files):
        for process in processes:
            if process.returncode is not None:
                raise WorkerError(
                    f"worker {process.pid} exited with code {process.returncode} while starting"
                )
        if loop.time() > deadline:
            raise WorkerError(f"workers not ready after {_READY_TIMEOUT_S:g} s")
        await asyncio.sleep(0.1)


async def _until_signal_or_exit(processes: list[asyncio.subprocess.Process]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waits = [asyncio.create_task(p.wait()) for p in processes]
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopping, *waits], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if stopping not in done:
        failed = next(p for p in processes if p.returncode is not None)
        raise WorkerError(f"worker {failed.pid} exited with code {failed.returncode}; stopping the others")


async def _stop(processes: list[asyncio.subprocess.Process], grace_s: float) -> None:
    """SIGTERM every worker (each drains), then SIGKILL what is left after the grace period."""
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(grace_s):
            await asyncio.gather(*(p.wait() for p in processes))
    except TimeoutError:
        for process in processes:
            if process.returncode is None:
                logger.warning("worker %d did not stop within %g s: killing it", process.pid, grace_s)
                process.kill()
        await asyncio.gather(*(p.wait() for p in processes))


def die_with_supervisor(supervisor_pid: int) -> None:
    """Have this process get SIGTERM when ``supervisor_pid``, its parent, dies; exit now if it
    already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        threading.Thread(target=_watch_parent, args=(supervisor_pid,), daemon=True).start()
    # The supervisor may have died between starting this process and the prctl call above.
    if os.getppid() != supervisor_pid:
        sys.exit("gateway: error: the supervisor of this worker is gone")


def _watch_parent(supervisor_pid: int) -> None:
    while os.getppid() == supervisor_pid:
        threading.Event().wait(_PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)


def worker_main() -> None:
    """A worker's entry point (``python -m gateway.workers <gateway arguments>``)."""
    from gateway.cli import main

    supervisor = os.environ.pop(SUPERVISOR_ENV, None)
    if supervisor is not None:
        die_with_supervisor(int(supervisor))
    main(sys.argv[1:])


if __name__ == "__main__":
    worker_main()
