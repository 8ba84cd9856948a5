"""Test audio: the project's own speech (tests/support/speech.py) wrapped in real containers by PyAV."""

from __future__ import annotations

import io

import av
import av.audio.stream
import numpy as np
import numpy.typing as npt


def pcm_to_float(pcm: bytes) -> npt.NDArray[np.float32]:
    return (np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0).astype(np.float32)


def encode(pcm: bytes, *, container: str, codec: str, rate: int) -> bytes:
    """Encode 16 kHz mono PCM into ``container`` with ``codec`` at ``rate``."""
    samples = np.frombuffer(pcm, "<i2")[None, :]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.audio.stream.AudioStream)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 16000
        fmt = stream.codec_context.format
        resampler = av.AudioResampler(format=fmt.name if fmt else "s16", layout="mono", rate=rate)
        size = stream.codec_context.frame_size or 1024
        fifo = av.AudioFifo()
        for converted in resampler.resample(frame):
            fifo.write(converted)
        while (chunk := fifo.read(size)) is not None:
            for packet in stream.encode(chunk):
                output.mux(packet)
        tail = fifo.read()
        if tail is not None:
            for packet in stream.encode(tail):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]
