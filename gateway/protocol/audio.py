"""How much audio a byte count is, for the encodings where that is exact."""

from __future__ import annotations

from dataclasses import dataclass, field

from transcribe.v1 import transcribe_pb2 as pb

# Bytes per sample of the raw (headerless, uncompressed) encodings. For every other encoding,
# compressed or containerised, a byte offset says nothing exact about time.
_SAMPLE_WIDTH = {
    pb.AUDIO_ENCODING_LINEAR16: 2,
    pb.AUDIO_ENCODING_LINEAR32: 4,
    pb.AUDIO_ENCODING_MULAW: 1,
    pb.AUDIO_ENCODING_ALAW: 1,
}


@dataclass(frozen=True, slots=True)
class RawFormat:
    """A raw PCM-like format: interleaved frames of ``channels`` samples."""

    sample_rate: int
    channels: int
    sample_width: int
    # Derived once: seconds() runs for every frame.
    frame_bytes: int = field(init=False, repr=False, compare=False)
    bytes_per_second: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        frame_bytes = self.channels * self.sample_width
        object.__setattr__(self, "frame_bytes", frame_bytes)
        object.__setattr__(self, "bytes_per_second", self.sample_rate * frame_bytes)

    def seconds(self, n_bytes: int) -> float:
        return n_bytes / self.bytes_per_second

    def byte_offset(self, seconds: float) -> int:
        """The frame-aligned byte offset at or just before ``seconds``."""
        frames = int(seconds * self.sample_rate + 1e-6)
        return max(frames, 0) * self.frame_bytes


def raw_format(config: pb.StreamingConfig) -> RawFormat | None:
    """The raw format of a config's audio, or None when bytes do not map exactly to time."""
    width = _SAMPLE_WIDTH.get(config.encoding)
    if width is None:
        return None
    return RawFormat(config.sample_rate, config.channels or 1, width)
