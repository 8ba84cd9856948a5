"""Command line: ``gateway serve``, ``gateway engine serve``, ``gateway demo``.

Every setting of :class:`gateway.config.Settings` is a flag of ``serve`` (``--upstream-url``) and
an environment variable (``GATEWAY_UPSTREAM_URL``); a flag wins. Secrets (``DEEPGRAM_API_KEY``,
``GATEWAY_AUTH_TOKENS``) are read from the environment only, so they never show in a process
list. ``--log-level`` and ``--log-format`` are accepted before the command too (``gateway
--log-format json serve``), for every command; after ``serve`` they win over that.
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
import typing
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway import __version__, logs
from gateway.config import SECRET_FIELDS, Settings, accepted, describe_errors, env_name, flag_name, where
from gateway.errors import GatewayError
from gateway.server import GatewayServer

# Flags of every command, given before it; `serve` has its own copies, which win.
_GLOBAL_FIELDS = ("log_level", "log_format")


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.run is _run_serve:
        args.settings = _settings(args)
        level, fmt = args.settings.log_level, args.settings.log_format
    else:
        level, fmt = _global_logging(args)
    logs.configure(level, fmt)
    try:
        args.run(args)
    except KeyboardInterrupt:
        sys.exit(130)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="gRPC gateway for live speech-to-text.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    for name in _GLOBAL_FIELDS:
        parser.add_argument(
            flag_name(name),
            dest="global_" + name,
            default=None,
            metavar=name.upper(),
            help=_help(name),
        )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    secrets = "\n".join(
        f"  {env_name(name):<22}{Settings.model_fields[name].description}" for name in sorted(SECRET_FIELDS)
    )
    serve = commands.add_parser(
        "serve",
        help="serve StreamTranscribe",
        description="Serve StreamTranscribe. Relays to Deepgram when DEEPGRAM_API_KEY is set, to "
        "--upstream-url when given, and otherwise to the embedded offline engine.",
        epilog=f"secrets, from the environment only (never on a command line):\n{secrets}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_settings_flags(serve)
    # Not a setting: how a supervisor (gateway.workers) tells a worker whether the engine serves.
    serve.add_argument("--engine-state-fd", type=int, default=None, help=argparse.SUPPRESS)
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
    # Flags take strings and Settings validates them, so a bad flag and a bad variable get the
    # same one-line error (naming both), not argparse's for one and pydantic's for the other.
    for name in Settings.model_fields:
        if name in SECRET_FIELDS:
            continue
        parser.add_argument(
            flag_name(name),
            dest=name,
            default=None,
            metavar=name.upper(),
            help=_help(name),
        )


def _help(name: str) -> str:
    field = Settings.model_fields[name]
    return f"{field.description} Accepted: {accepted(field)} [env {env_name(name)}; default {field.default}]"


def _settings(args: argparse.Namespace) -> Settings:
    given = {
        name: value
        for name, value in vars(args).items()
        if name in Settings.model_fields and value is not None
    }
    for name in _GLOBAL_FIELDS:
        if name not in given and getattr(args, "global_" + name, None) is not None:
            given[name] = getattr(args, "global_" + name)
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        _fail(f"invalid settings: {describe_errors(exc)}")
    if settings.event_loop == "uvloop" and not _has_uvloop():
        _fail(f"invalid settings: {where('event_loop')}: uvloop is not installed; expected auto or asyncio")
    return settings


def _global_logging(args: argparse.Namespace) -> tuple[str, str]:
    """Log level and format for commands other than serve: the flag before the command, else the
    environment, checked by the same rules as serve's."""
    values: dict[str, str] = {}
    for name in _GLOBAL_FIELDS:
        given = getattr(args, "global_" + name)
        values[name] = given if given is not None else os.environ.get(env_name(name), "")
    try:
        checked = _LoggingOnly.model_validate({k: v for k, v in values.items() if v})
    except ValidationError as exc:
        _fail(f"invalid settings: {describe_errors(exc)}")
    return checked.log_level, checked.log_format


class _LoggingOnly(Settings):
    """Settings for commands that only log: every other variable is not theirs to check."""

    model_config = Settings.model_config | {"env_prefix": "GATEWAY_UNUSED_"}


def _run_serve(args: argparse.Namespace) -> None:
    settings: Settings = args.settings
    if settings.workers > 1:
        from gateway.workers import supervise

        flags = ["--log-level", settings.log_level, "--log-format", settings.log_format]
        try:
            asyncio.run(supervise(settings, flags))
        except GatewayError as exc:
            _fail(str(exc))
        return

    async def serve() -> None:
        async with GatewayServer(settings, engine_state_fd=args.engine_state_fd) as server:
            _tune_gc()
            await _until_signalled(server)

    try:
        _run(serve(), settings.event_loop)
    except GatewayError as exc:
        _fail(str(exc))


def _run(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    if event_loop == "uvloop" or (event_loop == "auto" and _has_uvloop()):
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
