"""Writes the shared client test vectors in this folder (see README.md for their format).

    .venv/bin/python clients/testdata/generate.py          # rewrite them
    .venv/bin/python clients/testdata/generate.py --check  # exit 1 if a file would change

Everything is derived from the rules in README.md by code that shares nothing with any client,
so the vectors check the clients rather than repeat them. `responses/recorded.jsonl` is the one
input not made here: a real stream, recorded once from the gateway with the embedded engine
(see README.md); its expected outputs are derived from it here.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import struct
import sys
import wave
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2, status_pb2
from transcribe.v1 import transcribe_pb2 as pb

HERE = Path(__file__).resolve().parent
CHUNK_MS = 50
FALLBACK_BYTES_PER_SECOND = 16_000
DOMAIN = "transcribe.gateway"
INTERIM_PREFIX = "~ "


# --- WAV files ------------------------------------------------------------------------------


def _tone(frames: int, channels: int, width: int, rate: int) -> bytes:
    """A quiet 440 Hz tone (the samples' values do not matter; only their layout does)."""
    out = bytearray()
    for i in range(frames):
        value = int(3000 * math.sin(2 * math.pi * 440 * i / rate))
        for _ in range(channels):
            if width == 1:
                out += struct.pack("<B", (value >> 8) + 128)
            else:
                out += struct.pack("<h", value)
    return bytes(out)


def _wave_file(channels: int, width: int, rate: int, frames: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(_tone(frames, channels, width, rate))
    return buffer.getvalue()


def _riff(
    chunks: list[tuple[bytes, bytes]], riff_size: int | None = None, data_size: int | None = None
) -> bytes:
    body = b"WAVE"
    for chunk_id, payload in chunks:
        size = data_size if chunk_id == b"data" and data_size is not None else len(payload)
        body += chunk_id + struct.pack("<I", size) + payload + (b"\0" if len(payload) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def _fmt(tag: int, channels: int, rate: int, bits: int, extensible_sub: int | None = None) -> bytes:
    align = channels * bits // 8
    base = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if extensible_sub is None:
        return base
    # cbSize 22, valid bits, channel mask, then the sub-format GUID (xxxx0000-0000-0010-8000-00aa00389b71).
    guid = struct.pack("<H", extensible_sub) + bytes.fromhex("000000001000800000aa00389b71")
    return base + struct.pack("<HHI", 22, bits, 0x4 if channels == 1 else 0x3) + guid


def wav_files() -> dict[str, bytes]:
    """name -> bytes of every WAV (and one non-WAV) input."""
    pcm_mono = _tone(4000, 1, 2, 16000)
    pcm_stereo_48k = _tone(2400, 2, 2, 48000)
    return {
        "pcm16-mono-16k.wav": _wave_file(1, 2, 16000, 4000),
        "pcm16-stereo-8k.wav": _wave_file(2, 2, 8000, 2000),
        # WAVE_FORMAT_EXTENSIBLE with the PCM sub-format, as many recorders write it.
        "pcm16-extensible-48k.wav": _riff(
            [(b"fmt ", _fmt(0xFFFE, 2, 48000, 16, extensible_sub=1)), (b"data", pcm_stereo_48k)]
        ),
        # A LIST chunk (metadata) between fmt and data, with an odd size (padded).
        "pcm16-list-chunk-16k.wav": _riff(
            [(b"fmt ", _fmt(1, 1, 16000, 16)), (b"LIST", b"INFOISFT\x05\0\0\0test\0"), (b"data", pcm_mono)]
        ),
        # A WAV written to a pipe: its sizes are unknown when the header is written.
        "pcm16-streamed-16k.wav": _riff(
            [(b"fmt ", _fmt(1, 1, 16000, 16)), (b"data", pcm_mono)],
            riff_size=0xFFFFFFFF,
            data_size=0xFFFFFFFF,
        ),
        "pcm8-mono-8k.wav": _wave_file(1, 1, 8000, 2000),
        "float32-mono-16k.wav": _riff(
            [(b"fmt ", _fmt(3, 1, 16000, 32)), (b"data", struct.pack("<1000f", *([0.0] * 1000)))]
        ),
        "not-a-wav.bin": b"ID3\x04\0\0\0\0\0\0" + bytes(range(256)) * 4,
    }


def _plan(name: str, data: bytes) -> dict[str, Any]:
    """The send plan, from the rules of README.md (independent of every client's code)."""
    tag = channels = rate = bits = 0
    data_offset = data_size = None
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        pos = 12
        while pos + 8 <= len(data):
            chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
            if chunk_id == b"fmt ":
                tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, pos + 8)
                if tag == 0xFFFE:
                    tag = struct.unpack_from("<H", data, pos + 8 + 24)[0]
            if chunk_id == b"data":
                data_offset = pos + 8
                left = len(data) - data_offset
                data_size = left if size in (0, 0xFFFFFFFF) or size > left else size
                break
            pos += 8 + size + (size & 1)
    if data_offset is not None and tag == 1 and bits == 16:
        frame = 2 * channels
        byte_rate = rate * frame
        return {
            "file": name,
            "encoding": "AUDIO_ENCODING_LINEAR16",
            "sample_rate": rate,
            "channels": channels,
            "payload_offset": data_offset,
            "payload_bytes": data_size,
            "frame_bytes": frame,
            "bytes_per_second": byte_rate,
            "chunk_bytes": byte_rate * CHUNK_MS // 1000 // frame * frame,
            "resumable": True,
        }
    byte_rate = (
        rate * channels * bits // 8 if (data_offset is not None and tag == 1) else FALLBACK_BYTES_PER_SECOND
    )
    return {
        "file": name,
        "encoding": "AUDIO_ENCODING_UNSPECIFIED",
        "sample_rate": 0,
        "channels": 0,
        "payload_offset": 0,
        "payload_bytes": len(data),
        "frame_bytes": 1,
        "bytes_per_second": byte_rate,
        "chunk_bytes": byte_rate * CHUNK_MS // 1000,
        "resumable": False,
    }


# --- the response stream --------------------------------------------------------------------


def _canonical(message: Any) -> str:
    """Canonical proto3 JSON on one line, whole-number doubles without a fraction."""

    def whole(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        if isinstance(value, dict):
            return {k: whole(v) for k, v in value.items()}
        if isinstance(value, list):
            return [whole(v) for v in value]
        return value

    return json.dumps(whole(json_format.MessageToDict(message)), separators=(",", ":"), ensure_ascii=False)


def response_outputs(recorded: list[str]) -> dict[str, str]:
    """Expected stdout of a client that receives the recorded stream, per output mode."""
    messages = [json_format.Parse(line, pb.StreamTranscribeResponse()) for line in recorded]
    text, interim = [], []
    for message in messages:
        if message.WhichOneof("response") != "result" or not message.result.alternatives:
            continue
        transcript = message.result.alternatives[0].transcript.strip()
        if not transcript:
            continue
        if message.result.is_final:
            text.append(transcript)
            interim.append(transcript)
        else:
            interim.append(INTERIM_PREFIX + transcript)
    return {
        "expected.txt": "".join(line + "\n" for line in text),
        "expected-interim.txt": "".join(line + "\n" for line in interim),
        "expected.jsonl": "".join(_canonical(m) + "\n" for m in messages),
    }


# --- error statuses -------------------------------------------------------------------------


def _details(code: int, message: str, reason: str, resume: pb.ResumePoint | None) -> bytes:
    status = status_pb2.Status(code=code, message=message)
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(domain=DOMAIN, reason=reason))
    status.details.append(info)
    if resume is not None:
        point = any_pb2.Any()
        point.Pack(resume)
        status.details.append(point)
    return bytes(status.SerializeToString())


_ERRORS: list[tuple[str, int, str, str, pb.ResumePoint | None]] = [
    (
        "INVALID_ARGUMENT", 3,
        "config.sample_rate: 500000 is not between 8000 and 192000", "INVALID_CONFIG", None,
    ),
    ("UNAUTHENTICATED", 16, "missing or invalid client token", "UNAUTHENTICATED", None),
    (
        "UNAVAILABLE", 14,
        "the gateway is shutting down: every final result of the audio received was delivered; "
        "send the rest on a new stream (see the ResumePoint in the details)",
        "DRAINING",
        pb.ResumePoint(committed_seconds=4.2, committed_bytes=134400, received_seconds=5.05),
    ),
    (
        "UNAVAILABLE", 14,
        "the upstream is unreachable after 6 attempts: resume from the ResumePoint",
        "UPSTREAM_UNAVAILABLE",
        pb.ResumePoint(committed_seconds=0, committed_bytes=0, received_seconds=1.5),
    ),
    ("RESOURCE_EXHAUSTED", 8, "the gateway is at its limit of 1000 streams", "TOO_MANY_STREAMS", None),
    (
        "FAILED_PRECONDITION", 9,
        "the upstream rejected the gateway's key (HTTP 401)", "UPSTREAM_KEY_REJECTED", None,
    ),
    ("OUT_OF_RANGE", 11, "the stream is longer than 14400 s", "SESSION_TOO_LONG", None),
    ("DEADLINE_EXCEEDED", 4, "no request for 300 s", "CLIENT_IDLE", None),
]  # fmt: skip


def errors() -> list[dict[str, Any]]:
    cases = []
    for name, code, message, reason, resume in _ERRORS:
        cases.append(
            {
                "code": name,
                "code_number": code,
                "message": message,
                "reason": reason,
                "domain": DOMAIN,
                "resume_point": json_format.MessageToDict(resume) if resume is not None else None,
                "status_details_bin": base64.b64encode(_details(code, message, reason, resume)).decode(),
                "resumable": resume is not None,
                "stderr": f"error: {name}: {message}\n",
                "exit_code": 1,
            }
        )
    return cases


# --- resume cases ---------------------------------------------------------------------------


def _frame_floor(seconds: float, rate: int, frame: int) -> int:
    return max(int(seconds * rate + 1e-6), 0) * frame


def resume_cases() -> list[dict[str, Any]]:
    """A stream fails with a ResumePoint; what the next stream resends, and its offset.

    Byte positions count from the first byte of audio the application gave the library
    (`kept_from_byte`: the first byte it still holds; `sent_bytes`: all it has sent).
    """
    cases: list[dict[str, Any]] = []

    def case(
        name: str,
        *,
        encoding: str = "AUDIO_ENCODING_LINEAR16",
        sample_rate: int = 16000,
        channels: int = 1,
        stream_start_byte: int = 0,
        stream_start_offset: float = 0.0,
        kept_from_byte: int = 0,
        sent_bytes: int,
        resume: pb.ResumePoint,
        resumable: bool,
        why: str,
    ) -> None:
        width = {"AUDIO_ENCODING_LINEAR16": 2, "AUDIO_ENCODING_MULAW": 1}.get(encoding, 0)
        frame = width * max(channels, 1)
        expected: dict[str, Any] = {"resumable": resumable}
        if resumable:
            resend_from = stream_start_byte + resume.committed_bytes
            expected |= {
                "start_offset_seconds": resume.committed_seconds,
                "resend_from_byte": resend_from,
                "resend_bytes": sent_bytes - resend_from,
            }
        cases.append(
            {
                "name": name,
                "why": why,
                "encoding": encoding,
                "sample_rate": sample_rate,
                "channels": channels,
                "frame_bytes": frame,
                "stream_start_byte": stream_start_byte,
                "stream_start_offset_seconds": stream_start_offset,
                "kept_from_byte": kept_from_byte,
                "sent_bytes": sent_bytes,
                "resume_point": json_format.MessageToDict(resume, always_print_fields_with_no_presence=True),
                "expected": expected,
            }
        )

    case(
        "drain-first-stream",
        sent_bytes=161600,
        kept_from_byte=96000,
        resume=pb.ResumePoint(committed_seconds=4.2, committed_bytes=134400, received_seconds=5.05),
        resumable=True,
        why="resend from the committed byte; the offset is committed_seconds",
    )
    case(
        "nothing-committed",
        sent_bytes=48000,
        resume=pb.ResumePoint(committed_seconds=0, committed_bytes=0, received_seconds=1.5),
        resumable=True,
        why="committed 0: resend everything from the start",
    )
    case(
        "second-resume",
        stream_start_byte=134400,
        stream_start_offset=4.2,
        kept_from_byte=230400,
        sent_bytes=320000,
        resume=pb.ResumePoint(committed_seconds=7.5, committed_bytes=105600, received_seconds=10.0),
        resumable=True,
        why="committed_bytes count from the failed stream's first byte; committed_seconds already "
        "include its start_offset_seconds",
    )
    case(
        "stereo-8k",
        sample_rate=8000,
        channels=2,
        sent_bytes=64000,
        kept_from_byte=16000,
        resume=pb.ResumePoint(committed_seconds=1.25, committed_bytes=40000, received_seconds=2.0),
        resumable=True,
        why="frames of 4 bytes",
    )
    case(
        "mulaw-8k",
        encoding="AUDIO_ENCODING_MULAW",
        sample_rate=8000,
        sent_bytes=24000,
        kept_from_byte=8000,
        resume=pb.ResumePoint(committed_seconds=1.5, committed_bytes=12000, received_seconds=3.0),
        resumable=True,
        why="one byte per sample",
    )
    case(
        "trimmed-too-far",
        sent_bytes=640000,
        kept_from_byte=320000,
        resume=pb.ResumePoint(committed_seconds=8.0, committed_bytes=256000, received_seconds=20.0),
        resumable=False,
        why="the audio from the committed byte on is no longer kept (the buffer bound dropped it): "
        "give up with the error",
    )
    case(
        "containerised", encoding="AUDIO_ENCODING_UNSPECIFIED", sample_rate=0, channels=0,
        sent_bytes=50000,
        resume=pb.ResumePoint(committed_seconds=2.0, committed_bytes=0, received_seconds=3.0),
        resumable=False, why="containerised audio has no byte position to resume from: give up",
    )  # fmt: skip
    return cases


def commit_cases() -> list[dict[str, Any]]:
    """Which kept bytes a library may drop once final results have arrived (see README.md)."""
    out = []
    for name, rate, channels, start_byte, offset, final_end, expected in [
        ("first-final", 16000, 1, 0, 0.0, 2.5, _frame_floor(2.5 - 0.001, 16000, 2)),
        ("resumed-stream", 16000, 1, 134400, 4.2, 6.0, 134400 + _frame_floor(6.0 - 4.2 - 0.001, 16000, 2)),
        ("stereo", 8000, 2, 0, 0.0, 1.0, _frame_floor(1.0 - 0.001, 8000, 4)),
        ("final-before-stream", 16000, 1, 134400, 4.2, 4.0, 134400),
    ]:
        out.append(
            {
                "name": name,
                "sample_rate": rate,
                "channels": channels,
                "frame_bytes": 2 * channels,
                "stream_start_byte": start_byte,
                "stream_start_offset_seconds": offset,
                "committed_seconds": final_end,
                "expected_keep_from_byte": expected,
            }
        )
    return out


# --- controls across a resume ---------------------------------------------------------------

_FINALIZE: dict[str, Any] = {"finalize": {}}
_FINALIZE_0: dict[str, Any] = {"finalize": {"channel": 0}}
_KEEP_ALIVE: dict[str, Any] = {"keepAlive": {}}
_FOUR_CHUNKS_THREE_CONTROLS: list[dict[str, Any]] = [
    {"audio": 3200},
    {"control": _FINALIZE},
    {"audio": 3200},
    {"control": _KEEP_ALIVE},
    {"audio": 3200},
    {"control": _FINALIZE_0},
    {"audio": 3200},
]


def _placed(items: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any] | tuple[int, int]]]:
    """Each item at the byte where it starts: controls as they are, audio as (start, end)."""
    out: list[tuple[int, dict[str, Any] | tuple[int, int]]] = []
    position = 0
    for item in items:
        if "audio" in item:
            out.append((position, (position, position + item["audio"])))
            position += item["audio"]
        else:
            out.append((position, item["control"]))
    return out


