"""Run the deployment pieces for real: gateway processes, nginx from deploy/, grpcurl, probes.

- `gateway_process(workdir, *flags)`: ``python -m gateway serve`` as a subprocess on a free
  loopback port (``--ready-file``); yields a :class:`GatewayProcess` once it serves, and stops it
  (SIGTERM, then SIGKILL, by pid) on exit.
- `nginx_process(nginx, workdir, replicas)`: nginx from Debian's package running a config derived
  from ``deploy/nginx/nginx.conf`` (only listen address, upstream servers, pid/log/temp paths and
  process mode changed), on a free loopback port.
- `nginx_bin`, `grpcurl_bin`, `health_probe_bin`: the tools ``tools/install-ops-tools.sh`` puts
  in ``.tools/bin``. A missing tool fails the test under ``make test`` and CI and skips it elsewhere,
  naming the install command.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, TIMING
from tests.deploy import nginxconf

DEPLOY = ROOT / "deploy"
NGINX_CONF = DEPLOY / "nginx" / "nginx.conf"
TOOLS_BIN = ROOT / ".tools" / "bin"
INSTALL_HINT = "run tools/install-ops-tools.sh"

#: How long a gateway process may take to start (no engine: imports and a bind).
GATEWAY_START_S = 30.0
#: How long nginx may take to start.
NGINX_START_S = 10.0


def _tools_required() -> bool:
    """`make test` installs the ops tools first and sets TESTS_REQUIRE_OPS_TOOLS; so does CI."""
    return any(
        os.environ.get(var, "").lower() in {"1", "true", "yes"} for var in ("CI", "TESTS_REQUIRE_OPS_TOOLS")
    )


def ops_tool(name: str) -> str:
    """The path of an ops tool; fails under `make test` and CI, skips elsewhere, when it is missing."""
    candidates = [TOOLS_BIN / name]
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    candidates.append(Path("/usr/sbin") / name)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    reason = f"{name} is not installed ({INSTALL_HINT})"
    if _tools_required():
        pytest.fail(f"{reason}; make test installs it before the tests (tools/install-ops-tools.sh)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    return ops_tool("nginx")


@pytest.fixture(scope="session")
def grpcurl_bin() -> str:
    return ops_tool("grpcurl")


@pytest.fixture(scope="session")
def health_probe_bin() -> str:
    return ops_tool("grpc_health_probe")


def free_port() -> int:
    """A loopback port free right now (the caller retries if another process takes it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path.name} is empty)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any gateway setting or Deepgram key, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") and k != "DEEPGRAM_API_KEY"}
    env.update(extra)
    return env


