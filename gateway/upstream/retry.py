"""The retry budget of one session's upstream connections. Pure: the relay core feeds it.

Every connection of a session (the first included, whether its handshake succeeds or not)
spends one attempt; only *progress*, a final result committed past the previous cursor, gives
the budget back. So an upstream that answers and then fails at the same point every time runs
out of attempts as surely as one that refuses every handshake.

The budget is also bounded in time: an *outage* starts when the upstream stopped doing useful
work (the oldest frame it left unanswered, or the failure itself) and may last at most
``max_elapsed_s``, stall time and backoff included.

Between every two connections there is a backoff with full jitter (AWS's "exponential backoff
and jitter"): a random wait in [0, min(max_backoff, initial x 2^(n-1))] for the n-th attempt
of the outage, so that gateways cut off together do not reconnect together.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of one outage: attempts (the first connection included) and total time."""

    max_attempts: int
    max_elapsed_s: float
    initial_backoff_s: float
    max_backoff_s: float


class RetryBudget:
    """Attempts and time left until the upstream has to show progress again."""

    def __init__(self, policy: RetryPolicy, rng: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self._rng = rng
        # Connections opened or tried since the last progress.
        self.attempts = 0
        # Since when the upstream has been failing (None: it is not).
        self.outage_since: float | None = None
        # Attempts made since the last connection that opened failed (for Reconnected events).
        self.attempts_this_reconnect = 0

    @property
    def deadline(self) -> float | None:
        """When the current outage must end (monotonic seconds), if there is one."""
        if self.outage_since is None:
            return None
        return self.outage_since + self.policy.max_elapsed_s

    def attempt(self) -> None:
        """A connection is being tried."""
        self.attempts += 1
        self.attempts_this_reconnect += 1

    def progress(self) -> None:
        """A final result moved the committed cursor: the upstream works again."""
        self.attempts = 0
        self.outage_since = None

    def failed(self, now: float, since: float | None = None) -> float | None:
        """A connection failed (``since``: the oldest frame it left unanswered, if any).

        Returns the backoff to wait before the next attempt, or None when the budget is spent:
        no attempt left, or the next one could not start before the outage's deadline.
        """
        if self.outage_since is None:
            self.outage_since = now if since is None else min(since, now)
        if self.attempts >= self.policy.max_attempts:
            return None
        delay = self.backoff()
        deadline = self.outage_since + self.policy.max_elapsed_s
        if now + delay >= deadline:
            return None
        return delay

    def backoff(self) -> float:
        """Full jitter over a capped exponential of the attempts made in this outage."""
        policy = self.policy
        exponent = min(max(self.attempts - 1, 0), 60)
        ceiling = min(policy.max_backoff_s, policy.initial_backoff_s * 2.0**exponent)
        return max(self._rng(), 0.0) * ceiling
