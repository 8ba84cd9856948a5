"""Helpers for the client tests of every language: word recall, client runs, shared constants.

Imported by tests/clients/conftest.py and the test modules. Nothing here imports `gateway` or a
client package: the gateway's and the Python client's generated code both define
`transcribe.v1` in protobuf's default pool and cannot share a process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT, TIMING

__all__ = [
    "CLIENT_TIMEOUT_S",
    "CLIP",
    "ROOT",
    "TIMING",
    "ClientRun",
    "Clip",
    "InterruptClient",
    "RunClient",
    "words",
]

#: The clip every client transcribes: 11 s of clear archival speech, 16 kHz mono linear16.
CLIP = "audio/whisper_jfk.wav"
#: How long one client run may take (times `TIMING`).
CLIENT_TIMEOUT_S = 120.0

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """Lower-case words of `text`, punctuation dropped (apostrophes kept inside words)."""
    return [w.strip("'") for w in _WORD.findall(text.lower()) if w.strip("'")]


@dataclass(frozen=True, slots=True)
class Clip:
    """A corpus clip: the WAV file, its reference transcript and its length."""

    path: Path
    reference: str
    duration_s: float

    @property
    def reference_words(self) -> list[str]:
        """The reference transcript as `words`."""
        return words(self.reference)

    def recall(self, transcript: str) -> float:
        """Share of the reference's words found in `transcript` (order ignored, with counts)."""
        said: dict[str, int] = {}
        for w in words(transcript):
            said[w] = said.get(w, 0) + 1
        found = 0
        for w in self.reference_words:
            if said.get(w, 0) > 0:
                said[w] -= 1
                found += 1
        return found / len(self.reference_words)


@dataclass(frozen=True, slots=True)
class ClientRun:
    """A finished client process."""

    args: Sequence[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """The non-empty stdout lines."""
        return [line for line in self.stdout.splitlines() if line.strip()]

    def describe(self) -> str:
        """The run, for assertion messages."""
        return (
            f"{' '.join(self.args)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


#: `run_client(args, *, env=None, cwd=None, timeout=CLIENT_TIMEOUT_S) -> ClientRun`
RunClient = Callable[..., ClientRun]
#: `interrupt_client(args, *, after_s, env=None, cwd=None, timeout=...) -> ClientRun`
InterruptClient = Callable[..., ClientRun]
