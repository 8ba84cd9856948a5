"""pocketsphinx backend: a true streaming decoder, fed only the audio it has not seen yet.

Light (RTF ~0.16 on this machine, no beam re-runs) but far less accurate than Whisper; the
model (CMU US English) ships inside the pocketsphinx wheel.
"""

from __future__ import annotations

import re
from importlib import metadata

import numpy as np
import numpy.typing as npt
import pocketsphinx

from transcribe_engine.protocol import ModelInfo, Word
from transcribe_engine.recognizer.base import ChannelRecognizer, RecognizerSettings

_FRAME_S = 0.01  # pocketsphinx reports 100 frames per second
_ALTERNATE = re.compile(r"\(\d+\)$")  # "want(2)": second pronunciation of "want"


def _is_filler(word: str) -> bool:
    return word.startswith(("<", "[", "+")) or not word


class PocketsphinxRecognizer:
    def __init__(self, *, settings: RecognizerSettings) -> None:
        self._settings = settings
        self._model_info = ModelInfo(
            name="pocketsphinx-en-us",
            version=f"pocketsphinx-{metadata.version('pocketsphinx')}",
            arch="pocketsphinx",
        )
        # Load once up front so a broken install fails at start-up, not on the first stream.
        pocketsphinx.Decoder(samprate=16000, loglevel="FATAL")

    @property
    def model_info(self) -> ModelInfo:
        return self._model_info

    @property
    def english_only(self) -> bool:
        return True

    def open_channel(self, language: str) -> ChannelRecognizer:
        return _SphinxChannel()


class _SphinxChannel:
    def __init__(self) -> None:
        self._decoder: pocketsphinx.Decoder | None = None
        self._segment_id: int | None = None
        self._fed = 0  # samples of the current segment already given to the decoder

    def _decoder_for(self, segment_id: int) -> pocketsphinx.Decoder:
        if self._decoder is None:
            # Created lazily in the worker thread: loading takes ~0.3 s.
            self._decoder = pocketsphinx.Decoder(samprate=16000, loglevel="FATAL")
        if self._segment_id != segment_id:
            if self._segment_id is not None:
                self._decoder.end_utt()
            self._decoder.start_utt()
            self._segment_id = segment_id
            self._fed = 0
        return self._decoder

    def decode(self, audio: npt.NDArray[np.float32], *, segment_id: int, final: bool) -> list[Word]:
        decoder = self._decoder_for(segment_id)
        new = audio[self._fed :]
        if len(new):
            pcm = (np.clip(new, -1.0, 1.0) * 32767).astype("<i2").tobytes()
            decoder.process_raw(pcm, no_search=False, full_utt=False)
            self._fed = len(audio)
        if final:
            decoder.end_utt()
            self._segment_id = None
            return self._words(decoder)
        hypothesis = decoder.hyp()
        if hypothesis is None or not hypothesis.hypstr:
            return []
        # Partial hypotheses carry no word times; spread them over the audio seen so far.
        tokens = hypothesis.hypstr.split()
        step = len(audio) / 16000 / len(tokens)
        return [Word(t, i * step, (i + 1) * step, 0.5) for i, t in enumerate(tokens)]

    @staticmethod
    def _words(decoder: pocketsphinx.Decoder) -> list[Word]:
        words: list[Word] = []
        for segment in decoder.seg():
            if _is_filler(segment.word):
                continue
            words.append(
                Word(
                    _ALTERNATE.sub("", segment.word),
                    segment.start_frame * _FRAME_S,
                    (segment.end_frame + 1) * _FRAME_S,
                    float(min(1.0, max(0.0, segment.prob))),
                )
            )
        return words

    def close(self) -> None:
        if self._decoder is not None and self._segment_id is not None:
            self._decoder.end_utt()
        self._decoder = None
        self._segment_id = None
