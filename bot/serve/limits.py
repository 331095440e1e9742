"""Per-client rate limits of the HTTP API: a token bucket per client address."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

#: The most clients remembered (the least recently seen are forgotten first: a flood of addresses costs no memory).
MOST_CLIENTS = 10_000


class RateLimiter:
    """Allow each client ``burst`` requests at once and ``per_minute`` a minute after that."""

    def __init__(self, burst: int, per_minute: int) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Take one request for ``client``; return 0 when allowed, else the seconds until the next one is."""
        now = time.monotonic()
        with self._lock:
            tokens, when = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - when) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = max((1.0 - tokens) / self.rate, 1.0)
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > MOST_CLIENTS:
                self._buckets.popitem(last=False)
            return wait
