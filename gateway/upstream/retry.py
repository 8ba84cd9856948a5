"""The retry policy for opening upstream connections, applied by tenacity.

The decision of what is retryable is :func:`gateway.protocol.outcome.classify`'s alone; this
module only adds exponential backoff with full jitter and the attempt and time bounds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from gateway.errors import RetriesExhaustedError, UpstreamError
from gateway.protocol.outcome import classify
from gateway.upstream.connection import UpstreamConnection, UpstreamTarget, open_upstream

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of one (re)connect: attempts (the first included) and total time."""

    max_attempts: int
    max_elapsed_s: float
    initial_backoff_s: float
    max_backoff_s: float


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and classify(exc).retryable


async def connect_with_retry(
    target: UpstreamTarget,
    policy: RetryPolicy,
    *,
    attempts_used: int = 0,
    on_failure: Callable[[UpstreamError, int], None] | None = None,
) -> tuple[UpstreamConnection, int]:
    """Open a connection, retrying what is retryable; returns it and the attempts it took.

    ``attempts_used`` counts attempts already spent in the same outage (connections that
    failed before they answered anything), so a flapping upstream cannot reset the budget.
    Raises the error itself when it is not retryable, RetriesExhaustedError when the budget
    runs out.
    """
    remaining = max(policy.max_attempts - attempts_used, 1)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, UpstreamError):
            logger.info(
                "upstream connect attempt %d failed (%s); retrying in %.2f s",
                attempts_used + state.attempt_number,
                classify(exc).reason,
                state.upcoming_sleep,
            )
            if on_failure is not None:
                on_failure(exc, attempts_used + state.attempt_number)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(remaining) | stop_after_delay(policy.max_elapsed_s),
        wait=wait_random_exponential(multiplier=policy.initial_backoff_s, max=policy.max_backoff_s),
        retry=retry_if_exception(_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    attempt_number = 0
    try:
        async for attempt in retrying:
            attempt_number = attempt.retry_state.attempt_number
            with attempt:
                connection = await open_upstream(target)
    except UpstreamError as exc:
        if on_failure is not None:
            on_failure(exc, attempts_used + attempt_number)
        if _retryable(exc):
            raise RetriesExhaustedError(exc, attempts_used + attempt_number) from exc
        raise
    return connection, attempt_number
