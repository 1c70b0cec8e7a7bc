"""Closed-account claims: one-time codes, and moving a closed account's vouchers.

Codes are six digits from ``secrets``, stored as HMAC-SHA256 under a key derived from
``SECRET_KEY`` over (challenge id, code), so a leaked table gives neither codes nor a way
to test guesses offline, and are compared with ``hmac.compare_digest``.

Moving vouchers (``transfer``) is the same for a confirmed code and a re-join reported by
the shop: the closed accounts in the registry with that phone hash, without an exclusion
in force, whose vouchers still wait ``unclaimed`` under their own registry id. Their voucher
rows are locked (``FOR UPDATE``, in id order), each gets a ``claim_transfer`` ledger
transaction moving its balance from ``unclaimed`` to ``liability`` (both holding accounts,
so the balance does not change), and then they move to the claimant as ``active``. A
claim row per account, unique per (campaign, registry account), backs the rule that a
closed account's vouchers are claimed once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import defaultdict
from collections.abc import Iterable
from uuid import UUID

from django.conf import settings
from django.db.models import F, QuerySet
from django.utils import timezone

from vouchers.eligibility.models import Claim, ClaimChallenge
from vouchers.eligibility.registered import excluded
from vouchers.ledger.posting import move, post_transaction
from vouchers.models import (
    Account,
    AccountStatus,
    Reason,
    RegistryEntry,
    Voucher,
    VoucherStatus,
)
from vouchers.models.expiry import hold_off_sweeps, past_expiry_q

CODE_DIGITS = 6


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def _code_key() -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), b"claim-code", hashlib.sha256).digest()


def code_hash(challenge_id: UUID, code: str) -> bytes:
    return hmac.new(_code_key(), challenge_id.bytes + code.encode(), hashlib.sha256).digest()


def code_matches(challenge: ClaimChallenge, code: str) -> bool:
    return hmac.compare_digest(code_hash(challenge.pk, code), bytes(challenge.code_hash))


def closed_accounts(*, campaign_ids: Iterable[int], phone_hash: bytes) -> QuerySet:
    """Registry ids of the closed accounts with this phone, no exclusion in force (the
    partial index on (campaign, phone_hash) of closed accounts finds them)."""
    return (RegistryEntry.objects
            .filter(campaign_id__in=list(campaign_ids), account_status=AccountStatus.CLOSED,
                    phone_hash=phone_hash)
            .exclude(excluded())
            .values("customer_id"))


def unclaimed_vouchers(*, campaign_ids: Iterable[int], phone_hash: bytes) -> QuerySet[Voucher]:
    campaign_ids = list(campaign_ids)
    return Voucher.objects.filter(
        campaign_id__in=campaign_ids,
        registry_customer_id__in=closed_accounts(campaign_ids=campaign_ids,
                                                 phone_hash=phone_hash),
        customer_id=F("registry_customer_id"),
        status=VoucherStatus.UNCLAIMED,
    ).exclude(past_expiry_q(timezone.now()))  # expired: it lapses, nothing to claim


def transfer(*, campaign_ids: Iterable[int], phone_hash: bytes, customer_id: int, via: str,
             actor: str, challenge: ClaimChallenge | None = None) -> list[Voucher]:
    """Moves the matching vouchers to ``customer_id``; call inside a transaction. Returns
    the moved vouchers (empty when nothing matched). A concurrent claim of the same
    account makes the claim insert fail (``IntegrityError``) rather than move twice."""
    hold_off_sweeps()
    vouchers = list(unclaimed_vouchers(campaign_ids=campaign_ids, phone_hash=phone_hash)
                    .select_for_update().order_by("pk"))
    accounts: dict[tuple[int, int], list[Voucher]] = defaultdict(list)
    for voucher in vouchers:
        post_transaction(
            campaign_id=voucher.campaign_id, reason=Reason.CLAIM_TRANSFER, voucher_id=voucher.pk,
            moves=[move(debit=Account.UNCLAIMED, credit=Account.LIABILITY,
                        amount_krw=voucher.balance_krw, category=voucher.category,
                        voucher_id=voucher.pk)],
        )
        accounts[(voucher.campaign_id, voucher.registry_customer_id)].append(voucher)
    Voucher.objects.filter(pk__in=[v.pk for v in vouchers],
                           status=VoucherStatus.UNCLAIMED).update(
        customer_id=customer_id, status=VoucherStatus.ACTIVE)
    Claim.objects.bulk_create(
        Claim(campaign_id=campaign_id, registry_customer_id=registry_customer_id,
              customer_id=customer_id, via=via, challenge=challenge,
              vouchers_moved=len(moved), amount_krw=sum(v.amount_krw for v in moved),
              created_by=actor)
        for (campaign_id, registry_customer_id), moved in accounts.items()
    )
    return list(Voucher.objects.filter(pk__in=[v.pk for v in vouchers])
                .select_related("campaign").order_by("pk"))
