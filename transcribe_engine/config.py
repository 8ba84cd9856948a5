"""Configuration of the embedded Deepgram-compatible engine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

RecognizerName = Literal["whisper", "pocketsphinx"]
RECOGNIZERS: tuple[RecognizerName, ...] = ("whisper", "pocketsphinx")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Everything the engine needs to serve; validated on construction."""

    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port
    # None accepts any or no credentials; otherwise Token/Bearer <key> is required.
    api_key: str | None = field(default=None, repr=False)
    recognizer: RecognizerName = "whisper"
    model_dir: Path | None = None  # any CTranslate2 Whisper directory; None = bundled tiny.en
    max_streams: int | None = None  # None = derived from a start-up calibration
    idle_timeout_s: float = 10.0  # NET-0001
    # Threads decoding in parallel; CTranslate2 releases the GIL, so threads use all cores.
    decode_workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    # CTranslate2 intra-op threads per decode.
    cpu_threads: int = 1
    # Deepgram's default endpointing (10 ms) splits Whisper's input mid-phrase; never go below this.
    min_endpointing_ms: int = 300
    # A segment longer than this is closed at the next short pause (speech_final false) ...
    soft_max_segment_s: float = 10.0
    # ... and at this length it is cut at the quietest recent point, pause or not.
    hard_max_segment_s: float = 20.0
    # Audio time between two interim results of one channel, when the decoder keeps up.
    interim_period_s: float = 1.0
    beam_size_final: int = 5
    beam_size_interim: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, not {self.port}")
        if self.recognizer not in RECOGNIZERS:
            raise ValueError(f"recognizer must be one of {RECOGNIZERS}, not {self.recognizer!r}")
        if self.max_streams is not None and self.max_streams < 1:
            raise ValueError("max_streams must be at least 1")
        if self.idle_timeout_s <= 0:
            raise ValueError("idle_timeout_s must be positive")
        if self.decode_workers < 1 or self.cpu_threads < 1:
            raise ValueError("decode_workers and cpu_threads must be at least 1")
        if self.min_endpointing_ms < 0:
            raise ValueError("min_endpointing_ms must not be negative")
        if not 0 < self.soft_max_segment_s <= self.hard_max_segment_s <= 30.0:
            raise ValueError("need 0 < soft_max_segment_s <= hard_max_segment_s <= 30")
        if self.interim_period_s <= 0:
            raise ValueError("interim_period_s must be positive")
        if self.beam_size_final < 1 or self.beam_size_interim < 1:
            raise ValueError("beam sizes must be at least 1")
        if self.model_dir is not None and self.recognizer != "whisper":
            raise ValueError("model_dir only applies to the whisper recognizer")

    def __repr__(self) -> str:
        # The key is never shown; only whether one is set.
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _REPR_FIELDS if name != "api_key")
        key = "'***'" if self.api_key is not None else "None"
        return f"EngineConfig(api_key={key}, {shown})"


_REPR_FIELDS = (
    "host",
    "port",
    "recognizer",
    "model_dir",
    "max_streams",
    "idle_timeout_s",
    "decode_workers",
    "cpu_threads",
    "min_endpointing_ms",
    "soft_max_segment_s",
    "hard_max_segment_s",
    "interim_period_s",
    "beam_size_final",
    "beam_size_interim",
)
