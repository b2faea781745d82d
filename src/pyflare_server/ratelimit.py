"""Rate limiting of the query API: a token bucket per caller.

Each caller (an API key, a JWT subject, or the client address when auth is
off or failed) has a bucket of ``burst`` tokens refilled at ``requests_per_s``;
a request takes one token or is refused with 429 and ``Retry-After``.

:class:`MemoryLimiter` keeps the buckets in the process. :class:`RedisLimiter`
keeps them in Redis (``server.rate_limit.redis_url``) so API replicas share
them: one Lua script reads, refills and takes atomically, on Redis's clock.
When Redis cannot be reached the request is let through (rate limiting is a
guard against floods, not an access control) and a warning is logged once per
outage.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pyflare.errors import ConfigError
from pyflare_server.settings import RateLimitSettings

__all__ = ["Limiter", "MemoryLimiter", "RedisLimiter", "Verdict", "limiter_from_settings"]

logger = logging.getLogger(__name__)

# Buckets kept in memory before full (idle) ones are dropped.
_MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class Verdict:
    """Whether a request may go on; if not, how many seconds until it may."""

    allowed: bool
    retry_after_s: int = 0


class Limiter(Protocol):
    async def take(self, caller: str) -> Verdict:
        """Take one token from ``caller``'s bucket."""
        ...

    async def close(self) -> None: ...


def _retry_after(tokens: float, rate: float) -> int:
    return max(1, math.ceil((1.0 - tokens) / rate))


class MemoryLimiter:
    """Token buckets in this process (``clock`` is injectable for tests)."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ConfigError(f"rate limit: rate must be > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def _tokens(self, caller: str, now: float) -> float:
        tokens, last = self._buckets.get(caller, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - last) * self.rate)

    async def take(self, caller: str) -> Verdict:
        now = self._clock()
        tokens = self._tokens(caller, now)
        if len(self._buckets) >= _MAX_BUCKETS and caller not in self._buckets:
            self._prune(now)
        if tokens >= 1.0:
            self._buckets[caller] = (tokens - 1.0, now)
            return Verdict(True)
        self._buckets[caller] = (tokens, now)
        return Verdict(False, _retry_after(tokens, self.rate))

    def _prune(self, now: float) -> None:
        full = [c for c in self._buckets if self._tokens(c, now) >= self.burst]
        for caller in full:
            del self._buckets[caller]
        if len(self._buckets) >= _MAX_BUCKETS:
            # Still full of busy callers: forget them all rather than grow.
            self._buckets.clear()

    async def close(self) -> None:
        self._buckets.clear()


# KEYS[1] the bucket; ARGV rate (tokens/s), burst. Returns {allowed, retry_after_ms}.
# Redis's own clock (TIME), so replicas with skewed clocks share one bucket fairly.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait_ms = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, wait_ms}
"""


class RedisLimiter:
    """Token buckets in Redis, shared by every replica using the same ``redis_url``."""

    def __init__(self, redis_url: str, rate: float, burst: int, *, prefix: str = "pyflare:rl:"):
        import redis.asyncio as aioredis

        if rate <= 0 or burst < 1:
            raise ConfigError(f"rate limit: rate must be > 0 and burst >= 1, got {rate}, {burst}")
        try:
            self._client: Any = aioredis.Redis.from_url(
                redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
            )
        except ValueError as exc:
            raise ConfigError(
                f"server.rate_limit.redis_url: {exc}; expected redis://host:6379/0"
            ) from None
        self._script = self._client.register_script(_TAKE)
        self.rate = rate
        self.burst = burst
        self._prefix = prefix
        self._failing = False

    async def take(self, caller: str) -> Verdict:
        import redis

        try:
            allowed, wait_ms = await self._script(
                keys=[self._prefix + caller], args=[repr(self.rate), self.burst]
            )
        except redis.RedisError as exc:
            if not self._failing:
                logger.warning("rate limiting is off while Redis cannot be reached: %s", exc)
                self._failing = True
            return Verdict(True)
        if self._failing:
            logger.warning("Redis is back; rate limiting is on again")
            self._failing = False
        if int(allowed):
            return Verdict(True)
        return Verdict(False, max(1, math.ceil(int(wait_ms) / 1000)))

    async def close(self) -> None:
        await self._client.aclose()


def limiter_from_settings(settings: RateLimitSettings) -> Limiter | None:
    """The limiter ``server.rate_limit`` asks for, or None when it is off."""
    if not settings.enabled:
        return None
    if settings.redis_url is not None:
        if not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                "server.rate_limit.redis_url: expected redis://host:6379/0, rediss://… "
                f"or unix:///path, got {settings.redis_url!r}"
            )
        return RedisLimiter(settings.redis_url, settings.requests_per_s, settings.burst)
    return MemoryLimiter(settings.requests_per_s, settings.burst)
