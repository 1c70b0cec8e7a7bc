"""Reads of redemptions for the API and the periodic jobs."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from vouchers.redemption.models import Redemption, RedemptionStatus


def get_redemption(redemption_id: UUID) -> Redemption | None:
    """With its voucher, whose balance the API shows."""
    return Redemption.objects.select_related("voucher").filter(pk=redemption_id).first()


def voucher_id_of(redemption_id: UUID) -> int | None:
    return (Redemption.objects.filter(pk=redemption_id)
            .values_list("voucher_id", flat=True).first())


def timed_out_hold_ids(*, now: datetime, limit: int) -> list[UUID]:
    """Holds past their ``authorized_until``, oldest first (the partial index's order)."""
    return list(
        Redemption.objects.filter(status=RedemptionStatus.AUTHORIZED, authorized_until__lte=now)
        .order_by("authorized_until").values_list("id", flat=True)[:limit]
    )
