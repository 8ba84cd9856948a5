"""The sample program: stream a file or an HTTP audio stream through the gateway, print transcripts.

Every client language implements the same flags and output (see README.md):

- a final, non-empty transcript is printed alone on its line;
- with `--interim`, an interim transcript is printed as `~ ` followed by the text;
- with `--json`, every response is printed instead, one proto3 JSON object per line;
- a failure prints `error: <STATUS_NAME>: <message>` to stderr and exits with 1;
- the first Ctrl+C ends the audio (half-close: the remaining results still print, exit 0),
  a second one cancels the call and exits with 130.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from google.protobuf import json_format
from transcribe.v1 import transcribe_pb2

from transcribe_client import audio
from transcribe_client.client import DEFAULT_ADDR, ResumeEvent, TranscribeError, transcribe

__all__ = ["main", "parse_args", "render", "resume_line", "to_json"]

#: Deepgram's encoding names, accepted by `--encoding`.
ENCODINGS = (
    "linear16",
    "linear32",
    "mulaw",
    "alaw",
    "flac",
    "amr-nb",
    "amr-wb",
    "opus",
    "ogg-opus",
    "speex",
    "g729",
)
RAW_ENCODINGS = ("linear16", "linear32", "mulaw", "alaw")
DEFAULT_CHUNK_MS = 50
#: The environment variable `--token` defaults to.
TOKEN_ENV = "TRANSCRIBE_TOKEN"
INTERIM_PREFIX = "~ "
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class InputError(Exception):
    """The audio input cannot be used; `status` is the status name printed for it."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


def encoding_value(name: str | None) -> transcribe_pb2.AudioEncoding.ValueType:
    """The `AudioEncoding` of a Deepgram encoding name (None: unspecified, containerised)."""
    if name is None:
        return transcribe_pb2.AUDIO_ENCODING_UNSPECIFIED
    return transcribe_pb2.AudioEncoding.Value("AUDIO_ENCODING_" + name.upper().replace("-", "_"))


def plan_url(*, encoding: str | None, sample_rate: int) -> audio.AudioPlan:
    """What to send for an HTTP stream: its bytes as they arrive, paced if the rate is known."""
    rate = audio.bytes_per_second(encoding, sample_rate) if encoding is not None else None
    return audio.AudioPlan(encoding, sample_rate, 0, rate or 0, 1, 0, 0, None)


def build_config(args: argparse.Namespace, plan: audio.AudioPlan) -> transcribe_pb2.StreamingConfig:
    """The session's `StreamingConfig` from the flags and the audio plan."""
    config = transcribe_pb2.StreamingConfig(
        model=args.model or "",
        language=args.language or "",
        encoding=encoding_value(plan.encoding),
        sample_rate=plan.sample_rate,
        channels=plan.channels if plan.channels > 1 else 0,
    )
    if args.interim:
        config.interim_results = True
    if args.smart_format:
        config.smart_format = True
    if args.diarize:
        config.diarize = True
    return config


def to_json(message: Any) -> str:
    """A message as one line of proto3 canonical JSON (lowerCamelCase names, defaults omitted).

    Whole-number doubles are written without a fractional part (`11`, not `11.0`), as the Node,
    Go and .NET serialisers write them, so every client prints the same text.
    """
    as_dict = json_format.MessageToDict(message)
    return json.dumps(_whole_floats(as_dict), separators=(",", ":"), ensure_ascii=False)


