"""``gateway serve --ready-file`` as a subprocess, for tests and benchmarks: started on a free
loopback port, yielded once it serves (its ready file holds the bound address), stopped by pid
(SIGTERM, then SIGKILL) on exit. No pytest in here, so benchmarks can use it too."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import ROOT
from tests.support.processes import clean_env, fresh, spawn, stop_process, tail
from tests.support.timing import TIMING

#: How long a gateway process may take to start (no engine: imports and a bind).
GATEWAY_START_S = 30.0


class GatewayStartError(RuntimeError):
    """The gateway exited, or never wrote its ready file; the message ends with its log's tail."""


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
    fresh(workdir, ready)
    process = spawn(command, log_path, cwd=cwd, env=clean_env() if env is None else env)
    try:
        deadline = time.monotonic() + start_timeout_s * TIMING
        while not (ready.exists() and ready.read_text().strip()):
            if process.poll() is not None:
                raise GatewayStartError(
                    f"{name} exited with {process.returncode} before serving:\n{tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise GatewayStartError(f"{name} did not write its ready file:\n{tail(log_path)}")
            await asyncio.sleep(0.05)
        yield GatewayProcess(process, ready.read_text().strip(), log_path)
    finally:
        await stop_process(process, grace_s=stop_grace_s)
