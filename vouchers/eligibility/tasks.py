"""Celery entry points of eligibility: the claim code's SMS delivery and its sweep; the
staging tables of registry imports that died."""

from __future__ import annotations

from uuid import UUID

from celery import shared_task

from vouchers.eligibility import importing, sms


@shared_task(name="eligibility.deliver_claim_code", acks_late=True)
def deliver_claim_code(challenge_id: str) -> bool:
    return sms.deliver(challenge_id=UUID(challenge_id))


@shared_task(name="eligibility.sweep_claim_outbox", acks_late=True)
def sweep_claim_outbox() -> int:
    return sms.sweep()


@shared_task(name="eligibility.drop_abandoned_imports", acks_late=True)
def drop_abandoned_imports() -> list[int]:
    return importing.drop_abandoned_staging()
