"""Subprocesses for tests and benchmarks: start with output to a file, run to completion in a
thread, stop by pid (SIGTERM, then SIGKILL), and a free loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import ROOT
from tests.support.timing import TIMING


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


def fresh(workdir: Path, stale: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    stale.unlink(missing_ok=True)


def write(path: Path, text: str) -> None:
    path.write_text(text)
