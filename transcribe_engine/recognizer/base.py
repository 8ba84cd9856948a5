"""What the engine needs from a speech recogniser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from transcribe_engine.protocol import ModelInfo, Word


@dataclass(frozen=True, slots=True)
class RecognizerSettings:
    cpu_threads: int = 1
    decode_workers: int = 1
    beam_size_final: int = 5
    beam_size_interim: int = 1


class ChannelRecognizer(Protocol):
    """Decoding state of one audio channel; never called from two threads at once."""

    def decode(self, audio: npt.NDArray[np.float32], *, segment_id: int, final: bool) -> list[Word]:
        """Words in ``audio`` (16 kHz mono), times in seconds from the start of ``audio``.

        Calls for one ``segment_id`` see the same start and growing audio, so a streaming
        backend may feed only what is new; ``final`` is the last call for that segment.
        """
        ...

    def close(self) -> None: ...


class Recognizer(Protocol):
    @property
    def model_info(self) -> ModelInfo: ...

    @property
    def english_only(self) -> bool: ...

    def open_channel(self, language: str) -> ChannelRecognizer: ...
