"""Digits from Whisper become words, as Deepgram prints numbers without numerals/smart_format."""

from __future__ import annotations

import pytest

from transcribe_engine.numbers import cardinal, spell_numbers
from transcribe_engine.protocol import Word


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("3", "three"),
        ("42", "forty two"),
        ("100", "one hundred"),
        ("1,250", "one thousand two hundred fifty"),
        ("1961", "nineteen sixty one"),
        ("1905", "nineteen oh five"),
        ("2000", "two thousand"),
        ("90210", "nine zero two one zero"),
        ("007", "zero zero seven"),
        ("10001-90210", "one zero zero zero one nine zero two one zero"),
        ("3.14", "three point one four"),
        ("21st", "twenty first"),
        ("12th", "twelfth"),
        ("40th", "fortieth"),
        ("$5", "five dollars"),
        ("50%", "fifty percent"),
        ("123.", "one hundred twenty three."),
        ("(7)", "(seven)"),
        ("hello", "hello"),
        ("B-52", "B-52"),
    ],
)
def test_spelling(text: str, spoken: str) -> None:
    """Each kind of number token is read out the way a speaker says it."""
    words = spell_numbers([Word(text, 1.0, 2.0, 0.9)])
    assert " ".join(w.text for w in words) == spoken


def test_times_are_spread_over_the_token() -> None:
    """A token read as several words shares its time span, in order, without gaps."""
    words = spell_numbers([Word("Page", 0.0, 0.5, 1.0), Word("42.", 0.5, 1.1, 0.8)])
    assert [w.text for w in words] == ["Page", "forty", "two."]
    assert words[1].start == 0.5
    assert words[-1].end == pytest.approx(1.1)
    assert all(w.confidence == 0.8 for w in words[1:])


def test_large_cardinals() -> None:
    """Scales compose."""
    assert " ".join(cardinal(2_003_017)) == "two million three thousand seventeen"
