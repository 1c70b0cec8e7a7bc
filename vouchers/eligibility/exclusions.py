"""Exclusions: an operator's decision that one customer of a campaign is issued nothing.

Excluding takes the campaign's issuance lock exclusively (as a revocation does): a chunk
in flight finishes first, and every chunk that starts later skips the customer. Vouchers
already issued stay as they are; withdrawing them is a revocation's job. Lifting ends the
exclusion (``lifted_at``; the row stays as history) and the next run issues whatever the
customer was not issued yet. At most one exclusion is in force per customer (a partial
unique index); excluding again returns the one in force. Both moves are audited and fence
the customer's cached eligibility answer once they commit.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from voucher_service.audit import record_event
from voucher_service.problems import ProblemError
from vouchers.eligibility.registered import in_force as in_force_q
from vouchers.eligibility.registered import lock_campaign_issuance
from vouchers.models import Campaign, Exclusion


def campaign_exclusions(
    campaign: Campaign, *, customer_id: int | None = None, in_force: bool | None = None
) -> QuerySet[Exclusion]:
    exclusions = Exclusion.objects.filter(campaign=campaign).select_related("campaign")
    if customer_id is not None:
        exclusions = exclusions.filter(customer_id=customer_id)
    if in_force is not None:
        exclusions = exclusions.filter(in_force_q) if in_force else exclusions.exclude(in_force_q)
    return exclusions


def _audit(exclusion: Exclusion, *, actor: str, action: str, reason: str) -> None:
    record_event(actor=actor, action=f"exclusion.{action}", target_type="exclusion",
                 target_id=str(exclusion.pk),
                 payload={"campaign": exclusion.campaign.slug,
                          "customer_id": exclusion.customer_id, "reason": reason})


@transaction.atomic
def exclude_customer(
    *, campaign: Campaign, customer_id: int, reason: str, actor: str
) -> tuple[Exclusion, bool]:
    """Returns the exclusion in force and whether this call made it."""
    lock_campaign_issuance(campaign.pk, shared=False)
    existing = campaign_exclusions(campaign, customer_id=customer_id, in_force=True).first()
    if existing is not None:
        return existing, False
    exclusion = Exclusion.objects.create(campaign=campaign, customer_id=customer_id,
                                         reason=reason, created_by=actor)
    _audit(exclusion, actor=actor, action="created", reason=reason)
    return exclusion, True


@transaction.atomic
def lift_exclusion(
    *, campaign: Campaign, exclusion_id: int, actor: str, reason: str = ""
) -> Exclusion:
    exclusion = (Exclusion.objects.select_for_update().select_related("campaign")
                 .filter(campaign=campaign, pk=exclusion_id).first())
    if exclusion is None:
        raise ProblemError(status=404, code="exclusion_not_found", detail="No such exclusion.")
    if exclusion.lifted_at is not None:
        raise ProblemError(status=409, code="exclusion_lifted",
                           detail="This exclusion was lifted already.")
    exclusion.lifted_at = timezone.now()
    exclusion.lifted_by = actor
    exclusion.save(update_fields=["lifted_at", "lifted_by"])
    _audit(exclusion, actor=actor, action="lifted", reason=reason)
    return exclusion
