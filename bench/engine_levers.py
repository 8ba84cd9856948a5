"""Engine levers measured in-process and not adopted (docs/engine.md, "What the capacity work
bought"): ``python -m bench.engine_levers {encoder,interims,batch}``.

* ``encoder``: one Whisper encoder pass by encoder frames and batch size (one thread).
* ``interims``: how far interims decoded with a shorter encoder minimum are from the final of the
  same audio (word error against it), over prefixes of the corpus clips.
* ``batch``: interims of several streams decoded as one batch against one at a time: the same
  text, and the time per interim.

Prints to stdout; needs ../shared/corpus (it says so in one line and stops without it).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ctranslate2  # type: ignore[import-untyped]  # CTranslate2 ships no type information
import jiwer
import numpy as np
import numpy.typing as npt
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens
from faster_whisper.vad import SpeechTimestampsMap, VadOptions, collect_chunks, get_speech_timestamps

from bench.engine import CORPUS, load_corpus
from transcribe_engine.protocol import Word
from transcribe_engine.recognizer import whisper
from transcribe_engine.recognizer.base import RecognizerSettings

Audio = npt.NDArray[np.float32]
RATE = 16000


def corpus_audio() -> list[Audio]:
    if not (CORPUS / "manifest.tsv").is_file():
        print(f"no corpus at {CORPUS}: these measurements need it", flush=True)
        sys.exit(0)
    return [np.frombuffer(c.pcm, "<i2").astype(np.float32) / 32768.0 for c in load_corpus(CORPUS)]


def prefixes(clips: Sequence[Audio], seconds: Sequence[int]) -> list[Audio]:
    return [clip[: s * RATE] for clip in clips for s in seconds if len(clip) >= s * RATE]


def words_of(decoded: Sequence[Word]) -> str:
    return re.sub(r"[^a-z0-9' ]", "", " ".join(w.text for w in decoded).lower())


def encoder(recognizer: whisper.WhisperRecognizer, clips: Sequence[Audio]) -> None:
    model = recognizer._model  # the shared model, its encoder called directly
    features = np.zeros((80, 3000), np.float32)
    mel = model.feature_extractor(clips[0][: 30 * RATE])
    features[:, : min(mel.shape[1], 3000)] = mel[:, :3000]
    for frames in (500, 600, 800, 1000, 1250, 1500):
        for batch in (1, 2, 4):
            x = np.ascontiguousarray(np.repeat(features[None, :, :frames], batch, axis=0))
            model.model.encode(ctranslate2.StorageView.from_array(x), to_cpu=False)
            start, runs = time.perf_counter(), 5
            for _ in range(runs):
                model.model.encode(ctranslate2.StorageView.from_array(x), to_cpu=False)
            per_item = (time.perf_counter() - start) / runs / batch
            print(f"encoder {frames} frames, batch {batch}: {per_item * 1000:.1f} ms per item", flush=True)


def interims(recognizer: whisper.WhisperRecognizer, clips: Sequence[Audio]) -> None:
    channel = recognizer.open_channel("en")
    cases = prefixes(clips, range(1, 10))
    finals = [words_of(channel.decode(x, segment_id=0, final=True)) for x in cases]
    print(f"{len(cases)} prefixes (1-9 s of each clip)", flush=True)
    for frames in (1000, 800, 700, 600):
        whisper._INTERIM_MIN_FRAMES = frames  # the module's minimum, for this measurement only
        start = time.perf_counter()
        hypotheses = [words_of(channel.decode(x, segment_id=0, final=False)) for x in cases]
        mean_s = (time.perf_counter() - start) / len(cases)
        pairs = [(f, h or "-") for f, h in zip(finals, hypotheses, strict=True) if f]
        error = jiwer.wer([p[0] for p in pairs], [p[1] for p in pairs])
        print(
            f"interim encoder minimum {frames} frames: {error * 100:.1f} % word error against the "
            f"final of the same audio, {mean_s * 1000:.0f} ms per interim",
            flush=True,
        )


@dataclass(frozen=True, slots=True)
class _Prepared:
    features: Audio  # (80, frames): the speech's log-mel, zeros after it, as the encoder gets it
    frames: int
    speech_s: float
    times: SpeechTimestampsMap
    budget: int


class BatchedInterims:
    """The interim pipeline (VAD filter, log-mel, encode, greedy generate), a batch at a time."""

    def __init__(self, recognizer: whisper.WhisperRecognizer) -> None:
        self._model: Any = recognizer._model
        self._tokenizer = Tokenizer(self._model.hf_tokenizer, False, task="transcribe", language="en")
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._suppress = get_suppressed_tokens(self._tokenizer, [-1])

    def _prepare(self, audio: Audio) -> _Prepared | None:
        chunks = get_speech_timestamps(audio, VadOptions())
        if not chunks:
            return None
        pieces, _ = collect_chunks(audio, chunks)
        speech = np.concatenate(pieces)
        mel = self._model.feature_extractor(speech)
        content = mel.shape[-1] - 1
        frames = min(3000, max(content + 100, whisper._INTERIM_MIN_FRAMES))
        frames += frames % 2
        features = np.zeros((80, frames), np.float32)
        features[:, : min(content, frames)] = mel[:, : min(content, frames)]
        return _Prepared(
            features,
            frames,
            len(speech) / RATE,
            SpeechTimestampsMap(chunks, RATE),
            whisper._interim_token_budget(len(audio)),
        )

    def decode(self, audios: Sequence[Audio]) -> list[list[Word]]:
        prepared = [self._prepare(a) for a in audios]
        out: list[list[Word]] = [[] for _ in audios]
        groups: dict[int, list[int]] = {}
        for i, item in enumerate(prepared):
            if item is not None:
                groups.setdefault(item.frames, []).append(i)
        for members in groups.values():
            items = [p for p in (prepared[i] for i in members) if p is not None]
            encoded = self._model.model.encode(
                ctranslate2.StorageView.from_array(np.stack([p.features for p in items])), to_cpu=False
            )
            results = self._model.model.generate(
                encoded,
                [self._prompt] * len(items),
                beam_size=1,
                max_length=len(self._prompt) + max(p.budget for p in items),
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=self._suppress,
            )
            for i, item, result in zip(members, items, results, strict=True):
                out[i] = self._words(item, result)
        return out

    def _words(self, item: _Prepared, result: Any) -> list[Word]:
        tokens = result.sequences_ids[0][: item.budget]
        length = len(result.sequences_ids[0])
        avg_logprob = result.scores[0] * length / (length + 1)
        if result.no_speech_prob > 0.6 and avg_logprob <= -1.0:
            return []
        texts = self._tokenizer.decode([t for t in tokens if t < self._tokenizer.eot]).split()
        if not texts:
            return []
        start, end = item.times.get_original_time(0.0), item.times.get_original_time(item.speech_s)
        step = (end - start) / len(texts)
        confidence = math.exp(min(avg_logprob, 0.0))
        return [Word(t, start + k * step, start + (k + 1) * step, confidence) for k, t in enumerate(texts)]


def batch(recognizer: whisper.WhisperRecognizer, clips: Sequence[Audio]) -> None:
    channel = recognizer.open_channel("en")
    batched = BatchedInterims(recognizer)
    cases = prefixes(clips, (2, 3, 5, 7))
    alone = [words_of(channel.decode(x, segment_id=0, final=False)) for x in cases]
    together = [words_of(w) for w in batched.decode(cases)]
    same = sum(a == b for a, b in zip(alone, together, strict=True))
    print(f"{same} of {len(cases)} prefixes decode to the same text batched and alone", flush=True)
    for size in (1, 2, 4, 8):
        for _ in range(2):  # twice: the machine's noise shows in the spread
            start = time.perf_counter()
            for i in range(0, len(cases), size):
                batched.decode(cases[i : i + size])
            batched_s = time.perf_counter() - start
            start = time.perf_counter()
            for x in cases:
                channel.decode(x, segment_id=0, final=False)
            alone_s = time.perf_counter() - start
            print(
                f"batch of {size}: {batched_s / len(cases) * 1000:.0f} ms per interim batched, "
                f"{alone_s / len(cases) * 1000:.0f} ms alone: {batched_s / alone_s:.2f}x",
                flush=True,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.engine_levers", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("measure", choices=("encoder", "interims", "batch"))
    args = parser.parse_args(argv)
    clips = corpus_audio()
    recognizer = whisper.WhisperRecognizer(model_dir=None, settings=RecognizerSettings())
    {"encoder": encoder, "interims": interims, "batch": batch}[args.measure](recognizer, clips)


if __name__ == "__main__":
    main()
