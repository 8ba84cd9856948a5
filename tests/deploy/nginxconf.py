"""Moved to tests/support/nginxconf.py; importable from here too for modules that still do."""

from __future__ import annotations

from tests.support.nginxconf import *  # noqa: F403
