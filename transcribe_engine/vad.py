"""Streaming Silero VAD: the ONNX model bundled in faster-whisper's wheel, fed 32 ms at a time.

faster-whisper only runs the model over whole arrays; here the recurrent state and the 64-sample
context are carried between calls, which gives the same probabilities window by window.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

WINDOW: Final = 512  # samples at 16 kHz = 32 ms, fixed by the model
_CONTEXT: Final = 64


def load_vad_session() -> Any:
    """The shared ONNX session; ``run`` is thread-safe, the per-stream state lives outside it."""
    from faster_whisper.vad import get_vad_model

    return get_vad_model().session


class StreamingVad:
    """Speech probability for every 32 ms window of one channel."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros((1, _CONTEXT), np.float32)
        self._pending = np.zeros(0, np.float32)

    def push(self, samples: npt.NDArray[np.float32]) -> list[float]:
        data = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        whole = len(data) - len(data) % WINDOW
        self._pending = data[whole:].copy()
        if whole == 0:
            return []
        windows = data[:whole].reshape(-1, WINDOW)
        probabilities: list[float] = []
        for window in windows:
            batch = window[None, :]
            model_input = np.concatenate([self._context, batch], axis=1)
            out, self._h, self._c = self._session.run(
                None, {"input": model_input, "h": self._h, "c": self._c}
            )
            self._context = batch[:, -_CONTEXT:]
            probabilities.append(float(np.asarray(out).reshape(-1)[0]))
        return probabilities
