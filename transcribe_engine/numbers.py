"""Numbers as words: Deepgram writes spoken numbers as words unless numerals/smart_format is on.

Whisper always writes digits ("90210", "1961", "3.5%"). Without ``numerals`` or
``smart_format`` the engine turns them back into words as Deepgram would print them: short
numbers as cardinals, four-digit years as years, long digit strings digit by digit.
"""

from __future__ import annotations

import re
from typing import Final

from transcribe_engine.protocol import Word

_ONES: Final = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS: Final = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES: Final = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_SUFFIX: Final = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}

_CORE: Final = re.compile(r"^(?P<lead>[^\w$]*)(?P<core>.*?)(?P<trail>[^\w%]*)$")
_GROUPED: Final = re.compile(r"^\d{1,3}(,\d{3})+$")
_ORDINAL: Final = re.compile(r"^(\d+)(st|nd|rd|th)$", re.IGNORECASE)
_DECIMAL: Final = re.compile(r"^(\d+)\.(\d+)$")
_DIGITS: Final = re.compile(r"^\d+$")


def cardinal(number: int) -> list[str]:
    if number < 20:
        return [_ONES[number]]
    if number < 100:
        tens, ones = divmod(number, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return [_ONES[hundreds], "hundred"] + (cardinal(rest) if rest else [])
    for scale, name in _SCALES:
        if number >= scale:
            high, rest = divmod(number, scale)
            return [*cardinal(high), name] + (cardinal(rest) if rest else [])
    raise AssertionError("unreachable")


def _ordinal(number: int) -> list[str]:
    words = cardinal(number)
    last = words[-1]
    if last in _ORDINAL_SUFFIX:
        words[-1] = _ORDINAL_SUFFIX[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return words


def _year(number: int) -> list[str]:
    high, low = divmod(number, 100)
    if low == 0:
        return [*cardinal(high), "hundred"]
    if low < 10:
        return [*cardinal(high), "oh", _ONES[low]]
    return cardinal(high) + cardinal(low)


def _digits(text: str) -> list[str]:
    return [_ONES[int(d)] for d in text]


def _spell(core: str) -> list[str] | None:
    """Words for one number token, or None when it is not a number."""
    dollars = core.startswith("$")
    percent = core.endswith("%")
    body = core.removeprefix("$").removesuffix("%")
    words: list[str] | None = None
    if _GROUPED.match(body):
        words = cardinal(int(body.replace(",", "")))
    elif match := _ORDINAL.match(body):
        words = _ordinal(int(match.group(1)))
    elif match := _DECIMAL.match(body):
        words = [*cardinal(int(match.group(1))), "point", *_digits(match.group(2))]
    elif _DIGITS.match(body):
        value = int(body)
        if body.startswith("0") and len(body) > 1:
            words = _digits(body)
        elif len(body) <= 3:
            words = cardinal(value)
        elif len(body) == 4 and (1100 <= value <= 1999 or 2010 <= value <= 2099):
            words = _year(value)
        elif len(body) == 4 and value % 1000 == 0:
            words = cardinal(value)
        else:
            words = _digits(body)
    elif "-" in body and all(_DIGITS.match(part) for part in body.split("-")):
        words = [w for part in body.split("-") for w in _digits(part)]
    if words is None:
        return None
    if dollars:
        words.append("dollars")
    if percent:
        words.append("percent")
    return words


def spell_numbers(words: list[Word]) -> list[Word]:
    """Replace number tokens by words, spreading each token's time over its words."""
    out: list[Word] = []
    for word in words:
        match = _CORE.match(word.text.strip())
        spelled = _spell(match.group("core")) if match else None
        if not spelled or match is None:
            out.append(word)
            continue
        lead, trail = match.group("lead"), match.group("trail")
        step = (word.end - word.start) / len(spelled)
        for index, spoken in enumerate(spelled):
            text = (lead if index == 0 else "") + spoken + (trail if index == len(spelled) - 1 else "")
            start = word.start + index * step
            out.append(Word(text, start, start + step, word.confidence))
    return out
