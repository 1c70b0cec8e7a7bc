"""Revoking an account found invalid after launch: its unspent vouchers, and every later run.

One transaction: the campaign's issuance lock taken exclusively (so a chunk in flight
finishes first and every later chunk sees the exclusion), each unspent voucher moved from
its holding account to ``revoked`` in the ledger and zeroed, an ``Exclusion`` in force,
the ``Revocation`` row and an audit event. Revoking a customer twice changes nothing and
returns the first revocation.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from voucher_service.audit import record_event
from vouchers.eligibility.exclusions import exclude_customer
from vouchers.eligibility.registered import lock_campaign_issuance
from vouchers.issuance.models import Revocation
from vouchers.ledger.posting import move, post_transaction
from vouchers.models import Account, Campaign, Reason, Voucher, VoucherStatus
from vouchers.models.expiry import hold_off_sweeps, past_expiry_q

_HOLDING = {VoucherStatus.ACTIVE: Account.LIABILITY, VoucherStatus.UNCLAIMED: Account.UNCLAIMED}


def _revoke_voucher(voucher: Voucher) -> None:
    post_transaction(
        campaign_id=voucher.campaign_id, reason=Reason.REVOCATION, voucher_id=voucher.pk,
        moves=[move(debit=_HOLDING[voucher.status], credit=Account.REVOKED,
                    amount_krw=voucher.balance_krw, category=voucher.category,
                    voucher_id=voucher.pk)],
    )
    Voucher.objects.filter(pk=voucher.pk, balance_krw=voucher.balance_krw).update(
        balance_krw=0, status=VoucherStatus.REVOKED
    )


@transaction.atomic
def revoke_customer(
    *, campaign: Campaign, customer_id: int, reason: str, actor: str
) -> tuple[Revocation, bool]:
    """Returns the revocation and whether this call made it."""
    lock_campaign_issuance(campaign.pk, shared=False)
    existing = Revocation.objects.filter(campaign=campaign, customer_id=customer_id).first()
    if existing is not None:
        return existing, False
    hold_off_sweeps()
    # An expired voucher is left as it is: what is left on it lapses to `expired`.
    vouchers = list(
        Voucher.objects.select_for_update()
        .filter(campaign=campaign, registry_customer_id=customer_id,
                status__in=[*_HOLDING, VoucherStatus.EXHAUSTED])
        .exclude(Q(status__in=list(_HOLDING)) & past_expiry_q(timezone.now()))
        .order_by("pk")
    )
    unspent = [v for v in vouchers if v.status in _HOLDING and v.balance_krw > 0]
    for voucher in unspent:
        _revoke_voucher(voucher)
    # Spent (or held) to zero: nothing to move now, but revoked all the same, so that a
    # later void or refund lapses to `revoked` instead of putting value back on it.
    Voucher.objects.filter(pk__in=[v.pk for v in vouchers if v not in unspent]).update(
        status=VoucherStatus.REVOKED)
    exclude_customer(campaign=campaign, customer_id=customer_id,
                     reason=f"revoked: {reason}"[:500], actor=actor)
    revocation = Revocation.objects.create(
        campaign=campaign, customer_id=customer_id, reason=reason, created_by=actor,
        vouchers_revoked=len(unspent), revoked_krw=sum(v.balance_krw for v in unspent),
    )
    record_event(actor=actor, action="revocation.created", target_type="revocation",
                 target_id=str(revocation.pk),
                 payload={"campaign": campaign.slug, "customer_id": customer_id,
                          "vouchers_revoked": revocation.vouchers_revoked,
                          "revoked_krw": revocation.revoked_krw})
    return revocation, True
