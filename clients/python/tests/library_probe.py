"""Drives the `transcribe_client` library for tests/clients/test_python_client.py.

`python tests/library_probe.py SCENARIO ADDR CLIP` (from clients/python) runs one scenario
against the gateway at ADDR with the WAV file CLIP and prints one JSON object with what happened.
The tests run it in a child process because the client's generated code and the gateway's both
define `transcribe.v1` in protobuf's default descriptor pool, which one process cannot hold
twice; it lives here, beside the package, so that type-checking `tests/` needs no client on the
path.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from transcribe_client import (
    StreamingConfig,
    StreamTranscribeResponse,
    TranscribeError,
    pb,
    transcribe,
    transcribe_sync,
)
from transcribe_client.audio import pace, parse_wav, split_chunks
from transcribe_client.cli import to_json

Report = dict[str, Any]


def _pcm(clip: Path) -> tuple[bytes, int]:
    data = clip.read_bytes()
    wav = parse_wav(data)
    return data[wav.data_offset : wav.data_offset + wav.data_size], wav.sample_rate


def _config(sample_rate: int) -> StreamingConfig:
    return StreamingConfig(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate=sample_rate)


def _record(responses: list[StreamTranscribeResponse]) -> Report:
    finals = [
        r.result.alternatives[0].transcript
        for r in responses
        if r.WhichOneof("response") == "result" and r.result.is_final and r.result.alternatives
    ]
    return {
        "kinds": [r.WhichOneof("response") for r in responses],
        "transcript": " ".join(finals),
        "json_first": to_json(responses[0]) if responses else None,
    }


async def async_transcribe(addr: str, clip: Path) -> Report:
    pcm, rate = _pcm(clip)
    responses = [r async for r in transcribe(addr, split_chunks(pcm, rate // 10), _config(rate))]
    return _record(responses)


def sync_transcribe(addr: str, clip: Path) -> Report:
    pcm, rate = _pcm(clip)
    responses = list(transcribe_sync(addr, split_chunks(pcm, rate // 10), _config(rate)))
    return _record(responses)


async def async_error(addr: str, clip: Path) -> Report:
    pcm, _ = _pcm(clip)
    try:
        async for _ in transcribe(addr, split_chunks(pcm, 3200), _config(500_000)):
            pass
    except TranscribeError as exc:
        return {"status": exc.status_name, "details": exc.details}
    return {"status": "OK"}


def sync_error(addr: str, clip: Path) -> Report:
    pcm, _ = _pcm(clip)
    try:
        for _ in transcribe_sync(addr, split_chunks(pcm, 3200), _config(500_000)):
            pass
    except TranscribeError as exc:
        return {"status": exc.status_name, "details": exc.details}
    return {"status": "OK"}


async def audio_failure(addr: str, clip: Path) -> Report:
    """The audio source fails after 2 s: results still come, then its exception."""
    pcm, rate = _pcm(clip)

    async def failing() -> AsyncIterator[bytes]:
        for chunk in split_chunks(pcm[: rate * 2 * 2], rate // 10):
            yield chunk
        raise OSError("microphone unplugged")

    responses: list[StreamTranscribeResponse] = []
    try:
        async for response in transcribe(addr, failing(), _config(rate)):
            responses.append(response)  # noqa: PERF401 (kept when the loop raises)
    except OSError as exc:
        return {**_record(responses), "raised": str(exc)}
    return {**_record(responses), "raised": None}


async def pacing(addr: str, clip: Path) -> Report:
    """`pace` releases 1 s of audio over about 1 s (no gateway needed)."""
    pcm, rate = _pcm(clip)
    second = pcm[: rate * 2]
    start = time.monotonic()
    chunks = [c async for c in pace(split_chunks(second, rate // 10), rate * 2)]
    return {"elapsed_s": time.monotonic() - start, "bytes": sum(map(len, chunks))}


SCENARIOS: dict[str, Callable[[str, Path], Report | Coroutine[Any, Any, Report]]] = {
    "async_transcribe": async_transcribe,
    "sync_transcribe": sync_transcribe,
    "async_error": async_error,
    "sync_error": sync_error,
    "audio_failure": audio_failure,
    "pacing": pacing,
}


def main() -> None:
    scenario, addr, clip = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    outcome = SCENARIOS[scenario](addr, clip)
    report = outcome if isinstance(outcome, dict) else asyncio.run(outcome)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
