"""Token-bucket rate limits per IP address and per account, shared by every process.

One bucket per (limit name, key) holds ``events`` tokens and refills at ``events / seconds``;
each action takes one. It is stored as a single "theoretical arrival time" (the GCRA form of a
token bucket), so one atomic read-modify-write suffices: a Lua script when the cache is Redis
(the production setting, shared by all daphne and web processes), a lock otherwise (the
embedded default's per-process memory cache).

The websocket's limits are named in ``settings.HYDRA_RATE_LIMITS`` as ``name: (events, seconds)``
and applied with ``check_client(action, ip=..., user_id=...)`` (action ``"ws_connect"`` or
``"ws_message"``; per-session limits live in the consumer). The report button's one limit
(``HYDRA_REPORTS_PER_HOUR``) goes through ``check_client_limit``. Shared by the apps: it lives
in the project package so that none of them reaches into another for it.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache

_GCRA_SCRIPT = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > period then
  return tostring(new_tat - now - period)
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return '0'
"""
_local_lock = threading.Lock()


@dataclass(frozen=True)
class Limit:
    name: str
    events: int
    seconds: float

    @property
    def interval(self) -> float:
        return self.seconds / self.events


class RateLimited(Exception):
    """Raised when a bucket is empty; ``retry_after`` says in how many seconds a token returns."""

    def __init__(self, limit: Limit, retry_after: float) -> None:
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(
            f"Too many requests: at most {limit.events} per {limit.seconds:g} s "
            f"({limit.name}); try again in {math.ceil(retry_after)} s."
        )


def configured_limit(name: str) -> Limit:
    events, seconds = settings.HYDRA_RATE_LIMITS[name]
    if events <= 0 or seconds <= 0:
        raise ValueError(f"rate limit {name} must have positive events and seconds, got {events}/{seconds}")
    return Limit(name, events, seconds)


def _take_redis(backend: RedisCache, key: str, limit: Limit, now: float) -> float:
    client = backend._cache.get_client(key, write=True)  # the redis-py client behind Django's RedisCache
    return float(client.eval(_GCRA_SCRIPT, 1, key, repr(now), repr(limit.interval), repr(limit.seconds)))


def _take_local(backend: BaseCache, key: str, limit: Limit, now: float) -> float:
    with _local_lock:
        tat = max(float(backend.get(key, now)), now)
        new_tat = tat + limit.interval
        if new_tat - now > limit.seconds:
            return new_tat - now - limit.seconds
        backend.set(key, new_tat, timeout=math.ceil(new_tat - now) + 1)
        return 0.0


def take(limit: Limit, key: str) -> float:
    """Take one token from ``key``'s bucket: 0.0 when allowed, else the seconds until one returns."""
    backend = caches["default"]
    cache_key = backend.make_and_validate_key(f"ratelimit:{limit.name}:{key}")
    now = time.time()
    if isinstance(backend, RedisCache):
        return _take_redis(backend, cache_key, limit, now)
    return _take_local(backend, cache_key, limit, now)


def check_limit(limit: Limit, key: str) -> None:
    """Take a token from ``key``'s bucket of ``limit`` or raise ``RateLimited``."""
    retry_after = take(limit, key)
    if retry_after > 0:
        raise RateLimited(limit, retry_after)


def check(name: str, key: str) -> None:
    """Take a token from the named limit (``HYDRA_RATE_LIMITS``) for ``key`` or raise ``RateLimited``."""
    check_limit(configured_limit(name), key)


def check_client(action: str, *, ip: str | None, user_id: int | None) -> None:
    """Apply ``<action>_ip`` to the address and ``<action>_account`` to the account, when known."""
    if ip:
        check(f"{action}_ip", ip)
    if user_id is not None:
        check(f"{action}_account", str(user_id))


def check_client_limit(limit: Limit, *, ip: str | None, user_id: int | None) -> None:
    """Apply one limit to the address and, separately, to the account, when known."""
    if ip:
        check_limit(limit, f"ip:{ip}")
    if user_id is not None:
        check_limit(limit, f"account:{user_id}")


def reset_all() -> None:
    """Forget every bucket (tests start from full buckets; operators after changing limits)."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        client = backend._cache.get_client(write=True)
        pattern = backend.make_key("ratelimit:*")
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)
    else:
        with _local_lock:
            backend.clear()
