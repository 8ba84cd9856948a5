"""The transcript check of the browser tests tells recogniser noise from gaps and repeats."""

from __future__ import annotations

import pytest

from tests.web.conftest import SAMPLE_WORDS, assert_no_gap

W = SAMPLE_WORDS


@pytest.mark.parametrize(
    "got",
    [
        W,
        [*W[:14], "memo", *W[15:]],  # one word misheard
        [*W[:22], "with", "our", *W[24:]],  # two words for two
        [*W[:23], *W[24:]],  # a short word dropped
    ],
)
def test_noise_passes(got: list[str]) -> None:
    """A word or two misheard at a place passes."""
    assert_no_gap(W, got)


@pytest.mark.parametrize(
    "got",
    [
        W[3:],  # the start lost
        [*W[:8], *W[12:]],  # a gap mid-stream
        [*W[:12], *W[8:]],  # words repeated after a replay
        [w + "x" for w in W],  # a different text
    ],
)
def test_gaps_and_repeats_fail(got: list[str]) -> None:
    """Three or more words lost or repeated at a place, or many misheard, fail."""
    with pytest.raises(AssertionError):
        assert_no_gap(W, got)
