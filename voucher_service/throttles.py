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
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
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
_COUNT_WINDOWS_SHA = hashlib.sha1(_COUNT_WINDOWS.encode(), usedforsecurity=False).hexdigest()


class _HeldConnection(threading.local):
    """Per thread: a Redis connection of its own for the throttles, made as the cache's
    pool makes its connections (same server, same timeouts).

    Taking a connection from the pool and giving it back costs a request more than the
    round trip itself (the pool's lock twice, and a non-blocking read to check that the
    connection is clean: three more system calls). A thread serves one request at a time,
    so it keeps one connection for its throttle script instead. The connection is the
    thread's alone: it closes when the thread ends (a development server's thread per
    request leaks nothing); one made for another cache backend (settings changed) or before
    a fork is dropped."""

    backend = None
    connection: AbstractConnection | None = None


_held = _HeldConnection()
# A forked child must not share the parent's socket (only the forking thread survives).
os.register_at_fork(after_in_child=lambda: setattr(_held, "backend", None))


def _connection(backend) -> AbstractConnection:
    if _held.backend is not backend:
        pool = backend.client.get_client(write=True).connection_pool
        _held.connection = pool.connection_class(**pool.connection_kwargs)
        _held.backend = backend
    return _held.connection


def _evalsha(connection: AbstractConnection, keys: list[str], windows: list[int]) -> list:
    evalsha = ("EVALSHA", _COUNT_WINDOWS_SHA, len(keys), *keys, *windows)
    try:
        try:
            connection.send_command(*evalsha)
            return connection.read_response()
        except NoScriptError:
            connection.send_command("SCRIPT", "LOAD", _COUNT_WINDOWS)
            connection.read_response()
            connection.send_command(*evalsha)
            return connection.read_response()
    except RedisError:
        raise  # the connection is clean, or redis-py has closed it
    except BaseException:
        # Interrupted between a command and its reply: that reply would be read as the
        # next command's.
        connection.disconnect()
        raise


def _count_windows(backend, keys: list[str], windows: list[int]) -> list:
    """One ``EVALSHA`` of the window script (loaded first if Redis does not know it)."""
    connection = _connection(backend)
    connection.connect()  # a no-op while connected; raises if Redis is down
    try:
        return _evalsha(connection, keys, windows)
    except RedisConnectionError:
        # The held connection was closed under it (Redis restarted, or dropped it as idle):
        # once more, on a new one, as the pool's check of a connection would have done. Only
        # if Redis ran the script and then the reply was lost is this request counted twice.
        return _evalsha(connection, keys, windows)


_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@functools.lru_cache(maxsize=64)
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

    As a view's ``throttle_classes`` it counts in DRF's check. A view that also reads the
    cache calls ``enforce`` itself instead, naming the keys (as given to Django's cache) to
    read in the same Redis round trip: it gets their values back as Redis holds them
    (encoded by the cache backend; None where missing), or None without Redis.
    """

    limits: tuple[tuple[str, Callable[[BaseThrottle, object], str | None]], ...] = ()

    def allow_request(self, request, view) -> bool:
        self._count(request, ())
        return not self._refused

    def enforce(self, request, view, *, reads: Sequence[str] = ()) -> list | None:
        """Counts the request, refuses it over a limit (429 with ``Retry-After``) as DRF's
        check would, and returns the values of ``reads``."""
        values = self._count(request, reads)
        if self._refused:
            view.throttled(request, self._wait)
        return values

    def _count(self, request, reads: Sequence[str]) -> list | None:
        self._refused, self._wait = False, None
        rates = api_settings.DEFAULT_THROTTLE_RATES
        keys, windows, allowed = [], [], []
        for scope, identify in self.limits:
            rate = rates.get(scope)
            ident = identify(self, request) if rate else None
            if ident is None:
                continue
            count, seconds = parse_rate(rate)
            keys.append(f"throttle:{scope}:{ident}")
            windows.append(seconds)
            allowed.append(count)
        if not keys and not reads:
            return []
        backend = caches[DEFAULT_CACHE_ALIAS]
        keys = [backend.make_key(key) for key in (*keys, *reads)]
        try:
            replies = _count_windows(backend, keys, windows)
        except RedisError as exc:
            logger.warning("throttles unavailable, failing open: %s", type(exc).__name__)
            return None
        counted = 2 * len(windows)
        over = [ttl for limit, count, ttl in zip(allowed, replies[0:counted:2],
                                                  replies[1:counted:2], strict=True)
                if count > limit]
        self._refused, self._wait = bool(over), max(over, default=None)
        return replies[counted:]

    def wait(self) -> int | None:
        return self._wait


class CheckThrottle(WindowThrottle):
    """The eligibility check: per customer and per client address."""

    limits = (("customer_check", _customer), ("ip_check", _address))


class ClaimThrottle(WindowThrottle):
    """Starting a closed-account claim: per customer, per phone and per client address."""

    limits = (("claim_customer", _customer), ("claim_phone", _phone), ("claim_ip", _address))


class AppealThrottle(WindowThrottle):
    """Filing an appeal: per customer."""

    limits = (("appeal_customer", _customer),)
