"""Fixtures shared by every test: timing scale for slow machines, the data tests read.

The suite runs from data the project owns: speech in tests/data/speech (tests/support/speech.py)
and Deepgram-shaped messages in tests/data/deepgram, written from Deepgram's protocol
documentation. Real human speech (../shared/corpus, beside the checkout on CI) is only for
accuracy tests, which ask for the ``corpus`` fixture and skip with one line without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.paths import CORPUS, DATA, FIXTURES, ROOT
from tests.support.standin import DeepgramStandIn
from tests.support.timing import TIMING

# Test modules should import these from tests.support.paths / tests.support.timing; the names
# stay here for the modules that still import them from this file.
__all__ = ["CORPUS", "DATA", "FIXTURES", "ROOT", "TIMING"]


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
