"""Fixtures of the deployment tests: the ops tools, found in .tools/bin (``make test`` installs
them; a missing one fails under ``make test`` and CI and skips elsewhere, naming the install
command). The helpers these tests use are in tests/support (gateway_process, processes, nginx).
"""

from __future__ import annotations

import pytest

from tests.support.ops_tools import ops_tool


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    return ops_tool("nginx")


@pytest.fixture(scope="session")
def grpcurl_bin() -> str:
    return ops_tool("grpcurl")


@pytest.fixture(scope="session")
def health_probe_bin() -> str:
    return ops_tool("grpc_health_probe")
