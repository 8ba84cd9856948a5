"""Python client for the transcription gateway's `transcribe.v1.TranscribeService`.

    from transcribe_client import StreamingConfig, transcribe

    async for response in transcribe("127.0.0.1:50051", chunks, StreamingConfig(language="en")):
        ...

`transcribe` (asyncio) and `transcribe_sync` (blocking) send the config, the audio chunks and a
half-close, and yield every `StreamTranscribeResponse`; a non-OK status raises
`TranscribeError`. `transcribe_client.audio` has WAV parsing, chunking and real-time pacing.
The generated messages come from the one contract package, `transcribe-contract`
(`transcribe.v1.transcribe_pb2`), which the gateway uses too; `transcribe_client.pb` is that module.
"""

from __future__ import annotations

from transcribe.v1 import transcribe_pb2 as pb
from transcribe.v1.transcribe_pb2 import (
    AudioEncoding,
    StreamingConfig,
    StreamTranscribeRequest,
    StreamTranscribeResponse,
)

from transcribe_client.client import (
    DEFAULT_ADDR,
    TranscribeError,
    transcribe,
    transcribe_sync,
)

__all__ = [
    "DEFAULT_ADDR",
    "AudioEncoding",
    "StreamTranscribeRequest",
    "StreamTranscribeResponse",
    "StreamingConfig",
    "TranscribeError",
    "pb",
    "transcribe",
    "transcribe_sync",
]
