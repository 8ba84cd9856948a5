"""Print the part of requirements.lock that an install of the gateway needs, hashes included.

requirements.lock pins, by hash, everything the project uses: the gateway, its `engine` extra,
the `dev` tools, and setuptools. An image needs less. This reads the lock's ``# via`` notes
(written by `uv pip compile`), starts from the gateway's own requirements in pyproject.toml
(plus the extras asked for, plus its build requirements with ``--build``) and keeps every
locked package reachable from them: exactly the lock's pins, none added, none re-resolved.

    python select_requirements.py [--extras engine] [--build] requirements.lock pyproject.toml

Standard library only: it runs in a bare python image before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_VIA_SOURCE = re.compile(r"\(.*\)$")


def normalize(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Locked:
    """One pinned package of the lock: its text (pin, hashes, comments) and who needs it."""

    name: str
    lines: list[str] = field(default_factory=list)
    needed_by: set[str] = field(default_factory=set)


def read_lock(text: str) -> dict[str, Locked]:
    packages: dict[str, Locked] = {}
    current: Locked | None = None
    in_via = False
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            current = packages.setdefault(normalize(match.group(1)), Locked(normalize(match.group(1))))
            current.lines.append(line)
            in_via = False
            continue
        if current is None:
            continue  # the header
        stripped = line.strip()
        if stripped.startswith("--hash") or stripped.endswith("\\"):
            current.lines.append(line)
            continue
        if stripped.startswith("# via"):
            rest = stripped.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                current.needed_by.add(_parent(rest))
        elif in_via and stripped.startswith("#"):
            current.needed_by.add(_parent(stripped.lstrip("#").strip()))
        else:
            in_via = False
    return packages


def _parent(note: str) -> str:
    # "transcribe-gateway (pyproject.toml)", "-r requirements.in", or a package name.
    return normalize(_VIA_SOURCE.sub("", note).strip())


def requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        match = _REQUIREMENT_NAME.match(requirement)
        if match:
            names.add(normalize(match.group(1)))
    return names


def local_packages(project: dict[str, Any]) -> set[str]:
    """Packages of this repository (``tool.uv.sources`` paths, such as the contract package):
    built from the source tree, not taken from the lock."""
    sources = project.get("tool", {}).get("uv", {}).get("sources", {})
    return {normalize(name) for name, source in sources.items() if "path" in source}


def select(lock: dict[str, Locked], roots: set[str]) -> list[Locked]:
    """Every locked package in ``roots`` or needed (transitively) by one that is."""
    missing = roots - lock.keys()
    if missing:
        raise SystemExit(f"not in the lock: {', '.join(sorted(missing))} (run `make lock`)")
    chosen = set(roots)
    changed = True
    while changed:
        changed = False
        for name, package in lock.items():
            if name not in chosen and package.needed_by & chosen:
                chosen.add(name)
                changed = True
    return [lock[name] for name in sorted(chosen)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--extras", default="", help="comma-separated extras of the gateway, e.g. engine")
    parser.add_argument("--build", action="store_true", help="also the build-system requirements")
    args = parser.parse_args(argv)

    project = tomllib.loads(args.pyproject.read_text())
    requirements = list(project["project"].get("dependencies", []))
    optional = project["project"].get("optional-dependencies", {})
    for extra in filter(None, (e.strip() for e in args.extras.split(","))):
        if extra not in optional:
            raise SystemExit(f"no extra {extra!r} in {args.pyproject}")
        requirements += optional[extra]
    if args.build:
        requirements += project.get("build-system", {}).get("requires", [])

    chosen = select(
        read_lock(args.lock.read_text()), requirement_names(requirements) - local_packages(project)
    )
    sys.stdout.write(
        f"# Selected from {args.lock.name} by select_requirements.py (extras: {args.extras or '-'})\n"
    )
    for package in chosen:
        sys.stdout.write("\n".join(package.lines) + "\n")


if __name__ == "__main__":
    main()