def render(response: transcribe_pb2.StreamTranscribeResponse, *, interim: bool, as_json: bool) -> str | None:
    """The output line for one response, or None when it prints nothing."""
    if as_json:
        return to_json(response)
    if response.WhichOneof("response") != "result" or not response.result.alternatives:
        return None
    result = response.result
    text = result.alternatives[0].transcript.strip()
    if not text:
        return None
    if result.is_final:
        return text
    return INTERIM_PREFIX + text if interim else None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses the sample program's flags (the same in every client language)."""
    parser = argparse.ArgumentParser(
        prog="transcribe-client",
        description="Stream audio to the transcription gateway and print the transcripts.",
    )
    parser.add_argument("--addr", default=DEFAULT_ADDR, help="gateway HOST:PORT (%(default)s)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--file", help="audio file to stream (WAV, MP3, raw...); '-' reads stdin as it arrives"
    )
    source.add_argument("--url", help="HTTP(S) audio stream to relay (e.g. an internet radio)")
    parser.add_argument("--model", default="", help="model name, e.g. nova-3")
    parser.add_argument("--language", default="", help="BCP-47 language tag, e.g. en-US")
    parser.add_argument("--interim", action="store_true", help="also print interim results")
    parser.add_argument("--smart-format", action="store_true", help="turn on smart_format")
    parser.add_argument("--diarize", action="store_true", help="turn on diarization")
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"client token, sent as 'authorization: Bearer TOKEN' (default: ${TOKEN_ENV})",
    )
    parser.add_argument("--tls", action="store_true", help="use TLS (default trust roots)")
    parser.add_argument("--ca-file", type=Path, help="PEM roots to trust for TLS (implies --tls)")
    parser.add_argument("--fast", action="store_true", help="send as fast as possible, no pacing")
    parser.add_argument("--json", action="store_true", help="print every response as JSON lines")
    parser.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="end with the error instead of resuming on a new stream after UNAVAILABLE",
    )
    parser.add_argument(
        "--encoding",
        type=str.lower,
        choices=ENCODINGS,
        help="raw audio encoding (default: from a WAV header, else containerised)",
    )
    parser.add_argument("--sample-rate", type=_uint32, default=0, help="sample rate of raw audio, in Hz")
    parser.add_argument(
        "--chunk-ms",
        type=_positive,
        default=DEFAULT_CHUNK_MS,
        help="milliseconds of audio per message (%(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the sample program; returns the process exit code."""
    args = parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("error: CANCELLED: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


async def _run(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    presses = 0

    def on_interrupt() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            stop.set()  # end the audio: half-close, then print what is left
        elif main_task is not None:
            main_task.cancel()

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        return await _transcribe(args, stop)
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def _transcribe(args: argparse.Namespace, stop: asyncio.Event) -> int:
    label = args.url or ("stdin" if args.file == "-" else str(args.file))
    try:
        plan, chunks = await _open_input(args)
        if plan.bytes_per_second and not args.fast and args.file != "-":
            chunks = audio.pace(chunks, plan.bytes_per_second)
        source = _input_errors(audio.until(stop, chunks), label)
        first = await anext(source, None)  # fail on an unreachable URL before opening the call
    except InputError as exc:
        return _fail(exc.status, exc.message)
    if first is None and stop.is_set():
        return EXIT_OK
    try:
        async for response in transcribe(
            args.addr,
            _prepend(first, source),
            build_config(args, plan),
            token=args.token,
            tls=args.tls,
            ca_file=args.ca_file,
            resume=args.resume,
            on_resume=_report_resume,
        ):
            line = render(response, interim=args.interim, as_json=args.json)
            if line is not None:
                print(line, flush=True)
    except TranscribeError as exc:
        return _fail(exc.status_name, exc.details)
    except InputError as exc:
        return _fail(exc.status, exc.message)
    except BrokenPipeError:  # stdout was closed (e.g. `| head`): nobody reads any more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    return EXIT_OK


def resume_line(event: ResumeEvent) -> str:
    """The stderr line for a resume (stdout keeps only the transcript)."""
    return (
        f"resuming: {event.error} (attempt {event.attempt}, "
        f"from {event.start_offset_seconds:.3f} s, {event.resend_bytes} bytes resent)"
    )


def _report_resume(event: ResumeEvent) -> None:
    print(resume_line(event), file=sys.stderr, flush=True)


async def _open_input(args: argparse.Namespace) -> tuple[audio.AudioPlan, AsyncIterator[bytes]]:
    if args.url is not None:
        return plan_url(encoding=args.encoding, sample_rate=args.sample_rate), audio.http_chunks(args.url)
    if args.file == "-":
        stream: BinaryIO = sys.stdin.buffer
    else:
        try:
            stream = await asyncio.to_thread(open, args.file, "rb")  # open while the program runs
        except OSError as exc:
            raise InputError("INVALID_ARGUMENT", f"cannot read {args.file}: {exc.strerror}") from exc
    plan, chunks = await audio.read_input(
        stream, encoding=args.encoding, sample_rate=args.sample_rate, chunk_ms=args.chunk_ms
    )
    if plan.encoding in RAW_ENCODINGS and plan.sample_rate == 0:
        raise InputError("INVALID_ARGUMENT", f"raw {plan.encoding} audio needs --sample-rate")
    if args.file != "-":
        chunks = audio.rechunk(chunks, plan.chunk_bytes)  # even chunks, for even pacing
    return plan, chunks


async def _input_errors(chunks: AsyncIterator[bytes], label: str) -> AsyncIterator[bytes]:
    """Re-raises a failure to read the audio input as an `InputError` (UNAVAILABLE)."""
    try:
        async for chunk in chunks:
            yield chunk
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise InputError("UNAVAILABLE", f"cannot read {label}: {reason}") from exc


def _fail(status: str, message: str) -> int:
    print(f"error: {status}: {message}", file=sys.stderr, flush=True)
    return EXIT_ERROR


async def _prepend(first: bytes | None, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first is not None:
        yield first
    async for chunk in rest:
        yield chunk


def _whole_floats(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_floats(item) for item in value]
    return value


def _uint32(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 4294967295")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value
