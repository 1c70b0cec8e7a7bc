"""A chunk fences the cached eligibility answers of its customers, once answers are cached
at all (eligibility open), with the fence and lifetime the eligibility app defines."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache
from django.utils import timezone

from vouchers.eligibility.cache import FENCE, answer_key
from vouchers.issuance.cache import invalidate_chunk_eligibility

pytestmark = pytest.mark.django_db


def _keys(campaign, customers) -> list[str]:
    return [answer_key(campaign.slug, cid) for cid in customers]


def test_an_open_campaign_fences_the_chunks_customers(campaign, settings):
    cache.delete_many(_keys(campaign, range(1, 13)))
    invalidate_chunk_eligibility(campaign.pk, 1, 11)
    fenced = cache.get_many(_keys(campaign, range(1, 13)))
    assert fenced == {key: FENCE for key in _keys(campaign, range(1, 11))}
    assert 0 < cache.ttl(answer_key(campaign.slug, 10)) <= settings.ELIGIBILITY_CACHE_FENCE_SECONDS


def test_before_eligibility_opens_nothing_is_fenced(campaign):
    campaign.eligibility_opens_at = timezone.now() + dt.timedelta(days=1)
    campaign.save(update_fields=["eligibility_opens_at"])
    cache.delete_many(_keys(campaign, range(1, 11)))
    invalidate_chunk_eligibility(campaign.pk, 1, 11)
    assert cache.get_many(_keys(campaign, range(1, 11))) == {}
