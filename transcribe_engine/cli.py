"""Command-line flags of the embedded engine; each also reads an ``ENGINE_*`` variable."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from transcribe_engine import lifeline, logs
from transcribe_engine.config import RECOGNIZERS, EngineConfig

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _env(name: str, convert: Callable[[str], T], default: T) -> T:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return convert(raw)
    except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
        raise SystemExit(f"invalid {name}={raw!r}: {exc}") from exc


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, not {value}")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _model_dir(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not (path / "model.bin").is_file():
        raise argparse.ArgumentTypeError(f"{path} is not a CTranslate2 Whisper model directory")
    return path


def _recognizer(raw: str) -> str:
    if raw not in RECOGNIZERS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(RECOGNIZERS)}")
    return raw


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the engine's flags; defaults come from ENGINE_* variables, then EngineConfig."""
    defaults = EngineConfig()
    group = parser.add_argument_group("embedded engine")
    group.add_argument(
        "--engine-host",
        default=_env("ENGINE_HOST", str, defaults.host),
        help="address to listen on (ENGINE_HOST, default %(default)s)",
    )
    group.add_argument(
        "--engine-port",
        type=_port,
        default=_env("ENGINE_PORT", _port, defaults.port),
        help="port, 0 picks a free one (ENGINE_PORT, default %(default)s)",
    )
    group.add_argument(
        "--engine-api-key",
        default=_env("ENGINE_API_KEY", str, None),
        help="require 'Authorization: Token <key>' (ENGINE_API_KEY; default: accept any)",
    )
    group.add_argument(
        "--engine-recognizer",
        type=_recognizer,
        default=_env("ENGINE_RECOGNIZER", _recognizer, str(defaults.recognizer)),
        help="whisper or pocketsphinx (ENGINE_RECOGNIZER, default %(default)s)",
    )
    group.add_argument(
        "--engine-model-dir",
        type=_model_dir,
        default=_env("ENGINE_MODEL_DIR", _model_dir, None),
        help="a CTranslate2 Whisper model directory (ENGINE_MODEL_DIR; default: bundled tiny.en)",
    )
    group.add_argument(
        "--engine-max-streams",
        type=_positive_int,
        default=_env("ENGINE_MAX_STREAMS", _positive_int, None),
        help="concurrent streams admitted (ENGINE_MAX_STREAMS; default: measured at start-up)",
    )
    group.add_argument(
        "--engine-idle-timeout",
        type=_positive_float,
        default=_env("ENGINE_IDLE_TIMEOUT", _positive_float, defaults.idle_timeout_s),
        help="seconds without any frame before close 1011 NET-0001 "
        "(ENGINE_IDLE_TIMEOUT, default %(default)s)",
    )
    group.add_argument(
        "--engine-decode-workers",
        type=_positive_int,
        default=_env("ENGINE_DECODE_WORKERS", _positive_int, defaults.decode_workers),
        help="decodes run in parallel (ENGINE_DECODE_WORKERS, default: CPU count %(default)s)",
    )
    group.add_argument(
        "--engine-cpu-threads",
        type=_positive_int,
        default=_env("ENGINE_CPU_THREADS", _positive_int, defaults.cpu_threads),
        help="threads per decode (ENGINE_CPU_THREADS, default %(default)s)",
    )
    group.add_argument(
        "--engine-min-endpointing-ms",
        type=int,
        default=_env("ENGINE_MIN_ENDPOINTING_MS", int, defaults.min_endpointing_ms),
        help="floor for the endpointing option (ENGINE_MIN_ENDPOINTING_MS, default %(default)s)",
    )


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    try:
        return EngineConfig(
            host=args.engine_host,
            port=args.engine_port,
            api_key=args.engine_api_key,
            recognizer=args.engine_recognizer,
            model_dir=args.engine_model_dir,
            max_streams=args.engine_max_streams,
            idle_timeout_s=args.engine_idle_timeout,
            decode_workers=args.engine_decode_workers,
            cpu_threads=args.engine_cpu_threads,
            min_endpointing_ms=args.engine_min_endpointing_ms,
        )
    except ValueError as exc:
        raise SystemExit(f"invalid engine configuration: {exc}") from exc


async def run_engine(
    config: EngineConfig,
    *,
    ready_file: Path | None = None,
    listen_fd: int | None = None,
    parent_pid: int | None = None,
    print_url: bool = False,
) -> None:
    """Serve until cancelled; the URL is logged (and written to ``ready_file``) once listening.

    ``listen_fd`` is a listening socket inherited from a supervisor; ``parent_pid`` ends the
    engine when that process goes.
    """
    from transcribe_engine.server import EngineServer

    sock = socket.socket(fileno=listen_fd) if listen_fd is not None else None
    async with EngineServer(config, sock=sock) as server:
        logger.info("embedded engine listening on %s (max_streams=%d)", server.url, server.max_streams)
        if print_url:
            # A supervisor reads this line to learn that the engine serves.
            print(server.url, flush=True)
        if ready_file is not None:
            # Write then rename, so a watcher never reads half a URL.
            partial = ready_file.with_name(ready_file.name + ".partial")
            partial.write_text(server.url + "\n")
            partial.replace(ready_file)
        if parent_pid is None:
            await server.serve_forever()
            return
        serving = asyncio.ensure_future(server.serve_forever())
        orphaned = asyncio.ensure_future(lifeline.watch_parent(parent_pid))
        try:
            await asyncio.wait((serving, orphaned), return_when=asyncio.FIRST_COMPLETED)
        finally:
            serving.cancel()
            orphaned.cancel()
            await asyncio.gather(serving, orphaned, return_exceptions=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m transcribe_engine serve``: the engine on its own, or as a supervised child."""
    parser = argparse.ArgumentParser(prog="python -m transcribe_engine")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve /v1/listen")
    add_engine_arguments(serve_parser)
    serve_parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    serve_parser.add_argument("--log-format", choices=["text", "json"], default="text")
    serve_parser.add_argument(
        "--ready-file", type=Path, default=None, help="write the ws:// URL here once serving"
    )
    serve_parser.add_argument(
        "--listen-fd", type=int, default=None, help="serve on this inherited listening socket"
    )
    serve_parser.add_argument(
        "--print-url", action="store_true", help="print the ws:// URL on stdout once serving"
    )
    serve_parser.add_argument(
        "--parent-pid", type=int, default=None, help="stop when this (supervising) process exits"
    )
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    if args.parent_pid is not None:
        lifeline.die_with_parent(args.parent_pid)
    config = engine_config_from_args(args)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_engine(
                config,
                ready_file=args.ready_file,
                listen_fd=args.listen_fd,
                parent_pid=args.parent_pid,
                print_url=args.print_url,
            )
        )
