"""Failed dashboard-token attempts, counted per client address: past MAX_FAILURES within
WINDOW_SECONDS the address gets 429 and a Retry-After, whatever it sends, until the oldest
failure leaves the window. Kept in each serving process's memory: a store shared between
workers would let a guesser make the database write on every guess."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final

MAX_FAILURES: Final = 10
WINDOW_SECONDS: Final = 60.0
# Addresses remembered at most; the least recently failing are forgotten first, so a flood
# of spoofed sources costs bounded memory (and earns each of them 10 guesses, not more).
MAX_ADDRESSES: Final = 10_000


class FailedAttempts:
    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window_seconds: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max, self._window, self._clock = max_failures, window_seconds, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.get(address, deque())
        horizon = self._clock() - self._window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None if it may now."""
        failures = self._recent(address)
        if len(failures) < self._max:
            return None
        return max(1, math.ceil(failures[0] + self._window - self._clock()))

    def failed(self, address: str) -> None:
        failures = self._recent(address)
        failures.append(self._clock())
        self._failures[address] = failures
        self._failures.move_to_end(address)
        while len(self._failures) > MAX_ADDRESSES:
            self._failures.popitem(last=False)
