"""Command line: ``gateway serve``, ``gateway engine serve``, ``gateway demo``.

Every setting of :class:`gateway.config.Settings` is a flag (``--upstream-url``) and an
environment variable (``GATEWAY_UPSTREAM_URL``); a flag wins. The Deepgram key is read from the
environment only (``DEEPGRAM_API_KEY``), so it never shows in a process list.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import logging
import os
import signal
import sys
import types
import typing
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway import __version__, logs
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.server import GatewayServer

# Secrets come from the environment only, never from argv (visible in process lists).
_SECRET_FIELDS = frozenset({"deepgram_api_key", "auth_tokens"})


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    try:
        args.run(args)
    except KeyboardInterrupt:
        sys.exit(130)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="gRPC gateway for live speech-to-text.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("GATEWAY_LOG_LEVEL", "INFO").upper(),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level [env GATEWAY_LOG_LEVEL; default INFO]",
    )
    parser.add_argument(
        "--log-format",
        default=os.environ.get("GATEWAY_LOG_FORMAT", "text"),
        choices=["text", "json"],
        help="text for people, or one JSON object per line [env GATEWAY_LOG_FORMAT; default text]",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve StreamTranscribe",
        description="Serve StreamTranscribe. Relays to Deepgram when DEEPGRAM_API_KEY is set, to "
        "--upstream-url when given, and otherwise to the embedded offline engine.",
    )
    _add_settings_flags(serve)
    serve.add_argument(
        "--event-loop",
        choices=["uvloop", "asyncio"],
        default=os.environ.get("GATEWAY_EVENT_LOOP", "uvloop" if _has_uvloop() else "asyncio"),
        help="the asyncio event loop implementation [env GATEWAY_EVENT_LOOP; default uvloop when installed]",
    )
    serve.set_defaults(run=_run_serve)

    demo = commands.add_parser(
        "demo", help="serve with the embedded engine and transcribe a sample through the gateway"
    )
    demo.add_argument(
        "--file",
        type=Path,
        default=None,
        help="a 16-bit PCM WAV file (default: the bundled sample)",
    )
    demo.add_argument(
        "--fast", action="store_true", help="send the audio as fast as possible, not in real time"
    )
    demo.set_defaults(run=_run_demo)

    engine = commands.add_parser("engine", help="the embedded Deepgram-compatible engine")
    engine_commands = engine.add_subparsers(required=True, metavar="COMMAND")
    engine_serve = engine_commands.add_parser("serve", help="serve /v1/listen standalone")
    try:
        from transcribe_engine.cli import add_engine_arguments
    except ImportError as exc:
        missing = f"the embedded engine is not installed ({exc}): install the `engine` extra"
        engine_serve.set_defaults(run=lambda _args: _fail(missing))
    else:
        add_engine_arguments(engine_serve)
        engine_serve.set_defaults(run=_run_engine)
    return parser


def _has_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    for name, field in Settings.model_fields.items():
        if name in _SECRET_FIELDS:
            continue
        kind, choices = _flag_type(field.annotation)
        env = f"GATEWAY_{name.upper()}"
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            choices=choices,
            default=None,
            help=f"{field.description} [env {env}; default {field.default}]",
        )


def _flag_type(annotation: Any) -> tuple[Any, list[str] | None]:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Literal:
        return str, list(typing.get_args(annotation))
    return (annotation if annotation in (int, float, Path) else str), None


def _settings(args: argparse.Namespace) -> Settings:
    given = {
        name: value
        for name, value in vars(args).items()
        if name in Settings.model_fields and value is not None
    }
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        _fail(f"invalid settings: {problems}")
        raise AssertionError from exc  # unreachable


def _run_serve(args: argparse.Namespace) -> None:
    settings = _settings(args)
    if settings.workers > 1:
        from gateway.workers import supervise

        flags = ["--log-level", args.log_level, "--log-format", args.log_format]
        try:
            asyncio.run(supervise(settings, flags))
        except GatewayError as exc:
            _fail(str(exc))
        return

    async def serve() -> None:
        async with GatewayServer(settings) as server:
            _tune_gc()
            await _until_signalled(server)

    try:
        _run(serve(), args.event_loop)
    except GatewayError as exc:
        _fail(str(exc))


def _run(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    if event_loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


def _tune_gc() -> None:
    """Relaying allocates many short-lived, acyclic objects (frames, messages) that reference
    counting frees at once; frequent young-generation collections find nothing to collect and
    cost about a tenth of the CPU. Collect less often, and never scan what start-up built."""
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


async def _until_signalled(server: GatewayServer) -> None:
    """Serve until SIGTERM or SIGINT, then drain; a second signal stops at once."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            logging.getLogger(__name__).warning("second signal: stopping without waiting")
            main.cancel()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    terminated = asyncio.create_task(server.wait_for_termination())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait((terminated, stopping), return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        await server.drain()
    terminated.cancel()
    stopping.cancel()


def _run_engine(args: argparse.Namespace) -> None:
    from transcribe_engine.cli import engine_config_from_args, run_engine

    asyncio.run(run_engine(engine_config_from_args(args)))


def _run_demo(args: argparse.Namespace) -> None:
    from gateway.demo import run_demo

    try:
        asyncio.run(run_demo(args.file, fast=args.fast))
    except GatewayError as exc:
        _fail(str(exc))


def _fail(message: str) -> typing.NoReturn:
    print(f"gateway: error: {message}", file=sys.stderr)
    sys.exit(2)
