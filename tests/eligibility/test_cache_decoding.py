"""The check's decoding of what the throttles' script read: the same values the cache
backend's ``get`` returns."""

from __future__ import annotations

import datetime as dt

from django.core.cache import cache as default_cache
from django_redis import get_redis_connection

from vouchers.eligibility import cache
from vouchers.eligibility.selectors import CampaignFacts

FACTS = CampaignFacts(7, "breach", "Breach", dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC), 50_000)


def _as_read(key: str) -> bytes:
    return get_redis_connection("default").get(default_cache.make_key(key))


def test_lookup_of_read_values_matches_lookup_by_itself():
    cache.store_campaign("breach", FACTS)
    cache.store_answer("breach", 101, b'{"eligible": true}')
    read = [_as_read(key) for key in cache.lookup_keys("breach", 101)]
    assert cache.lookup("breach", 101, read) == cache.lookup("breach", 101) \
        == (FACTS, b'{"eligible": true}')
    cache.fence_answers("breach", [101])
    read = [_as_read(key) for key in cache.lookup_keys("breach", 101)]
    assert cache.lookup("breach", 101, read) == cache.lookup("breach", 101) == (FACTS, None)
