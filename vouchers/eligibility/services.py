"""Writes of eligibility: claims of closed accounts' vouchers, re-joins, support's audit.

Every function is one short transaction with its audit event. Phone numbers come in only
to be hashed (and sealed, encrypted, into a claim's outbox envelope): they never reach the
database in the clear, nor the audit trail, the broker or a log. Cached eligibility
answers of everyone whose vouchers moved are dropped after the commit.
"""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from voucher_service.audit import record_event
from voucher_service.phones import normalize_phone, phone_hash
from voucher_service.problems import ProblemError
from vouchers.eligibility import claims, sms
from vouchers.eligibility.models import MAX_CODE_ATTEMPTS, ClaimChallenge, ClaimVia
from vouchers.eligibility.selectors import CampaignFacts
from vouchers.models import Campaign, Voucher

DELIVER_TASK = "eligibility.deliver_claim_code"


def _already_claimed() -> ProblemError:
    return ProblemError(status=409, code="already_claimed",
                        detail="These vouchers have already been claimed.")


def _moved_payload(vouchers: list[Voucher]) -> dict:
    return {"registry_customer_ids": sorted({v.registry_customer_id for v in vouchers}),
            "voucher_ids": [v.pk for v in vouchers],
            "amount_krw": sum(v.balance_krw for v in vouchers)}


@transaction.atomic
def start_claim(*, campaign: CampaignFacts, customer_id: int, phone: str,
                actor: str) -> ClaimChallenge:
    """The same work whether or not the phone matches a closed account with unclaimed
    vouchers (hash, lookup, code, message, envelope, row, audit, task): only the sealed
    ``send`` flag differs, and only the delivery task acts on it."""
    hashed = phone_hash(phone, key=settings.PHONE_HASH_KEY)
    matches = claims.unclaimed_vouchers(campaign_ids=[campaign.id], phone_hash=hashed).exists()
    now = timezone.now()
    challenge = ClaimChallenge(campaign_id=campaign.id, customer_id=customer_id, phone_hash=hashed,
                               created_at=now,
                               expires_at=now + dt.timedelta(
                                   seconds=settings.CLAIM_CODE_TTL_SECONDS))
    code = claims.new_code()
    challenge.code_hash = claims.code_hash(challenge.pk, code)
    challenge.outbox = sms.seal(to=normalize_phone(phone), body=sms.claim_code_message(code),
                                send=matches)
    challenge.save(force_insert=True)
    record_event(actor=actor, action="claim.started", target_type="claim_challenge",
                 target_id=str(challenge.pk), payload={"campaign": campaign.slug})
    transaction.on_commit(
        lambda: current_app.send_task(DELIVER_TASK, args=[str(challenge.pk)]), robust=True)
    return challenge


def _check_challenge(challenge: ClaimChallenge | None) -> ClaimChallenge:
    if challenge is None:
        raise ProblemError(status=404, code="challenge_not_found", detail="No such challenge.")
    if challenge.confirmed_at is not None:
        raise _already_claimed()
    if challenge.expires_at <= timezone.now() or challenge.attempts >= MAX_CODE_ATTEMPTS:
        raise ProblemError(status=410, code="challenge_expired",
                           detail="This code has expired or was entered wrongly too often; "
                                  "ask for a new one.")
    return challenge


def confirm_claim(*, challenge_id: UUID, customer_id: int, code: str,
                  actor: str) -> list[Voucher]:
    """Moves the vouchers of the challenge's matching closed accounts to the claimant.

    The challenge row is locked first, so concurrent confirms of one challenge line up and
    the second finds it confirmed (409). A wrong code's attempt is committed before the
    400 is raised; the fifth wrong one leaves the challenge spent (410 from then on)."""
    moved: list[Voucher] = []
    with transaction.atomic():
        challenge = _check_challenge(
            ClaimChallenge.objects.select_for_update().select_related("campaign")
            .filter(pk=challenge_id, customer_id=customer_id).first())
        if not claims.code_matches(challenge, code):
            challenge.attempts += 1
            challenge.save(update_fields=["attempts"])
            attempts_left = MAX_CODE_ATTEMPTS - challenge.attempts
        else:
            attempts_left = None
            try:
                with transaction.atomic():
                    moved = claims.transfer(
                        campaign_ids=[challenge.campaign_id],
                        phone_hash=bytes(challenge.phone_hash), customer_id=customer_id,
                        via=ClaimVia.CODE, actor=actor, challenge=challenge)
            except IntegrityError as exc:
                raise _already_claimed() from exc
            if not moved:
                raise _already_claimed()
            challenge.confirmed_at = timezone.now()
            challenge.save(update_fields=["confirmed_at"])
            record_event(actor=actor, action="claim.confirmed", target_type="claim_challenge",
                         target_id=str(challenge.pk),
                         payload={"campaign": challenge.campaign.slug, "via": ClaimVia.CODE,
                                  **_moved_payload(moved)})
    if attempts_left is not None:
        raise ProblemError(status=400, code="invalid_code", detail="The code is not right.",
                           attempts_left=attempts_left)
    return moved


@transaction.atomic
def report_rejoined(*, customer_id: int, phone: str, actor: str) -> list[Voucher]:
    """The shop verified this phone at ``customer_id``'s sign-up: the unclaimed vouchers
    of eligible closed accounts with that phone, in every campaign, move to it."""
    moved = claims.transfer(
        campaign_ids=Campaign.objects.values_list("pk", flat=True),
        phone_hash=phone_hash(phone, key=settings.PHONE_HASH_KEY), customer_id=customer_id,
        via=ClaimVia.REJOINED, actor=actor)
    record_event(actor=actor, action="claim.rejoined", target_type="customer",
                 target_id=str(customer_id), payload={"via": ClaimVia.REJOINED,
                                                      **_moved_payload(moved)})
    return moved


@transaction.atomic
def record_customer_lookup(*, customer_id: int, actor: str) -> None:
    """Support looked at one customer's eligibility and vouchers."""
    record_event(actor=actor, action="support.customer_viewed", target_type="customer",
                 target_id=str(customer_id))
