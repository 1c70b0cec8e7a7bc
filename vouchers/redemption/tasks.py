"""Celery entry points of redemption: periodic, each safe to run twice (``acks_late``)."""

from __future__ import annotations

from celery import shared_task

from voucher_service.idempotency import purge_expired_keys
from vouchers.redemption import services
from vouchers.redemption.expiry import SweepDeferred, expire_vouchers


@shared_task(name="redemption.void_timed_out_holds", acks_late=True)
def void_timed_out_holds() -> int:
    return services.void_timed_out_holds()


@shared_task(name="redemption.expire_vouchers", acks_late=True,
             autoretry_for=(SweepDeferred,), retry_backoff=60, max_retries=10)
def expire_due_vouchers() -> int:
    return expire_vouchers().vouchers


@shared_task(name="redemption.purge_idempotency_keys", acks_late=True)
def purge_idempotency_keys() -> int:
    return purge_expired_keys()
