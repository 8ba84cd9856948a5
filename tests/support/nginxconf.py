"""A small reader and writer of nginx configuration files, for deriving test configs.

The deployment's ``deploy/nginx/nginx.conf`` is parsed into :class:`Directive` trees, a test
changes what cannot stay as written (listen address, upstream servers, pid, log and temp paths),
and :func:`render` writes it back. Every other directive reaches the running nginx unchanged.

It understands the syntax those files use: words, single- and double-quoted strings (kept
verbatim, quotes included), ``;``-terminated directives, ``{ ... }`` blocks and ``#`` comments.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


class NginxConfError(ValueError):
    """The text is not a well-formed nginx configuration."""


@dataclass
class Directive:
    """``name args...;`` or, when ``block`` is not None, ``name args... { block }``."""

    name: str
    args: list[str] = field(default_factory=list)
    block: list[Directive] | None = None

    def children(self, name: str) -> list[Directive]:
        """The directives called ``name`` directly inside this one's block."""
        return [d for d in self.block or [] if d.name == name]

    def child(self, name: str) -> Directive:
        """The one directive called ``name`` directly inside this block."""
        found = self.children(name)
        if len(found) != 1:
            raise KeyError(f"{self.name}: expected one {name!r}, found {len(found)}")
        return found[0]


def _tokens(text: str) -> Iterator[str]:
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{};":
            yield c
            i += 1
        elif c in "'\"":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise NginxConfError(f"unterminated string at offset {i}")
            yield text[i : j + 1]
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};#'\"":
                j += 1
            yield text[i:j]
            i = j


def parse(text: str) -> Directive:
    """The whole file as the block of a nameless root directive."""
    root = Directive("", [], [])
    stack = [root]
    words: list[str] = []
    for token in _tokens(text):
        if token == ";":
            if not words:
                raise NginxConfError("empty directive")
            _block(stack[-1]).append(Directive(words[0], words[1:]))
            words = []
        elif token == "{":
            if not words:
                raise NginxConfError("block without a name")
            directive = Directive(words[0], words[1:], [])
            _block(stack[-1]).append(directive)
            stack.append(directive)
            words = []
        elif token == "}":
            if words or len(stack) == 1:
                raise NginxConfError("unbalanced '}' or a directive without ';'")
            stack.pop()
        else:
            words.append(token)
    if words or len(stack) != 1:
        raise NginxConfError("unexpected end of file")
    return root


def _block(directive: Directive) -> list[Directive]:
    assert directive.block is not None
    return directive.block


def render(root: Directive) -> str:
    """Text nginx reads back as the same tree."""
    lines: list[str] = []

    def emit(directives: list[Directive], depth: int) -> None:
        pad = "    " * depth
        for d in directives:
            head = " ".join([d.name, *d.args])
            if d.block is None:
                lines.append(f"{pad}{head};")
            else:
                lines.append(f"{pad}{head} {{")
                emit(d.block, depth + 1)
                lines.append(f"{pad}}}")

    emit(_block(root), 0)
    return "\n".join(lines) + "\n"


def seconds(value: str) -> float:
    """An nginx time value (``330s``, ``4h``, ``90``, ``1m30s``) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}
    total, number = 0.0, ""
    i = 0
    while i < len(value):
        c = value[i]
        if c.isdigit():
            number += c
            i += 1
            continue
        unit = "ms" if value.startswith("ms", i) else c
        if not number or unit not in units:
            raise NginxConfError(f"not a time value: {value!r}")
        total += int(number) * units[unit]
        number = ""
        i += len(unit)
    if number:
        total += int(number)
    return total
