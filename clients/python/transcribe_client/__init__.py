"""Python client for the transcription gateway's `transcribe.v1.TranscribeService`.

    from transcribe_client import StreamingConfig, transcribe

    async for response in transcribe("127.0.0.1:50051", chunks, StreamingConfig(language="en")):
        ...

`transcribe` (asyncio) and `transcribe_sync` (blocking) send the config, the audio chunks (and
any `Control` among them: `finalize()`, `keep_alive()`) and a half-close, and yield every
`StreamTranscribeResponse`; a stream that a draining gateway ends
UNAVAILABLE with a `ResumePoint` is resumed on a new call by itself (`Resume`, `ResumeEvent`);
any other non-OK status raises `TranscribeError`. `transcribe_client.audio` reads inputs
(WAV headers with `wave`, pipes as bytes arrive), chunks and paces them. The generated messages
come from the one contract package, `transcribe-contract` (`transcribe.v1.transcribe_pb2`),
which the gateway uses too; `transcribe_client.pb` is that module.
"""

from __future__ import annotations

from transcribe.v1 import transcribe_pb2 as pb
from transcribe.v1.transcribe_pb2 import (
    AudioEncoding,
    Control,
    ResumePoint,
    StreamingConfig,
    StreamTranscribeRequest,
    StreamTranscribeResponse,
)

from transcribe_client.client import (
    DEFAULT_ADDR,
    AudioItem,
    Resume,
    ResumeEvent,
    TranscribeError,
    error_from_status,
    finalize,
    keep_alive,
    transcribe,
    transcribe_sync,
)

__all__ = [
    "DEFAULT_ADDR",
    "AudioEncoding",
    "AudioItem",
    "Control",
    "Resume",
    "ResumeEvent",
    "ResumePoint",
    "StreamTranscribeRequest",
    "StreamTranscribeResponse",
    "StreamingConfig",
    "TranscribeError",
    "error_from_status",
    "finalize",
    "keep_alive",
    "pb",
    "transcribe",
    "transcribe_sync",
]
