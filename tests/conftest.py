"""Fixtures shared by every test: timing scale for slow machines, corpus location."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.standin import DeepgramStandIn

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
FIXTURES = SHARED / "fixtures" / "deepgram" / "python-sdk-listen-v1-websocket"

# One knob for slow machines: every timeout in the tests is multiplied by it.
TIMING = float(os.environ.get("TEST_TIMING_SCALE", "1"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.fail(f"the shared corpus is missing at {CORPUS}: tests read it from ../shared")
    return CORPUS


@pytest.fixture
async def standin() -> AsyncIterator[DeepgramStandIn]:
    """A scripted Deepgram stand-in that transcribes counter audio."""
    async with DeepgramStandIn() as server:
        yield server
