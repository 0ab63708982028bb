"""Per-user and per-address request budgets, in memory or shared through Redis."""

from __future__ import annotations

import ipaddress
import math
import time

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from kap.core.errors import RateLimited
from kap.core.settings import Settings


class RateLimiter:
    """`RATE_LIMIT_MAX` requests per `RATE_LIMIT_WINDOW_SEC` for each key."""

    def __init__(self, settings: Settings) -> None:
        if settings.kap_redis_url:
            self.storage = storage_from_string(settings.kap_redis_url, key_prefix="kap-rl")
        else:
            self.storage = storage_from_string("memory://")
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.item = RateLimitItemPerSecond(settings.rate_limit_max, settings.rate_limit_window_sec)
        self.backend = "redis" if settings.kap_redis_url else "memory"
        self.in_memory = self.backend == "memory"  # hits never wait on the network

    def hit(self, key: str) -> None:
        """Count one request for a key; raise RateLimited once the budget is spent."""
        if self.limiter.hit(self.item, key):
            return
        stats = self.limiter.get_window_stats(self.item, key)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
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
