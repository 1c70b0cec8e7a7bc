"""Dropping cached eligibility answers once a chunk's customers hold vouchers.

The eligibility app owns the cache and its keys (``vouchers.eligibility.cache``, being
written alongside this app): its ``invalidate_eligibility(campaign_id, customer_ids)`` is
called with the chunk's registry customers after the chunk commits. Until that module
exists there is nothing cached to drop, and this call point does nothing.
"""

from __future__ import annotations

import importlib
import logging

from vouchers.models import RegistryEntry

logger = logging.getLogger(__name__)


def invalidate_chunk_eligibility(campaign_id: int, lo: int, hi: int) -> None:
    try:
        eligibility_cache = importlib.import_module("vouchers.eligibility.cache")
    except ModuleNotFoundError:
        return
    customer_ids = list(
        RegistryEntry.objects.filter(campaign_id=campaign_id, customer_id__gte=lo,
                                     customer_id__lt=hi)
        .values_list("customer_id", flat=True)
    )
    try:
        eligibility_cache.invalidate_eligibility(campaign_id, customer_ids)
    except Exception:  # a cache outage must not fail an issued chunk; entries expire anyway
        logger.exception("issuance: eligibility cache invalidation failed for %s [%s, %s)",
                         campaign_id, lo, hi)
