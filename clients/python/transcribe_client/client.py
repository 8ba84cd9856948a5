"""Open one `StreamTranscribe` call and iterate its responses: `transcribe` (grpc.aio) and
`transcribe_sync` (blocking grpc).

Both send the config first, then every audio chunk, then half-close, and yield each response
as it arrives. A call that ends with a non-OK status raises `TranscribeError`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.rpc import status_pb2
from transcribe.v1 import transcribe_pb2, transcribe_pb2_grpc

__all__ = [
    "DEFAULT_ADDR",
    "TranscribeError",
    "call_metadata",
    "channel_credentials",
    "requests",
    "transcribe",
    "transcribe_sync",
]

DEFAULT_ADDR = "127.0.0.1:50051"

_STATUS_DETAILS_KEY = "grpc-status-details-bin"

Metadata = Sequence[tuple[str, str]]


class TranscribeError(Exception):
    """A `StreamTranscribe` call ended with a non-OK gRPC status.

    `resume_point` is filled from the status details when the gateway sent one (UNAVAILABLE
    after upstream failure or during a drain): resend the audio from its `committed_seconds`
    on a new stream with `StreamingConfig.start_offset_seconds` set to it.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        resume_point: transcribe_pb2.ResumePoint | None = None,
    ) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details
        self.resume_point = resume_point

    @property
    def status_name(self) -> str:
        """The status code's canonical name, such as `INVALID_ARGUMENT`."""
        return str(self.code.name)

    def __str__(self) -> str:
        return f"{self.status_name}: {self.details}"


def call_metadata(token: str | None = None, metadata: Metadata = ()) -> list[tuple[str, str]]:
    """The call's metadata: `authorization: Bearer <token>` if a token is given, then `metadata`."""
    pairs = [("authorization", f"Bearer {token}")] if token else []
    return [*pairs, *metadata]


def channel_credentials(ca_file: str | os.PathLike[str] | None = None) -> grpc.ChannelCredentials:
    """TLS credentials trusting `ca_file` (PEM), or gRPC's default roots when it is None."""
    roots = None
    if ca_file is not None:
        with open(ca_file, "rb") as pem:
            roots = pem.read()
    return grpc.ssl_channel_credentials(root_certificates=roots)


async def requests(
    config: transcribe_pb2.StreamingConfig,
    audio: AsyncIterable[bytes] | Iterable[bytes],
    failures: list[Exception] | None = None,
    opened: asyncio.Event | None = None,
) -> AsyncIterator[transcribe_pb2.StreamTranscribeRequest]:
    """The request stream: `config`, then one `audio` request per non-empty chunk.

    With `opened`, the audio waits until that event is set (by the caller, on the first
    response). If `audio` raises and `failures` is given, the exception is appended to it and
    the stream ends normally (a half-close), so the results for the audio already sent still
    arrive.
    """
    yield transcribe_pb2.StreamTranscribeRequest(config=config)
    if opened is not None:
        await opened.wait()
    try:
        if isinstance(audio, AsyncIterable):
            async for chunk in audio:
                if chunk:
                    yield transcribe_pb2.StreamTranscribeRequest(audio=chunk)
        else:
            for chunk in audio:
                if chunk:
                    yield transcribe_pb2.StreamTranscribeRequest(audio=chunk)
    except Exception as exc:
        if failures is None:
            raise
        failures.append(exc)