def _merged(sent: list[dict[str, Any] | tuple[int, int]]) -> list[dict[str, Any]]:
    """Sent items as the vectors write them: adjacent audio as one byte range."""
    out: list[dict[str, Any]] = []
    for item in sent:
        if isinstance(item, tuple):
            if out and "audio" in out[-1] and out[-1]["audio"][1] == item[0]:
                out[-1] = {"audio": [out[-1]["audio"][0], item[1]]}
            else:
                out.append({"audio": list(item)})
        else:
            out.append({"control": item})
    return out


def _resent(items: list[dict[str, Any]], resend_from: int) -> list[dict[str, Any]]:
    """README.md's rule: the audio from the resend point on, with each Finalize placed after
    it (and not twice at one place, and not a KeepAlive) again where it was."""
    out: list[dict[str, Any] | tuple[int, int]] = []
    seen: list[tuple[int, str]] = []
    for position, item in _placed(items):
        if isinstance(item, tuple):
            start, end = max(item[0], resend_from), item[1]
            if start < end:
                out.append((start, end))
        elif "finalize" in item and position > resend_from:
            key = (position, json.dumps(item, sort_keys=True))
            if key not in seen:
                seen.append(key)
                out.append(item)
    return _merged(out)


def control_cases() -> list[dict[str, Any]]:
    """Controls given among the audio of a stream that fails with a ResumePoint: what the
    first stream sends, and what the next one resends (see README.md)."""
    cases: list[tuple[str, list[dict[str, Any]], int]] = [
        ("resent from the start: every finalize again, no keepalive", _FOUR_CHUNKS_THREE_CONTROLS, 0),
        ("a finalize at the resend point is not resent", _FOUR_CHUNKS_THREE_CONTROLS, 3200),
        ("a resend point between controls", _FOUR_CHUNKS_THREE_CONTROLS, 4800),
        ("the last finalize at the resend point", _FOUR_CHUNKS_THREE_CONTROLS, 9600),
        ("nothing to resend", _FOUR_CHUNKS_THREE_CONTROLS, 12800),
        (
            "the same finalize twice at one place is resent once",
            [{"audio": 3200}, {"control": _FINALIZE}, {"control": _FINALIZE}, {"audio": 3200}],
            0,
        ),
        (
            "a finalize before any audio has nothing to resend",
            [{"control": _FINALIZE}, {"audio": 3200}, {"control": _FINALIZE}, {"audio": 3200}],
            0,
        ),
    ]
    return [
        {
            "name": name,
            "encoding": "AUDIO_ENCODING_LINEAR16",
            "sample_rate": 16000,
            "channels": 1,
            "items": items,
            "sent": _merged([item for _, item in _placed(items)]),
            "resume_point": {"committedSeconds": resend_from / 32000, "committedBytes": str(resend_from)},
            "resent": _resent(items, resend_from),
        }
        for name, items, resend_from in cases
    ]


# --- writing --------------------------------------------------------------------------------


def outputs() -> dict[Path, bytes]:
    files: dict[Path, bytes] = {}
    wavs = wav_files()
    for name, data in wavs.items():
        files[HERE / "wav" / name] = data
    plans = [_plan(name, data) for name, data in wavs.items()]
    files[HERE / "wav" / "plans.json"] = _json({"chunk_ms": CHUNK_MS, "plans": plans})
    recorded = (HERE / "responses" / "recorded.jsonl").read_text().splitlines()
    for name, text in response_outputs(recorded).items():
        files[HERE / "responses" / name] = text.encode()
    files[HERE / "errors.json"] = _json({"errors": errors()})
    files[HERE / "resume.json"] = _json({"resume": resume_cases(), "commit": commit_cases()})
    files[HERE / "controls.json"] = _json({"controls": control_cases()})
    return files


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that nothing would change")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for path, data in outputs().items():
        if path.exists() and path.read_bytes() == data:
            continue
        stale.append(str(path.relative_to(HERE)))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    if args.check and stale:
        print("stale test vectors (run clients/testdata/generate.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
