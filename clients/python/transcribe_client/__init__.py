"""Python client for the transcription gateway's `transcribe.v1.TranscribeService`.

    from transcribe_client import StreamingConfig, transcribe

    async for response in transcribe("127.0.0.1:50051", chunks, StreamingConfig(language="en")):
        ...

`transcribe` (asyncio) and `transcribe_sync` (blocking) send the config, the audio chunks and a
half-close, and yield every `StreamTranscribeResponse`; a non-OK status raises
`TranscribeError`. `transcribe_client.audio` has WAV parsing, chunking and real-time pacing.
The generated messages live in `transcribe_client.pb` (`transcribe_pb2`).

The generated code registers the `transcribe.v1` names in protobuf's default pool, so this
package cannot be imported into a process that already holds another copy of them (such as the
gateway's own `gateway._pb`).
"""

from __future__ import annotations

from transcribe_client._pb.transcribe.v1 import transcribe_pb2 as pb
from transcribe_client._pb.transcribe.v1.transcribe_pb2 import (
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
