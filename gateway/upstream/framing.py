"""Client-side websocket framing of the audio messages (RFC 6455, section 5.2), without I/O.

websockets encodes every other message (controls, pings, the close); the audio, one message per
client frame, is the hot path, and websockets' encoder draws each frame's mask from the kernel
(``secrets.token_bytes(4)``: a ``getrandom`` system call per frame) and assembles it in a
``BytesIO``. Masks here come from the same source, ``os.urandom``, drawn :data:`MASKS_PER_DRAW`
at a time: as unpredictable as the RFC asks (it requires strong entropy, not one system call per
frame), at one call per 64 frames. What each way costs is lever 10 in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import struct
from typing import Final

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

# One draw of random bytes serves this many frames' masks (4 bytes each).
MASKS_PER_DRAW: Final = 64
# FIN set, opcode 2 (binary): every audio message is one unfragmented frame.
_FIN_BINARY: Final = 0x82
_MASKED: Final = 0x80
_LENGTH_16 = struct.Struct("!BBH")
_LENGTH_64 = struct.Struct("!BBQ")


class AudioFramer:
    """Masked binary frames for one connection (its own random pool: no state is shared)."""

    __slots__ = ("_masks", "_next")

    def __init__(self) -> None:
        self._masks = b""
        self._next = 0

    def frame(self, data: bytes) -> bytes:
        """``data`` as one masked, final binary frame, ready for the socket."""
        start = self._next
        if start >= len(self._masks):
            self._masks = os.urandom(4 * MASKS_PER_DRAW)
            start = 0
        self._next = start + 4
        mask = self._masks[start : start + 4]
        length = len(data)
        if length < 126:
            head = bytes((_FIN_BINARY, _MASKED | length))
        elif length < 65536:
            head = _LENGTH_16.pack(_FIN_BINARY, _MASKED | 126, length)
        else:
            head = _LENGTH_64.pack(_FIN_BINARY, _MASKED | 127, length)
        return b"".join((head, mask, apply_mask(data, mask)))
