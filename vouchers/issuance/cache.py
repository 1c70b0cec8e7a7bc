"""Dropping cached eligibility answers once a chunk's customers hold vouchers.

The eligibility app owns the cache, its keys and the fence (``vouchers.eligibility.cache``);
this fences a chunk's registry customers after the chunk commits. Answers are cached only
once eligibility is open, so a chunk committed before that fences nothing (the registry
import follows the same rule).
"""

from __future__ import annotations

import logging

from django.utils import timezone

from vouchers.eligibility.cache import invalidate_eligibility
from vouchers.models import Campaign, RegistryEntry

logger = logging.getLogger(__name__)


def invalidate_chunk_eligibility(campaign_id: int, lo: int, hi: int) -> None:
    campaign = Campaign.objects.filter(pk=campaign_id).values("eligibility_opens_at").first()
    if campaign is None or timezone.now() < campaign["eligibility_opens_at"]:
        return
    customer_ids = list(
        RegistryEntry.objects.filter(campaign_id=campaign_id, customer_id__gte=lo,
                                     customer_id__lt=hi)
        .values_list("customer_id", flat=True)
    )
    try:
        invalidate_eligibility(campaign_id, customer_ids)
    except Exception:  # a cache outage must not fail an issued chunk; entries expire anyway
        logger.exception("issuance: eligibility cache invalidation failed for %s [%s, %s)",
                         campaign_id, lo, hi)
