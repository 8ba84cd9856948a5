"""The engine tests run the real engine on a loopback port over real websockets; the helpers live
in tests/support/engine_client.py. Their names stay importable from here for the test modules
that import them from this file."""

from __future__ import annotations

from tests.support.engine_client import (
    READ_LIMIT_S,
    Transcript,
    normalise,
    read_all,
    running_engine,
    send_audio,
    stream,
    wer,
)

__all__ = [
    "READ_LIMIT_S",
    "Transcript",
    "normalise",
    "read_all",
    "running_engine",
    "send_audio",
    "stream",
    "wer",
]
