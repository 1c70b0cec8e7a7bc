"""Writes of appeals: filing, and the two decisions. One short transaction each, audited.

The customer's reason (and an operator's note or rejection reason) is free text that may
hold personal data: it is stored on the appeal and shown to the customer and to staff, but
never written to an audit payload or a log line. Audit events carry ids, the decision and
the account status only.

Accepting adds the customer to the campaign's registry as a late addition, in the same
transaction as the decision: the next issuance run issues their vouchers (a run plans
from the registry as it is then), and their cached eligibility answer is fenced once the
transaction commits, so the next check reads the new standing. A customer the registry
got meanwhile (a later import) is not added twice: the acceptance is refused, nothing
changes, and the appeal stays open for a rejection.
"""

from __future__ import annotations

from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from voucher_service.audit import record_event
from voucher_service.integrity import violated_constraint
from voucher_service.problems import ProblemError
from vouchers.appeals.models import ONE_OPEN_PER_CUSTOMER, Appeal, AppealStatus
from vouchers.eligibility.selectors import CampaignFacts
from vouchers.models import AccountStatus, RegistryEntry
from vouchers.models.registry import REGISTRY_KEY

# Violated when the registry has the customer already.


def _already_eligible() -> ProblemError:
    return ProblemError(status=409, code="already_eligible",
                        detail="This account is in the campaign's registry already.")


def _audit(appeal: Appeal, *, actor: str, action: str, slug: str, **payload: str) -> None:
    record_event(actor=actor, action=f"appeal.{action}", target_type="appeal",
                 target_id=str(appeal.pk),
                 payload={"campaign": slug, "customer_id": appeal.customer_id, **payload})


@transaction.atomic
def file_appeal(*, campaign: CampaignFacts, customer_id: int, reason: str,
                actor: str) -> Appeal:
    """409 ``already_eligible`` for a registry customer, ``appeal_exists`` while one of
    theirs is open (the partial unique index decides between concurrent filings)."""
    if RegistryEntry.objects.filter(campaign_id=campaign.id, customer_id=customer_id).exists():
        raise _already_eligible()
    try:
        with transaction.atomic():
            appeal = Appeal.objects.create(campaign_id=campaign.id, customer_id=customer_id,
                                           reason=reason)
    except IntegrityError as exc:
        if violated_constraint(exc) != ONE_OPEN_PER_CUSTOMER:
            raise
        raise ProblemError(status=409, code="appeal_exists",
                           detail="An appeal of yours for this campaign is still open.") from exc
    _audit(appeal, actor=actor, action="filed", slug=campaign.slug)
    return appeal


def _open_appeal(appeal_id: UUID, decision: str) -> Appeal:
    """The appeal, locked (its row only, not its campaign's) until the decision commits."""
    appeal = (Appeal.objects.select_for_update(of=("self",)).select_related("campaign")
              .filter(pk=appeal_id).first())
    if appeal is None:
        raise ProblemError(status=404, code="appeal_not_found", detail="No such appeal.")
    if appeal.status != AppealStatus.OPEN:
        raise ProblemError(status=409, code="invalid_transition",
                           detail=f"An appeal that is {appeal.status} cannot be {decision}.",
                           status_now=appeal.status)
    return appeal


def _decide(appeal: Appeal, *, status: str, actor: str, **decision: str) -> None:
    appeal.status = status
    appeal.decided_at = timezone.now()
    appeal.decided_by = actor
    for field, value in decision.items():
        setattr(appeal, field, value)
    appeal.save(update_fields=["status", "decided_at", "decided_by", *decision])


@transaction.atomic
def accept_appeal(*, appeal_id: UUID, account_status: str, note: str = "",
                  actor: str) -> Appeal:
    """Adds the customer to the registry (a closed account closed at the decision time,
    so its vouchers are issued ``unclaimed`` as any closed account's are)."""
    appeal = _open_appeal(appeal_id, AppealStatus.ACCEPTED)
    _decide(appeal, status=AppealStatus.ACCEPTED, actor=actor, account_status=account_status,
            note=note)
    try:
        with transaction.atomic():
            RegistryEntry.objects.create(
                campaign_id=appeal.campaign_id, customer_id=appeal.customer_id,
                account_status=account_status, imported_at=appeal.decided_at,
                account_closed_at=(appeal.decided_at if account_status == AccountStatus.CLOSED
                                   else None))
    except IntegrityError as exc:
        if violated_constraint(exc) != REGISTRY_KEY:
            raise
        raise _already_eligible() from exc  # an import added them since the filing
    _audit(appeal, actor=actor, action="accepted", slug=appeal.campaign.slug,
           decision=AppealStatus.ACCEPTED, account_status=account_status)
    return appeal


@transaction.atomic
def reject_appeal(*, appeal_id: UUID, reason: str, actor: str) -> Appeal:
    """``reason`` is what the customer reads as the appeal's ``decision_reason``."""
    appeal = _open_appeal(appeal_id, AppealStatus.REJECTED)
    _decide(appeal, status=AppealStatus.REJECTED, actor=actor, decision_reason=reason)
    _audit(appeal, actor=actor, action="rejected", slug=appeal.campaign.slug,
           decision=AppealStatus.REJECTED)
    return appeal
