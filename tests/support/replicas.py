"""Gateway replicas behind a real nginx, for the clients' rolling-restart tests (no fixtures).

    with engine_process(workdir) as engine_url:
        with replica_fleet(workdir, nginx, engine_url) as fleet:
            ...  # clients connect to fleet.address (nginx)
            fleet.terminate_serving()  # SIGTERM the replica with an open stream: it drains

- `engine_process`: one `python -m transcribe_engine serve` on a free loopback port; yields its
  `ws://` URL. Every replica relays to it (`--upstream-url`), so the fleet loads one model, not
  one per replica (the machine has two cores).
- `replica_fleet`: `count` `gateway serve` processes (each with `--metrics-listen`, to see which
  one serves a stream) and nginx running `deploy/nginx/nginx.conf` with only its listen
  address, upstream servers, pid/log/temp paths and process mode changed, as
  tests/deploy/test_scale_out.py runs it.
- `find_tool`: nginx from `.tools/bin` (`bash tools/install-ops-tools.sh`), PATH or /usr/sbin.

Every process is started here and stopped here, by its pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.nginx import derive_nginx_config
from tests.support.ops_tools import find_ops_tool
from tests.support.paths import ROOT
from tests.support.timing import TIMING

NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
#: The engine loads its model and measures its capacity before it serves.
ENGINE_START_S = 180.0
GATEWAY_START_S = 30.0
NGINX_START_S = 10.0

_ACTIVE = re.compile(r"^gateway_active_sessions(?:\{[^}]*\})?\s+([0-9.e+]+)$", re.MULTILINE)


class FleetError(RuntimeError):
    """A process of the fleet did not start or did not do what was asked in time."""


def find_tool(name: str) -> str | None:
    """The path of an ops tool (`.tools/bin`, then PATH, then /usr/sbin), or None."""
    return find_ops_tool(name)


def free_port() -> int:
    """A loopback port free right now (a caller that loses it to another process retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This environment without gateway settings or a Deepgram key (the fleet sets its own)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "ENGINE_")) and k != "DEEPGRAM_API_KEY"
    }


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path.name}: nothing written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop(process: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`; only if it still runs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s * TIMING)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _spawn(command: Sequence[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            list(command), cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )


def _wait_ready(process: subprocess.Popen[bytes], ready: Path, log: Path, name: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s * TIMING
    while not (ready.exists() and ready.read_text().strip()):
        if process.poll() is not None:
            raise FleetError(f"{name} exited with {process.returncode} before serving:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise FleetError(f"{name} did not get ready in {timeout_s} s:\n{tail(log)}")
        time.sleep(0.05)
    return ready.read_text().strip()


@contextlib.contextmanager
def engine_process(workdir: Path, python: str = sys.executable) -> Iterator[str]:
    """`python -m transcribe_engine serve` on a free loopback port; yields its ws:// URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready, log = workdir / "engine.ready", workdir / "engine.log"
    ready.unlink(missing_ok=True)
    process = _spawn(
        [python, "-m", "transcribe_engine", "serve", "--listen", "127.0.0.1:0", "--ready-file", str(ready)],
        log,
        ROOT,
    )
    try:
        yield _wait_ready(process, ready, log, "the engine", ENGINE_START_S)
    finally:
        stop(process)


@dataclass
class Replica:
    """One `gateway serve` process of the fleet."""

    name: str
    process: subprocess.Popen[bytes]
    address: str
    metrics_url: str
    log_path: Path

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def active_sessions(self) -> int:
        """Its `gateway_active_sessions` gauge (0 once it has exited)."""
        if not self.running:
            return 0
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return 0
        found = _ACTIVE.search(text)
        return int(float(found.group(1))) if found else 0


@dataclass
class Fleet:
    """Replicas behind nginx; clients connect to `address`."""

    address: str
    replicas: list[Replica]
    nginx: subprocess.Popen[bytes]
    access_log: Path
    terminated: list[Replica] = field(default_factory=list)

    def serving(self, timeout_s: float = 30.0) -> Replica:
        """The one replica with an open stream (waits until exactly one has some)."""
        deadline = time.monotonic() + timeout_s * TIMING
        while True:
            busy = [r for r in self.replicas if r.active_sessions() > 0]
            if len(busy) == 1:
                return busy[0]
            if time.monotonic() > deadline:
                raise FleetError(f"expected one replica serving, found {[r.name for r in busy]}")
            time.sleep(0.05)

    def terminate_serving(self, timeout_s: float = 30.0) -> Replica:
        """SIGTERMs the replica serving the open stream (it drains: see the README) and returns it."""
        replica = self.serving(timeout_s)
        replica.process.send_signal(signal.SIGTERM)
        self.terminated.append(replica)
        return replica

    def wait_exited(self, replica: Replica, timeout_s: float = 60.0) -> int:
        """The replica's exit code, once it has drained and exited."""
        try:
            return replica.process.wait(timeout=timeout_s * TIMING)
        except subprocess.TimeoutExpired as exc:
            raise FleetError(f"{replica.name} did not exit:\n{tail(replica.log_path)}") from exc


def _start_replica(workdir: Path, name: str, engine_url: str, python: str, flags: Sequence[str]) -> Replica:
    ready, log = workdir / f"{name}.ready", workdir / f"{name}.log"
    ready.unlink(missing_ok=True)
    metrics_port = free_port()
    command = [
        python, "-m", "gateway", "serve", "--listen", "127.0.0.1:0", "--ready-file", str(ready),
        "--upstream-url", engine_url, "--metrics-listen", f"127.0.0.1:{metrics_port}", *flags,
    ]  # fmt: skip
    process = _spawn(command, log, ROOT)
    try:
        address = _wait_ready(process, ready, log, name, GATEWAY_START_S)
    except BaseException:
        stop(process)
        raise
    return Replica(name, process, address, f"http://127.0.0.1:{metrics_port}/metrics", log)


def _start_nginx(nginx: str, workdir: Path, upstreams: Sequence[str]) -> tuple[subprocess.Popen[bytes], str]:
    workdir.mkdir(parents=True, exist_ok=True)
    error_log, pid_file, config = workdir / "error.log", workdir / "nginx.pid", workdir / "nginx.conf"
    for _attempt in range(3):
        address = f"127.0.0.1:{free_port()}"
        pid_file.unlink(missing_ok=True)
        config.write_text(derive_nginx_config(NGINX_CONF.read_text(), workdir, address, upstreams))
        process = _spawn(
            [nginx, "-p", str(workdir), "-c", str(config), "-e", str(error_log)],
            workdir / "nginx.out",
            workdir,
        )
        deadline = time.monotonic() + NGINX_START_S * TIMING
        # nginx writes its pid file once its listening sockets are bound.
        while not pid_file.exists() and process.poll() is None:
            if time.monotonic() > deadline:
                stop(process)
                raise FleetError(f"nginx did not start:\n{tail(error_log)}")
            time.sleep(0.02)
        if process.poll() is None:
            return process, address
        if "Address already in use" not in tail(error_log):
            raise FleetError(f"nginx exited with {process.returncode}:\n{tail(error_log)}")
    raise FleetError(f"nginx found no free port in 3 attempts:\n{tail(error_log)}")


@contextlib.contextmanager
def replica_fleet(
    workdir: Path,
    nginx: str,
    engine_url: str,
    *,
    count: int = 2,
    python: str = sys.executable,
    drain_grace_s: float = 30.0,
    flags: Sequence[str] = (),
) -> Iterator[Fleet]:
    """`count` gateway replicas relaying to `engine_url`, behind nginx; stops them all on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    replicas: list[Replica] = []
    nginx_process: subprocess.Popen[bytes] | None = None
    try:
        replica_flags = ["--drain-grace-s", str(drain_grace_s), *flags]
        for i in range(count):
            replicas.append(_start_replica(workdir, f"replica{i}", engine_url, python, replica_flags))  # noqa: PERF401 (stopped in finally even if a later one fails)
        nginx_process, address = _start_nginx(nginx, workdir / "nginx", [r.address for r in replicas])
        yield Fleet(address, replicas, nginx_process, workdir / "nginx" / "access.log")
    finally:
        if nginx_process is not None:
            stop(nginx_process)
        for replica in replicas:
            stop(replica.process)
