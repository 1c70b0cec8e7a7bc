"""Dropping cached eligibility answers once a chunk's customers hold vouchers.

The eligibility app owns the cache and its keys; this is called with the chunk's registry
customers after the chunk commits.
"""

from __future__ import annotations

import logging

from vouchers.eligibility.cache import invalidate_eligibility
from vouchers.models import RegistryEntry

logger = logging.getLogger(__name__)


def invalidate_chunk_eligibility(campaign_id: int, lo: int, hi: int) -> None:
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