async def transcribe(
    addr: str,
    audio: AsyncIterable[bytes] | Iterable[bytes],
    config: transcribe_pb2.StreamingConfig | None = None,
    *,
    token: str | None = None,
    tls: bool = False,
    ca_file: str | os.PathLike[str] | None = None,
    metadata: Metadata = (),
    deadline: float | None = None,
    channel_options: Sequence[tuple[str, Any]] = (),
) -> AsyncIterator[transcribe_pb2.StreamTranscribeResponse]:
    """Transcribes `audio` through the gateway at `addr` and yields every response.

    `audio` is sent as it is produced: pace it (see `transcribe_client.audio.pace`) for live
    behaviour. When it ends, the request stream is half-closed and the remaining results and the
    `summary` follow. If `audio` raises, the stream is half-closed there too, and its exception
    is raised once the gateway has sent the results for the audio it got.

    The audio waits for the first response (`session_started`): a config the gateway rejects
    then ends the call before any audio is written. (grpc.aio reports a write that races with
    the end of the call as `INTERNAL: Internal error from Core` instead of the server's status,
    grpc/grpc#36066; waiting avoids that race for every error raised before the session opens.)

    `deadline` is the call's gRPC timeout in seconds. The channel is closed when the generator
    ends; wrap it in `contextlib.aclosing` if you may stop iterating early. Raises
    `TranscribeError` when the call ends with a non-OK status.
    """
    config = config if config is not None else transcribe_pb2.StreamingConfig()
    if tls or ca_file is not None:
        channel = grpc.aio.secure_channel(addr, channel_credentials(ca_file), channel_options)
    else:
        channel = grpc.aio.insecure_channel(addr, channel_options)
    async with channel:
        stub = transcribe_pb2_grpc.TranscribeServiceStub(channel)
        failures: list[Exception] = []
        opened = asyncio.Event()
        call = stub.StreamTranscribe(
            requests(config, audio, failures, opened),
            metadata=call_metadata(token, metadata),
            timeout=deadline,
        )
        try:
            async for response in call:
                opened.set()
                yield response
        except grpc.aio.AioRpcError as exc:
            raise _error(exc.code(), exc.details(), exc.trailing_metadata()) from exc
        finally:
            opened.set()
            call.cancel()  # a no-op once the call has ended
        if failures:
            raise failures[0]


def transcribe_sync(
    addr: str,
    audio: Iterable[bytes],
    config: transcribe_pb2.StreamingConfig | None = None,
    *,
    token: str | None = None,
    tls: bool = False,
    ca_file: str | os.PathLike[str] | None = None,
    metadata: Metadata = (),
    deadline: float | None = None,
    channel_options: Sequence[tuple[str, Any]] = (),
) -> Iterator[transcribe_pb2.StreamTranscribeResponse]:
    """The blocking twin of `transcribe`: gRPC sends `audio` from its own thread, at once.

    `deadline` is the call's gRPC timeout in seconds. Close the generator (or use
    `contextlib.closing`) if you may stop iterating early. Raises `TranscribeError`, or what
    `audio` raised (after the results for the audio sent).
    """
    config = config if config is not None else transcribe_pb2.StreamingConfig()
    failures: list[Exception] = []

    def request_stream() -> Iterator[transcribe_pb2.StreamTranscribeRequest]:
        yield transcribe_pb2.StreamTranscribeRequest(config=config)
        try:
            for chunk in audio:
                if chunk:
                    yield transcribe_pb2.StreamTranscribeRequest(audio=chunk)
        except Exception as exc:
            failures.append(exc)

    if tls or ca_file is not None:
        channel = grpc.secure_channel(addr, channel_credentials(ca_file), channel_options)
    else:
        channel = grpc.insecure_channel(addr, channel_options)
    with channel:
        stub = transcribe_pb2_grpc.TranscribeServiceStub(channel)
        call = stub.StreamTranscribe(
            request_stream(), metadata=call_metadata(token, metadata), timeout=deadline
        )
        try:
            yield from call
        except grpc.RpcError as exc:
            raise _error(exc.code(), exc.details(), exc.trailing_metadata()) from exc
        finally:
            call.cancel()
        if failures:
            raise failures[0]


def _error(code: Any, details: Any, trailing: Any) -> TranscribeError:
    """Builds the error for a failed call, with the `ResumePoint` from its status details."""
    status_code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    return TranscribeError(status_code, str(details or ""), _resume_point(trailing))


def _resume_point(trailing: Any) -> transcribe_pb2.ResumePoint | None:
    for key, value in trailing or ():
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        detail: any_pb2.Any
        for detail in status.details:
            point = transcribe_pb2.ResumePoint()
            if detail.Unpack(point):
                return point
    return None
