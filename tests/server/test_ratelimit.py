"""Rate limiting: token buckets in process and in a real Redis; 429 with Retry-After."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _auth import auth_app

from pyflare.errors import ConfigError
from pyflare_server.ratelimit import MemoryLimiter, RedisLimiter, limiter_from_settings
from pyflare_server.settings import RateLimitSettings

REDIS_SERVER = "/usr/bin/redis-server"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def take(limiter: object, caller: str) -> tuple[bool, int]:
    verdict = asyncio.run(limiter.take(caller))  # type: ignore[attr-defined]
    return verdict.allowed, verdict.retry_after_s


def test_a_bucket_allows_its_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = MemoryLimiter(rate=2.0, burst=3, clock=clock)
    assert [take(limiter, "a")[0] for _ in range(3)] == [True, True, True]
    assert take(limiter, "a") == (False, 1)
    assert take(limiter, "b") == (True, 0)  # one bucket per caller
    clock.now += 0.5  # one token back
    assert take(limiter, "a") == (True, 0)
    assert take(limiter, "a")[0] is False
    clock.now += 60  # never more than the burst
    assert [take(limiter, "a")[0] for _ in range(4)] == [True, True, True, False]


def test_retry_after_says_when_a_token_is_back() -> None:
    limiter = MemoryLimiter(rate=0.1, burst=1, clock=Clock())
    assert take(limiter, "a") == (True, 0)
    assert take(limiter, "a") == (False, 10)


def test_memory_stays_bounded_with_many_callers() -> None:
    clock = Clock()
    limiter = MemoryLimiter(rate=1000.0, burst=1, clock=clock)
    for i in range(10_050):
        take(limiter, f"caller-{i}")
        clock.now += 0.01
    assert len(limiter._buckets) <= 10_000


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"redis_url": "http://localhost:6379"}, "expected redis://"),
        ({"redis_url": "redis://localhost:notaport"}, "redis_url"),
    ],
)
def test_bad_redis_urls_are_named(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        limiter_from_settings(RateLimitSettings(**values))


def test_limits_off() -> None:
    assert limiter_from_settings(RateLimitSettings(enabled=False)) is None
    assert isinstance(limiter_from_settings(RateLimitSettings()), MemoryLimiter)


def test_the_api_answers_429_with_retry_after_per_key(tmp_path: Path) -> None:
    config = {"server": {"rate_limit": {"requests_per_s": 0.01, "burst": 2}}}
    with auth_app(tmp_path, config) as app:
        assert [app.get("/api/v1/traces", "admin").status_code for _ in range(2)] == [200, 200]
        refused = app.get("/api/v1/traces", "admin")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "100"
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "rate_limited"
        # Another key has its own bucket; health and the receivers are not limited.
        assert app.get("/api/v1/traces", "developer").status_code == 200
        assert all(app.get("/health").status_code == 200 for _ in range(5))
        # Failed logins count against the client's address.
        statuses = [app.get("/api/v1/traces", "pf_bad").status_code for _ in range(3)]
        assert statuses == [401, 401, 429]


# -- Redis ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A real redis-server on a free port, without persistence, stopped by PID."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


async def _takes(limiters: list[RedisLimiter], caller: str, n: int) -> list[bool]:
    results = []
    for i in range(n):
        verdict = await limiters[i % len(limiters)].take(caller)
        results.append(verdict.allowed)
    return results


def test_redis_buckets_are_shared_by_replicas(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        replicas = [RedisLimiter(redis_server.url, 0.001, 3) for _ in range(2)]
        try:
            # Two API replicas take from one bucket: 3 in all, then refused.
            assert await _takes(replicas, "key:k1", 5) == [True, True, True, False, False]
            refused = await replicas[0].take("key:k1")
            assert refused.retry_after_s >= 999
            assert (await replicas[1].take("key:k2")).allowed
            # Concurrent takes never give out more than the burst (the script is atomic).
            many = await asyncio.gather(*(replicas[i % 2].take("key:k3") for i in range(20)))
            assert sum(v.allowed for v in many) == 3
        finally:
            for replica in replicas:
                await replica.close()

    asyncio.run(scenario())


def test_redis_down_lets_requests_through_and_says_so(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        limiter = RedisLimiter(redis_server.url, 0.001, 1)
        try:
            assert (await limiter.take("c")).allowed
            assert not (await limiter.take("c")).allowed
            redis_server.stop()
            with caplog.at_level(logging.WARNING, logger="pyflare_server.ratelimit"):
                assert (await limiter.take("c")).allowed
                assert (await limiter.take("c")).allowed
            warnings = [r for r in caplog.records if "Redis cannot be reached" in r.message]
            assert len(warnings) == 1  # once per outage
        finally:
            await limiter.close()

    asyncio.run(scenario())


def test_the_api_limits_with_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    config = {
        "server": {
            "rate_limit": {"requests_per_s": 0.01, "burst": 2, "redis_url": redis_server.url}
        }
    }
    with auth_app(tmp_path, config) as app:
        statuses = [app.get("/api/v1/traces", "viewer").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert int(app.get("/api/v1/traces", "viewer").headers["retry-after"]) >= 99
        assert app.get("/api/v1/traces", "admin").status_code == 200
