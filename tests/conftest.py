"""Fixtures shared by every test: timing scale for slow machines, the data tests read.

The suite runs from data the project owns: speech in tests/data/speech (tests/support/speech.py)
and Deepgram-shaped messages in tests/data/deepgram, written from Deepgram's protocol
documentation. Real human speech (../shared/corpus, beside the checkout on CI) is only for
accuracy tests, which ask for the ``corpus`` fixture and skip with one line without it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.standin import DeepgramStandIn

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
# Results messages in the shape Deepgram's live API sends them (tests/data/deepgram/README.md).
FIXTURES = DATA / "deepgram"
# Real speech with reference transcripts: optional, only on machines that have ../shared.
CORPUS = ROOT.parent / "shared" / "corpus"

# One knob for slow machines: every timeout in the tests is multiplied by it.
TIMING = float(os.environ.get("TEST_TIMING_SCALE", "1"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real-speech corpus for accuracy tests; the test skips (one line) where it is absent."""
    if not (CORPUS / "manifest.tsv").is_file():
        pytest.skip(f"accuracy on real speech needs the corpus at {CORPUS} (absent here)")
    return CORPUS


@pytest.fixture
async def standin() -> AsyncIterator[DeepgramStandIn]:
    """A scripted Deepgram stand-in that transcribes counter audio."""
    async with DeepgramStandIn() as server:
        yield server
