"""Celery entry points of the shared code: periodic, each safe to run twice (``acks_late``)."""

from __future__ import annotations

from celery import shared_task

from voucher_service.sealing import seal_events


@shared_task(name="audit.seal_events", acks_late=True)
def seal_audit_events() -> int:
    return seal_events()
