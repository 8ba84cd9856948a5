"""Ending with the parent: a supervised engine must not outlive the process that started it.

The supervisor cannot arrange this itself without ``preexec_fn``, which is unsafe in a process
that runs threads (the gateway's gRPC server does), so the child asks the kernel itself.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from typing import Final

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG: Final = 1
_POLL_S: Final = 1.0


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel send SIGTERM when ``parent_pid`` goes; exit now if it is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    # The parent may have died before the call above took effect: then we were re-parented.
    if os.getppid() != parent_pid:
        raise SystemExit(f"the supervising process {parent_pid} is gone")


async def watch_parent(parent_pid: int) -> None:
    """Return once the parent is gone (where no death signal exists, or it was missed)."""
    # No event announces re-parenting; polling getppid is the portable way to notice it.
    while os.getppid() == parent_pid:  # noqa: ASYNC110
        await asyncio.sleep(_POLL_S)
    logger.warning("the supervising process %d is gone; stopping", parent_pid)
