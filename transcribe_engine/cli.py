"""Command-line flags of the embedded engine, derived from :class:`EngineConfig`'s fields.

Each field ``max_streams`` is the flag ``--max-streams`` and the variable ``ENGINE_MAX_STREAMS``;
a flag wins. Values are validated once, by the model, and a bad one is reported with its flag,
its variable and what is accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
import types
import typing
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from transcribe_engine import lifeline, logs
from transcribe_engine.config import ENV_PREFIX, SECRET_FIELDS, EngineConfig

logger = logging.getLogger(__name__)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _env(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _choices(annotation: Any) -> list[str] | None:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    return None


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field of EngineConfig (the key excepted: environment only)."""
    group = parser.add_argument_group("embedded engine")
    for name, field in EngineConfig.model_fields.items():
        if name in SECRET_FIELDS:
            continue
        default = "see description" if field.default_factory is not None else field.default
        group.add_argument(
            _flag(name),
            dest=name,
            choices=_choices(field.annotation),
            default=None,
            help=f"{field.description} [env {_env(name)}; default {default}]",
        )


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    """The config from flags over ``ENGINE_*`` variables; exits naming every bad value."""
    given = {n: v for n, v in vars(args).items() if n in EngineConfig.model_fields and v is not None}
    try:
        return EngineConfig(**given)
    except ValidationError as exc:
        _fail("; ".join(_explain(error, given) for error in exc.errors()))


def _explain(error: Any, given: dict[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ())]
    name = loc[0] if loc else ""
    if name not in EngineConfig.model_fields:
        return f"invalid engine configuration: {error['msg']}"
    where = _env(name) if name in SECRET_FIELDS else f"{_flag(name)} / {_env(name)}"
    value = given.get(name, os.environ.get(_env(name), ""))
    shown = "***" if name in SECRET_FIELDS else repr(value)
    return f"invalid {where} {shown}: {error['msg']}"


def _fail(message: str) -> NoReturn:
    print(f"engine: error: {message}", file=sys.stderr)
    sys.exit(2)


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
