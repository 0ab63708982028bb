"""Per-user and per-address request budgets, in memory or shared through Redis."""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from typing import Any

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from kap.core.errors import RateLimited
from kap.core.settings import Settings


class MemoryWindows:
    """Fixed windows in this process: a window opens at a key's first hit and lasts `window` seconds.

    The same rule as the Redis-backed limiter, without its storage's expiry timer thread
    (which is restarted every few milliseconds under load).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, list[float]] = {}  # key -> [hits, window end]
        self._next_sweep = 0.0

    def hit(self, key: str, amount: int, window: float) -> float | None:
        """Count a hit; None when it is within budget, else the time its window ends."""
        now = time.time()
        with self._lock:
            if now >= self._next_sweep:
                self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
                self._next_sweep = now + window
            slot = self._windows.get(key)
            if slot is None or slot[1] <= now:
                slot = self._windows[key] = [0, now + window]
            if slot[0] >= amount:
                return slot[1]
            slot[0] += 1
            return None

    def check(self) -> bool:
        return True

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()


class RateLimiter:
    """`RATE_LIMIT_MAX` requests per `RATE_LIMIT_WINDOW_SEC` for each key."""

    def __init__(self, settings: Settings) -> None:
        self.item = RateLimitItemPerSecond(settings.rate_limit_max, settings.rate_limit_window_sec)
        self.backend = "redis" if settings.kap_redis_url else "memory"
        self.in_memory = self.backend == "memory"  # hits never wait on the network
        self.storage: Any
        if settings.kap_redis_url:
            self.storage = storage_from_string(settings.kap_redis_url, key_prefix="kap-rl")
            self.limiter: FixedWindowRateLimiter | None = FixedWindowRateLimiter(self.storage)
        else:
            self.storage = MemoryWindows()
            self.limiter = None

    def hit(self, key: str) -> None:
        """Count one request for a key; raise RateLimited once the budget is spent."""
        if self.limiter is None:
            ends = self.storage.hit(key, self.item.amount, self.item.get_expiry())
            if ends is None:
                return
        else:
            if self.limiter.hit(self.item, key):
                return
            ends = self.limiter.get_window_stats(self.item, key).reset_time
        retry = max(1, math.ceil(ends - time.time()))
        raise RateLimited(f"rate limit of {self.item.amount} requests per "
                          f"{self.item.multiples}s reached", headers={"Retry-After": str(retry)},
                          details={"retry_after": retry})

    def reset(self) -> None:
        self.storage.reset()


def client_address(peer: str | None, forwarded_for: str | None, trusted: list[str]) -> str:
    """The client's address: X-Forwarded-For is believed only from a trusted proxy."""
    peer = peer or "unknown"
    if not forwarded_for or not trusted or not _in_networks(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    # Walk from the nearest hop back; the first untrusted address is the client.
    for hop in reversed(hops):
        if not _in_networks(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _in_networks(address: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)
