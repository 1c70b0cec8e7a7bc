"""Rate limits kept in Redis: fixed-window counters, every limit of a view in one round trip.

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` by scope (``"60/min"``), read
per request (so a settings change applies at once). A refused request is a 429 problem
with code ``throttled`` and a ``Retry-After`` header (``voucher_service.problems``) that
says when the fullest window it passed ends.

Why not DRF's ``SimpleRateThrottle``: it keeps a pickled history per key, read and then
written back (two round trips per limit, and a burst of parallel requests can all pass on
the same history). The eligibility check of opening day runs two limits and a cache read;
at five Redis round trips the throttles cost more than the check itself. Here one Lua
script increments every window of the view atomically (``INCR``, ``EXPIRE`` on a new
window) and returns the counts: one round trip, no request slips through in a race.
Every attempt counts, refused ones included, so a client that keeps hammering stays
refused until its window ends.

Keys hold ids only: the customer id, the client address, or for the phone scope the keyed
hash of the normalised number (never the number). The client address is the socket's peer
unless ``REST_FRAMEWORK["NUM_PROXIES"]`` trusts that many proxies' ``X-Forwarded-For``
entries: a header a client can write must not choose its own bucket.

When Redis is unreachable the throttles fail *open* (one log line, no traceback): on
opening day an outage of the cache must not turn into an outage of the eligibility check,
which PostgreSQL can still answer. These limits shed floods; they are not quotas.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django_redis import get_redis_connection
from redis import Redis
from redis.commands.core import Script
from redis.exceptions import RedisError
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from voucher_service.phones import InvalidPhone, phone_hash

logger = logging.getLogger(__name__)

# KEYS: one counter per limit, then any keys to read; ARGV: each counter's window in
# seconds. Returns count and seconds left per counter, then the values read (nil if none).
_COUNT_WINDOWS = """
local out = {}
for i = 1, #ARGV do
    local count = redis.call('INCR', KEYS[i])
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 0 then
        ttl = tonumber(ARGV[i])
        redis.call('EXPIRE', KEYS[i], ttl)
    end
    out[2 * i - 1] = count
    out[2 * i] = ttl
end
for i = #ARGV + 1, #KEYS do
    out[#out + 1] = redis.call('GET', KEYS[i])
end
return out
"""


@functools.lru_cache(maxsize=8)
def _window_counter(redis: Redis) -> Script:
    """The script, registered once per client (``EVALSHA``, loaded again if Redis lost it)."""
    return redis.register_script(_COUNT_WINDOWS)


_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"60/min"`` -> (60, 60): DRF's rate syntax, requests per second, minute, hour or day."""
    count, period = rate.split("/")
    return int(count), _PERIODS[period[0]]


def _customer(throttle: BaseThrottle, request) -> str | None:
    customer_id = getattr(request.user, "customer_id", None)
    return None if customer_id is None else str(customer_id)


def _address(throttle: BaseThrottle, request) -> str | None:
    return throttle.get_ident(request)


def _phone(throttle: BaseThrottle, request) -> str | None:
    """The phone's keyed hash; a body without a valid phone is left to the view."""
    phone = request.data.get("phone") if isinstance(request.data, dict) else None
    if not isinstance(phone, str):
        return None
    try:
        return phone_hash(phone, key=settings.PHONE_HASH_KEY).hex()
    except InvalidPhone:
        return None


class WindowThrottle(BaseThrottle):
    """Counts the request against each (scope, caller identity) limit in ``limits``.

    A view with a ``throttle_reads(request)`` method names cache keys (as given to Django's
    cache) to read in the same round trip; their values (None where missing) are left in
    ``request.throttle_reads``. Without Redis that attribute is not set.
    """

    limits: tuple[tuple[str, Callable[[BaseThrottle, object], str | None]], ...] = ()

    def allow_request(self, request, view) -> bool:
        self._wait: int | None = None
        counters, windows, allowed = [], [], []
        for scope, identify in self.limits:
            rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope)
            ident = identify(self, request) if rate else None
            if ident is None:
                continue
            count, seconds = parse_rate(rate)
            counters.append(cache.make_key(f"throttle:{scope}:{ident}"))
            windows.append(seconds)
            allowed.append(count)
        reads = view.throttle_reads(request) if hasattr(view, "throttle_reads") else []
        if not counters and not reads:
            return True
        try:
            replies = _window_counter(get_redis_connection("default"))(
                keys=counters + [cache.make_key(key) for key in reads], args=windows)
        except RedisError as exc:
            logger.warning("throttles unavailable, failing open: %s", type(exc).__name__)
            return True
        counted, values = replies[:2 * len(counters)], replies[2 * len(counters):]
        request.throttle_reads = {key: None if value is None else cache.client.decode(value)
                                  for key, value in zip(reads, values, strict=True)}
        over = [ttl for limit, count, ttl in zip(allowed, counted[::2], counted[1::2],
                                                  strict=True) if count > limit]
        self._wait = max(over, default=None)
        return not over

    def wait(self) -> int | None:
        return self._wait


class CheckThrottle(WindowThrottle):
    """The eligibility check: per customer and per client address."""

    limits = (("customer_check", _customer), ("ip_check", _address))


class ClaimThrottle(WindowThrottle):
    """Starting a closed-account claim: per customer, per phone and per client address."""

    limits = (("claim_customer", _customer), ("claim_phone", _phone), ("claim_ip", _address))