@dataclass(frozen=True, slots=True)
class Completed:
    """A finished command."""

    args: Sequence[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"{' '.join(self.args)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


async def run(
    args: Sequence[str],
    *,
    timeout_s: float = 30.0,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> Completed:
    """Runs a command to completion in a thread (the event loop keeps serving meanwhile)."""
    done = await asyncio.to_thread(
        subprocess.run,
        list(args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s * TIMING,
        check=False,
        cwd=ROOT,
        env=env,
    )
    return Completed(list(args), done.returncode, done.stdout, done.stderr)


async def stop_process(process: subprocess.Popen[bytes], *, grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; by pid, and only if it still runs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, grace_s * TIMING)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


async def wait_for_exit(process: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """The exit code, or None if the process still runs after ``timeout_s``."""
    try:
        return await asyncio.to_thread(process.wait, timeout_s)
    except subprocess.TimeoutExpired:
        return None


def spawn(
    command: Sequence[str], output: Path, *, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Starts ``command`` with stdout and stderr appended to ``output``; returns at once."""
    with output.open("ab") as out:
        return subprocess.Popen(
            list(command), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )


def _fresh(workdir: Path, stale: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    stale.unlink(missing_ok=True)


def _write(path: Path, text: str) -> None:
    path.write_text(text)


# --- the gateway ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayProcess:
    """A running ``gateway serve`` subprocess."""

    process: subprocess.Popen[bytes]
    address: str
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.asynccontextmanager
async def gateway_process(
    workdir: Path,
    *flags: str,
    env: dict[str, str] | None = None,
    global_flags: Sequence[str] = (),
    name: str = "gateway",
    stop_grace_s: float = 20.0,
    program: Sequence[str] = (sys.executable, "-m", "gateway"),
    cwd: Path = ROOT,
    start_timeout_s: float = GATEWAY_START_S,
) -> AsyncIterator[GatewayProcess]:
    """``python -m gateway [global_flags] serve --listen 127.0.0.1:0 --ready-file ... flags``,
    from the repository (or, with ``program`` and ``cwd`` elsewhere, an installed copy)."""
    ready = workdir / f"{name}.ready"
    log_path = workdir / f"{name}.log"
    command = [
        *program, *global_flags, "serve",
        "--listen", "127.0.0.1:0", "--ready-file", str(ready), *flags,
    ]  # fmt: skip
    _fresh(workdir, ready)
    process = spawn(command, log_path, cwd=cwd, env=clean_env() if env is None else env)
    try:
        deadline = time.monotonic() + start_timeout_s * TIMING
        while not (ready.exists() and ready.read_text().strip()):
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode} before serving:\n{tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not write its ready file:\n{tail(log_path)}")
            await asyncio.sleep(0.05)
        yield GatewayProcess(process, ready.read_text().strip(), log_path)
    finally:
        await stop_process(process, grace_s=stop_grace_s)


# --- nginx ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NginxProcess:
    """nginx running a config derived from deploy/nginx/nginx.conf."""

    process: subprocess.Popen[bytes]
    address: str
    config_path: Path
    access_log: Path
    error_log: Path


def derive_nginx_config(source: str, workdir: Path, address: str, replicas: Sequence[str]) -> str:
    """deploy/nginx/nginx.conf with what a test must change: the listen address, the upstream
    servers (each keeps the parameters of the deployed first server line), pid, logs and temp
    paths under ``workdir``, and nginx in the foreground as one process."""
    root = nginxconf.parse(source)
    assert root.block is not None
    top = [d for d in root.block if d.name not in {"user", "pid", "error_log", "daemon", "master_process"}]
    top[:0] = [
        nginxconf.Directive("daemon", ["off"]),
        # One process: no workers switching to another user, nothing left behind its pid.
        nginxconf.Directive("master_process", ["off"]),
        nginxconf.Directive("pid", [str(workdir / "nginx.pid")]),
        nginxconf.Directive("error_log", [str(workdir / "error.log"), "info"]),
    ]
    root.block = top
    http = root.child("http")
    assert http.block is not None
    for log in http.children("access_log"):
        log.args[0] = str(workdir / "access.log")
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        http.block.append(nginxconf.Directive(f"{temp}_temp_path", [str(workdir / f"{temp}_temp")]))
    upstream = http.child("upstream")
    assert upstream.block is not None
    deployed = upstream.children("server")
    params = deployed[0].args[1:] if deployed else []
    servers = [nginxconf.Directive("server", [address, *params]) for address in replicas]
    first = upstream.block.index(deployed[0]) if deployed else 0
    kept = [d for d in upstream.block if d.name != "server"]
    upstream.block = kept[:first] + servers + kept[first:]
    server = http.child("server")
    server.child("listen").args[0] = address  # its parameters (http2) stay
    return nginxconf.render(root)


@contextlib.asynccontextmanager
async def nginx_process(nginx: str, workdir: Path, replicas: Sequence[str]) -> AsyncIterator[NginxProcess]:
    """nginx balancing over ``replicas`` (HOST:PORT), listening on a free loopback port."""
    error_log = workdir / "error.log"
    config_path = workdir / "nginx.conf"
    pid_file = workdir / "nginx.pid"
    for _attempt in range(3):
        address = f"127.0.0.1:{free_port()}"
        _fresh(workdir, pid_file)
        _write(config_path, derive_nginx_config(NGINX_CONF.read_text(), workdir, address, replicas))
        process = spawn(
            [nginx, "-p", str(workdir), "-c", str(config_path), "-e", str(error_log)],
            workdir / "nginx.out",
            cwd=workdir,
        )
        try:
            # nginx writes its pid file after it has bound its listening sockets.
            deadline = time.monotonic() + NGINX_START_S * TIMING
            while not pid_file.exists() and process.poll() is None:
                if time.monotonic() > deadline:
                    pytest.fail(f"nginx did not start:\n{tail(error_log)}")
                await asyncio.sleep(0.02)
            if process.poll() is not None:
                if "Address already in use" in tail(error_log):
                    continue  # another process took the port in between: pick another
                pytest.fail(f"nginx exited with {process.returncode}:\n{tail(error_log)}")
            yield NginxProcess(process, address, config_path, workdir / "access.log", error_log)
            return
        finally:
            await stop_process(process)
    pytest.fail(f"nginx found no free port in 3 attempts:\n{tail(error_log)}")
