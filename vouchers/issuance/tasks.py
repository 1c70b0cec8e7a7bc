"""Celery entry points of issuance. Every task is safe to run twice (``acks_late``).

Database errors that a retry can outlive (a restarted or unreachable PostgreSQL) are
retried with exponential backoff; when a chunk's retries run out, or on any other error,
the chunk and its run fail, naming the chunk.
"""

from __future__ import annotations

import random

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError

from vouchers.issuance import notifications, processing

TRANSIENT = (OperationalError, InterfaceError)


def backoff_seconds(retries: int) -> float:
    """Exponential with full jitter: a restarted database is not hit by every chunk at once."""
    ceiling = min(settings.ISSUANCE_RETRY_BACKOFF_MAX_SECONDS,
                  settings.ISSUANCE_RETRY_BACKOFF_SECONDS * 2**retries)
    # Jitter, not security: the standard generator is right here.
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311  # nosec B311


@shared_task(name="issuance.dispatch", acks_late=True)
def dispatch(run_id: str) -> int:
    return len(processing.dispatch(run_id=run_id))


@shared_task(bind=True, name="issuance.issue_chunk", acks_late=True,
             max_retries=settings.ISSUANCE_CHUNK_MAX_RETRIES)
def issue_chunk(self, chunk_id: int) -> None:
    claim = self.request.id or f"local-{chunk_id}"
    try:
        run_id = processing.process_chunk(chunk_id=chunk_id, claim=claim)
        if run_id is not None:
            processing.dispatch(run_id=run_id)
    except TRANSIENT as exc:
        if self.request.retries < self.max_retries:
            raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc
        processing.fail_chunk(chunk_id=chunk_id, claim=claim,
                              error=f"{type(exc).__name__}: {exc}")
    except DatabaseError as exc:
        processing.fail_chunk(chunk_id=chunk_id, claim=claim,
                              error=f"{type(exc).__name__}: {exc}")


@shared_task(name="issuance.tick", acks_late=True)
def tick() -> int:
    """Periodic: re-open chunks of dead workers, top up every active run's window."""
    return processing.recover()


@shared_task(name="issuance.drain_notifications", acks_late=True)
def drain_notifications() -> int:
    return notifications.drain()


@shared_task(name="issuance.enqueue_expiry_reminders", acks_late=True)
def enqueue_expiry_reminders() -> int:
    return notifications.enqueue_expiry_reminders()
