"""The audio frames' encoding, read back by websockets' own server-side parser: every length
form, the payload intact, masked with a fresh key per frame, and the random pool redrawn."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

from gateway.upstream.framing import MASKS_PER_DRAW, AudioFramer


def read_back(wire: bytes) -> list[Frame]:
    """What a websocket server makes of ``wire``: it refuses unmasked client frames."""
    server = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
    server.receive_data(wire)
    assert server.parser_exc is None, server.parser_exc
    return [event for event in server.events_received() if isinstance(event, Frame)]


@pytest.mark.parametrize("length", [0, 1, 125, 126, 640, 65535, 65536, 200_000])
def test_every_length_form_reads_back_as_one_final_binary_frame(length: int) -> None:
    data = bytes(range(256)) * (length // 256) + bytes(length % 256)
    (frame,) = read_back(AudioFramer().frame(data))
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.BINARY, True, data)


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=80))
def test_a_stream_of_frames_reads_back_in_order(payloads: list[bytes]) -> None:
    framer = AudioFramer()
    frames = read_back(b"".join(framer.frame(p) for p in payloads))
    assert [f.data for f in frames] == payloads


def test_each_frame_has_its_own_mask_and_the_pool_is_redrawn(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: list[int] = []
    real = os.urandom

    def counted(n: int) -> bytes:
        draws.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", counted)
    framer = AudioFramer()
    silence = bytes(640)
    wires = [framer.frame(silence) for _ in range(3 * MASKS_PER_DRAW)]
    assert draws == [4 * MASKS_PER_DRAW] * 3
    # Masked silence on the wire is the mask repeated: the keys, one per frame, all differ.
    masks = {wire[4:8] for wire in wires}
    assert len(masks) == len(wires)
    assert all(wire[8:] == wire[4:8] * 160 for wire in wires)
