"""The ops tools tools/install-ops-tools.sh puts in .tools/bin (nginx, grpcurl, grpc_health_probe)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.paths import ROOT

TOOLS_BIN = ROOT / ".tools" / "bin"
INSTALL_HINT = "run tools/install-ops-tools.sh"


def _tools_required() -> bool:
    """`make test` installs the ops tools first and sets TESTS_REQUIRE_OPS_TOOLS; so does CI."""
    return any(
        os.environ.get(var, "").lower() in {"1", "true", "yes"} for var in ("CI", "TESTS_REQUIRE_OPS_TOOLS")
    )


def find_ops_tool(name: str) -> str | None:
    """The path of an ops tool (`.tools/bin`, then PATH, then /usr/sbin), or None."""
    candidates = [TOOLS_BIN / name]
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    candidates.append(Path("/usr/sbin") / name)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def ops_tool(name: str) -> str:
    """The path of an ops tool; fails under `make test` and CI, skips elsewhere, when it is missing."""
    if (found := find_ops_tool(name)) is not None:
        return found
    reason = f"{name} is not installed ({INSTALL_HINT})"
    if _tools_required():
        pytest.fail(f"{reason}; make test installs it before the tests (tools/install-ops-tools.sh)")
    pytest.skip(reason)
