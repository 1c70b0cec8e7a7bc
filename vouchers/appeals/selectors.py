"""Reads of appeals: the operations queue and a customer's own, one filtered queryset."""

from __future__ import annotations

from django.db.models import QuerySet

from vouchers.appeals.models import Appeal
from vouchers.models import Campaign


def appeals(*, campaign: Campaign | None = None, status: str | None = None,
            customer_id: int | None = None) -> QuerySet[Appeal]:
    """Unordered: the pager orders (oldest first, the queue's order)."""
    found = Appeal.objects.select_related("campaign")
    if campaign is not None:
        found = found.filter(campaign=campaign)
    if status is not None:
        found = found.filter(status=status)
    if customer_id is not None:
        found = found.filter(customer_id=customer_id)
    return found
