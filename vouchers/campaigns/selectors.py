"""Campaign reads, components prefetched (a campaign's amount is their sum)."""

from __future__ import annotations

from django.db.models import QuerySet

from voucher_service.problems import ProblemError
from vouchers.models import Campaign


def campaigns() -> QuerySet[Campaign]:
    return Campaign.objects.prefetch_related("components")


def campaign_by_slug(slug: str) -> Campaign:
    """The campaign, or a 404 problem ``campaign_not_found``."""
    campaign = campaigns().filter(slug=slug).first()
    if campaign is None:
        raise ProblemError(status=404, code="campaign_not_found", detail=f"No campaign {slug!r}.")
    return campaign
