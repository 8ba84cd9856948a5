"""nginx from Debian's package running a config derived from deploy/nginx/nginx.conf (only the
listen address, upstream servers, pid/log/temp paths and process mode changed), on a free
loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import nginxconf
from tests.support.paths import DEPLOY
from tests.support.processes import free_port, fresh, spawn, stop_process, tail, write
from tests.support.timing import TIMING

NGINX_CONF = DEPLOY / "nginx" / "nginx.conf"
#: How long nginx may take to start.
NGINX_START_S = 10.0


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
        fresh(workdir, pid_file)
        write(config_path, derive_nginx_config(NGINX_CONF.read_text(), workdir, address, replicas))
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
