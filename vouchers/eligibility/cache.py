"""The eligibility answer cache (Redis through Django's cache, ``IGNORE_EXCEPTIONS`` on).

What is cached, per (campaign, customer): the whole answer as its rendered JSON body,
vouchers included, so that a hit costs no PostgreSQL, JSON encoding or serializer at all;
the campaign's opening time and amount ride along under their own key. Both keys
(``lookup_keys``) are read in the throttles' Redis round trip (the check view passes
them to ``CheckThrottle.enforce``), so a hit is one Redis command; ``lookup`` reads them
itself otherwise.
A change to an answer is fenced once its transaction commits, by one mechanism that no
writer calls by hand (``vouchers.eligibility.changes``); ``ELIGIBILITY_CACHE_SECONDS``
bounds what a missed fence could leave stale (``/me/vouchers`` always reads PostgreSQL).
Expiry changes answers without a write (``vouchers.models.expiry``): an answer is cached
no longer than until the first voucher it shows as live expires.

Invalidation writes a short-lived *fence* instead of deleting: a request that read
PostgreSQL before the writer committed would otherwise put its stale answer back right
after the delete. Answers are stored with ``add`` (``SET NX``), which a fence refuses, so
for ``ELIGIBILITY_CACHE_FENCE_SECONDS`` after a change every check reads PostgreSQL, and
the first one after that caches the new answer.

With Redis down every call here fails fast and quietly (the ``default`` cache ignores
connection errors; the fence scripts log one line): checks answer from PostgreSQL and
nothing is cached.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.utils import timezone
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)
FENCE = "fence"


def answer_key(slug: str, customer_id: int) -> str:
    return f"eligibility:{slug}:{customer_id}"


def campaign_key(slug: str) -> str:
    return f"eligibility-campaign:{slug}"


def lookup_keys(slug: str, customer_id: int) -> list[str]:
    return [campaign_key(slug), answer_key(slug, customer_id)]


def lookup(slug: str, customer_id: int, found: list[bytes | None] | None = None
           ) -> tuple[Any, bytes | None]:
    """The cached campaign facts and answer, each None on a miss (or a fence). ``found``:
    the values of ``lookup_keys`` as Redis holds them, if already read (with the
    throttles' counters)."""
    if found is None:
        values = cache.get_many(lookup_keys(slug, customer_id))
        facts, answer = values.get(campaign_key(slug)), values.get(answer_key(slug, customer_id))
    else:
        decode = caches[DEFAULT_CACHE_ALIAS].client.decode
        facts, answer = (None if value is None else decode(value) for value in found)
    return facts, None if answer == FENCE else answer


def cached_campaign(slug: str) -> Any:
    return cache.get(campaign_key(slug))


def store_campaign(slug: str, facts: Any) -> None:
    cache.set(campaign_key(slug), facts, settings.ELIGIBILITY_CAMPAIGN_CACHE_SECONDS)


def store_answer(slug: str, customer_id: int, answer: bytes,
                 changes_at: datetime | None = None) -> None:
    """Caches unless a fence (a change since this request may have read) is in place; not
    past ``changes_at`` (when a voucher it shows as live expires: expiry writes nothing
    that would fence it)."""
    seconds = settings.ELIGIBILITY_CACHE_SECONDS
    if changes_at is not None:
        seconds = min(seconds, math.ceil((changes_at - timezone.now()).total_seconds()))
    if seconds > 0:
        cache.add(answer_key(slug, customer_id), answer, seconds)


# KEYS: the answer keys; ARGV: the encoded fence, its lifetime in milliseconds.
_SET_FENCES = """
for _, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
end
return #KEYS
"""
FENCE_SLICE = 2_000  # keys per script call: Redis stays free for checks between slices


def fence_answers(slug: str, customer_ids: list[int]) -> None:
    """Fences the answers of these customers of the campaign ``slug``.

    The fences go out as server-side scripts of ``FENCE_SLICE`` keys each: what
    ``cache.set_many`` would write, without its client-built command per key (for a
    10,000-customer chunk, 350-435 ms of worker time against ~90 ms). Redis unreachable:
    nothing is fenced (checks read PostgreSQL while it is down) and one line is logged."""
    # The backend itself: an attribute read through the ``cache`` proxy is a thread-local
    # lookup, ~20 us a key when made per key.
    backend = caches[DEFAULT_CACHE_ALIAS]
    try:
        client = backend.client.get_client(write=True)
        script = client.register_script(_SET_FENCES)
        args = [backend.client.encode(FENCE), settings.ELIGIBILITY_CACHE_FENCE_SECONDS * 1000]
        for start in range(0, len(customer_ids), FENCE_SLICE):
            script(keys=[backend.make_key(answer_key(slug, cid))
                         for cid in customer_ids[start:start + FENCE_SLICE]], args=args)
    except RedisError as exc:
        logger.warning("eligibility fences not written, Redis unavailable: %s",
                       type(exc).__name__)
