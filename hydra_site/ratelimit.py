"""Token-bucket rate limits per IP address and per account, shared by every process.

One bucket per (limit name, key) holds ``events`` tokens and refills at ``events / seconds``;
each action takes one. It is stored as a single "theoretical arrival time" (the GCRA form of a
token bucket), so one atomic read-modify-write suffices: a Lua script when the cache is Redis
(the production setting, shared by all daphne and web processes), a lock otherwise (the
embedded default's per-process memory cache).

The websocket's limits are named in ``settings.HYDRA_RATE_LIMITS`` as ``name: (events, seconds)``
and applied with ``check_client(action, ip=..., user_id=...)`` (action ``"ws_connect"`` or
``"ws_message"``; per-session limits live in the consumer), or with ``check_clients`` for many
clients in one round trip (the ingest writer checks every message of a flush at once). The report button's one limit
(``HYDRA_REPORTS_PER_HOUR``) goes through ``check_client_limit``. Shared by the apps: it lives
in the project package so that none of them reaches into another for it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache

_GCRA_SCRIPT = """
local now = tonumber(ARGV[1])
local slack = 0.001
for index, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * index])
  local period = tonumber(ARGV[2 * index + 1])
  local tat = tonumber(redis.call('GET', key) or ARGV[1])
  if tat < now then tat = now end
  local new_tat = tat + interval
  if new_tat - now > period + slack then
    return {index, tostring(new_tat - now - period)}
  end
  redis.call('SET', key, tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
end
return {0, '0'}
"""
# The last token of a full bucket lands exactly on the period, and a rounding error must not refuse
# it: the script stores times with Lua's tostring (14 significant digits: epoch seconds to 0.1 ms).
# One millisecond of slack, the script's "slack" too.
ROUNDING_SLACK_S = 0.001
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


Bucket = tuple[Limit, str]  # one limit and the key (an address, an account) of one of its buckets


def _take_redis(backend: RedisCache, requests: Sequence[Sequence[Bucket]], now: float) -> list[RateLimited | None]:
    """Every request's script in one pipeline: one round trip to Redis however many requests there are."""
    client = backend._cache.get_client(write=True)  # the redis-py client behind Django's RedisCache
    pipeline = client.pipeline(transaction=False)
    asked = [buckets for buckets in requests if buckets]
    for buckets in asked:
        keys = [_cache_key(backend, limit, key) for limit, key in buckets]
        timing = [repr(value) for limit, _ in buckets for value in (limit.interval, limit.seconds)]
        pipeline.eval(_GCRA_SCRIPT, len(keys), *keys, repr(now), *timing)
    answers = iter(pipeline.execute() if asked else [])
    refusals: list[RateLimited | None] = []
    for buckets in requests:
        index, retry_after = next(answers) if buckets else (0, 0)
        refusals.append(RateLimited(buckets[int(index) - 1][0], float(retry_after)) if int(index) else None)
    return refusals


def _take_local(backend: BaseCache, requests: Sequence[Sequence[Bucket]], now: float) -> list[RateLimited | None]:
    refusals: list[RateLimited | None] = []
    with _local_lock:
        for buckets in requests:
            refusal = None
            for limit, key in buckets:
                cache_key = _cache_key(backend, limit, key)
                tat = max(float(backend.get(cache_key, now)), now)
                new_tat = tat + limit.interval
                if new_tat - now > limit.seconds + ROUNDING_SLACK_S:
                    refusal = RateLimited(limit, new_tat - now - limit.seconds)
                    break
                backend.set(cache_key, new_tat, timeout=math.ceil(new_tat - now) + 1)
            refusals.append(refusal)
    return refusals


def _cache_key(backend: BaseCache, limit: Limit, key: str) -> str:
    return backend.make_and_validate_key(f"ratelimit:{limit.name}:{key}")


def take_all(requests: Sequence[Sequence[Bucket]]) -> list[RateLimited | None]:
    """For each request, one token from each of its buckets in order, stopping at the first empty one.

    One refusal (or None) per request. A refused request takes nothing from the buckets after the
    one that refused it. Requests are applied in order, as if made one after another, and in one
    round trip to Redis: the ingest writer checks every message of a flush at once.
    """
    backend = caches["default"]
    now = time.time()
    if isinstance(backend, RedisCache):
        return _take_redis(backend, requests, now)
    return _take_local(backend, requests, now)


def take(limit: Limit, key: str) -> float:
    """Take one token from ``key``'s bucket: 0.0 when allowed, else the seconds until one returns."""
    refusal = take_all([[(limit, key)]])[0]
    return refusal.retry_after if refusal else 0.0


def _check(buckets: Sequence[Bucket]) -> None:
    refusal = take_all([buckets])[0]
    if refusal is not None:
        raise refusal


def check_limit(limit: Limit, key: str) -> None:
    """Take a token from ``key``'s bucket of ``limit`` or raise ``RateLimited``."""
    _check([(limit, key)])


def check(name: str, key: str) -> None:
    """Take a token from the named limit (``HYDRA_RATE_LIMITS``) for ``key`` or raise ``RateLimited``."""
    check_limit(configured_limit(name), key)


def client_buckets(action: str, *, ip: str | None, user_id: int | None) -> list[Bucket]:
    """``<action>_ip`` for the address and ``<action>_account`` for the account, when known."""
    buckets = []
    if ip:
        buckets.append((configured_limit(f"{action}_ip"), ip))
    if user_id is not None:
        buckets.append((configured_limit(f"{action}_account"), str(user_id)))
    return buckets


def check_client(action: str, *, ip: str | None, user_id: int | None) -> None:
    """Apply ``<action>_ip`` to the address and ``<action>_account`` to the account, when known."""
    _check(client_buckets(action, ip=ip, user_id=user_id))


def check_clients(action: str, clients: Sequence[tuple[str | None, int | None]]) -> list[RateLimited | None]:
    """``check_client`` for many (address, account) pairs in one round trip: a refusal or None for each."""
    return take_all([client_buckets(action, ip=ip, user_id=user_id) for ip, user_id in clients])


def check_client_limit(limit: Limit, *, ip: str | None, user_id: int | None) -> None:
    """Apply one limit to the address and, separately, to the account, when known."""
    buckets = []
    if ip:
        buckets.append((limit, f"ip:{ip}"))
    if user_id is not None:
        buckets.append((limit, f"account:{user_id}"))
    _check(buckets)


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
