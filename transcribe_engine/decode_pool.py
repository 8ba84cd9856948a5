"""The decode pool: blocking decodes on a few threads, queued finals always before interims.

CTranslate2 releases the GIL, so threads use the cores. A final decode that waits behind
interims would delay the result a client waits for at an endpoint or a CloseStream; interims
only refresh a preview, so they wait (and are coalesced by their channel meanwhile).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar

T = TypeVar("T")


class DecodePool:
    """Runs blocking decodes on a few threads; queued finals always go before interims."""

    FINAL: Final = 0
    INTERIM: Final = 1

    def __init__(self, workers: int, on_decoded: Callable[[float, bool], None] | None = None) -> None:
        # on_decoded(seconds, final): what each decode took, for the capacity meter.
        self._on_decoded = on_decoded
        self.completed = 0  # decodes run so far
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine-decode")
        self._free = workers
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def run(self, priority: int, fn: Callable[[], T]) -> T:
        await self._acquire(priority)
        try:
            loop = asyncio.get_running_loop()
            start = time.perf_counter()
            result = await loop.run_in_executor(self._executor, fn)
            self.completed += 1
            if self._on_decoded is not None:
                self._on_decoded(time.perf_counter() - start, priority == self.FINAL)
            return result
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # granted just as we were cancelled: pass the slot on
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
