"""One knob for slow machines: every timeout in the tests is multiplied by TEST_TIMING_SCALE."""

from __future__ import annotations

import os

TIMING = float(os.environ.get("TEST_TIMING_SCALE", "1"))
