"""What the workers do: dispatch a window of chunks, issue one chunk, recover lost ones.

A chunk moves ``pending -> running -> done`` (or ``failed``). The claim (``pending ->
running``) is a conditional UPDATE committed on its own, so several workers never take the
same chunk. Issuing then runs in a second transaction that holds the chunk row locked
(``FOR UPDATE``) from the claim check to ``done``: vouchers, ledger, outbox and the chunk's
``done`` commit together or not at all.

A worker killed mid-chunk leaves it ``running`` with no lock held; ``recover`` resets such
chunks (``running``, unlocked, claimed more than ``ISSUANCE_CHUNK_STALE_SECONDS`` ago) to
``pending``, and pending chunks whose message went missing, so the next dispatch sends
them again. Re-issuing is harmless: the chunk statement is idempotent.
"""

from __future__ import annotations

import datetime as dt
import logging
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from voucher_service.audit import record_event
from vouchers.issuance.chunk import issue
from vouchers.issuance.models import ChunkStatus, IssuanceChunk, IssuanceRun, RunStatus
from vouchers.issuance.statistics import refresh_voucher_statistics
from vouchers.models.changes import customers_changed

logger = logging.getLogger(__name__)
SYSTEM_ACTOR = "system:issuance"
CHUNK_TASK = "issuance.issue_chunk"


def _system_transition(run: IssuanceRun, to: str, **payload) -> None:
    previous, run.status = run.status, to
    record_event(actor=SYSTEM_ACTOR, action=f"issuance_run.{to}", target_type="issuance_run",
                 target_id=str(run.pk),
                 payload={"campaign_id": run.campaign_id, "from": previous, "to": to,
                          **payload})


def dispatch(*, run_id: UUID) -> list[int]:
    """Starts a queued run, completes a finished one, and sends pending chunks until
    ``ISSUANCE_MAX_IN_FLIGHT`` are in flight. Returns the chunk ids sent.

    A run whose chunks are all done has the planner's statistics of the voucher table
    refreshed (``statistics``) before it is marked completed, outside the transaction
    (seconds of ``ANALYZE`` must not hold the run's row lock): whoever waits for the run
    to complete, the opening day's checks included, finds the statistics right."""
    ids = _dispatch(run_id)
    if ids is None:
        refresh_voucher_statistics()
        _complete(run_id)
        return []
    return ids


def _complete(run_id: UUID) -> None:
    with transaction.atomic():
        run = IssuanceRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != RunStatus.RUNNING:
            return
        if run.chunks.exclude(status=ChunkStatus.DONE).exists():
            return
        run.finished_at = timezone.now()
        _system_transition(run, RunStatus.COMPLETED)
        run.save(update_fields=["status", "finished_at"])


def _dispatch(run_id: UUID) -> list[int] | None:
    """The chunk ids sent; None when every chunk is done."""
    with transaction.atomic():
        run = IssuanceRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
            return []
        now = timezone.now()
        if run.status == RunStatus.QUEUED:
            run.started_at = run.started_at or now
            _system_transition(run, RunStatus.RUNNING)
            run.save(update_fields=["status", "started_at"])
        chunks = run.chunks.all()
        counts = chunks.aggregate(
            open=Count("pk", filter=~Q(status=ChunkStatus.DONE)),
            in_flight=Count("pk", filter=Q(status=ChunkStatus.RUNNING)
                            | Q(status=ChunkStatus.PENDING, dispatched_at__isnull=False)),
        )
        if counts["open"] == 0:
            return None
        free = settings.ISSUANCE_MAX_IN_FLIGHT - counts["in_flight"]
        if free <= 0:
            return []
        ids = list(
            chunks.filter(status=ChunkStatus.PENDING, dispatched_at__isnull=True)
            .order_by("lo").values_list("pk", flat=True)[:free]
        )
        IssuanceChunk.objects.filter(pk__in=ids).update(dispatched_at=now)
        transaction.on_commit(lambda: [current_app.send_task(CHUNK_TASK, args=[i]) for i in ids])
    return ids


_CLAIM = """
UPDATE issuance_issuancechunk c
SET status = 'running', attempts = c.attempts + 1, started_at = now(),
    claimed_by = %(claim)s, dispatched_at = NULL
FROM issuance_issuancerun r
WHERE c.id = %(chunk_id)s AND r.id = c.run_id AND r.status = 'running'
  AND (c.status = 'pending' OR (c.status = 'running' AND c.claimed_by = %(claim)s))
RETURNING c.run_id
"""

# The claim failed (run not running, chunk done or another worker's): give back a claim we
# hold from an earlier attempt and forget the dispatch, so that a resume sends it again.
_RELEASE = """
UPDATE issuance_issuancechunk
SET status = 'pending', claimed_by = '', dispatched_at = NULL
WHERE id = %(chunk_id)s
  AND (status = 'pending' OR (status = 'running' AND claimed_by = %(claim)s))
"""


def process_chunk(*, chunk_id: int, claim: str) -> UUID | None:
    """Issues the chunk if its run is running and nobody else holds it; returns the run id
    when the chunk was issued (the caller then dispatches more), else None. ``claim`` is
    the task id: the same task's retries may take back their own claim."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM, {"chunk_id": chunk_id, "claim": claim})
        claimed = cursor.fetchone()
        if claimed is None:
            cursor.execute(_RELEASE, {"chunk_id": chunk_id, "claim": claim})
            return None
    with transaction.atomic():
        # The chunk row only (``of``): locking the joined run row too would make every
        # worker's chunk wait for the one in flight, whatever the concurrency.
        chunk = (IssuanceChunk.objects.select_for_update(of=("self",)).select_related("run")
                 .filter(pk=chunk_id, status=ChunkStatus.RUNNING, claimed_by=claim).first())
        if chunk is None:  # recovered meanwhile and taken by another worker
            return None
        staged = chunk.run.max_customers is not None
        issued = issue(campaign_id=chunk.run.campaign_id, lo=chunk.lo, hi=chunk.hi,
                       run_id=chunk.run_id, chunk_id=chunk.pk,
                       limit=chunk.customers if staged else None)
        chunk.status = ChunkStatus.DONE
        chunk.finished_at = timezone.now()
        chunk.vouchers_issued = issued.vouchers
        chunk.customers_done = chunk.customers
        chunk.last_error = ""
        chunk.save(update_fields=["status", "finished_at", "vouchers_issued", "customers_done",
                                  "last_error"])
        if issued.customers is None:
            customers_changed(campaign_id=chunk.run.campaign_id,
                              customer_range=(chunk.lo, chunk.hi))
        else:
            customers_changed(campaign_id=chunk.run.campaign_id, customer_ids=issued.customers)
    return chunk.run_id


@transaction.atomic
def fail_chunk(*, chunk_id: int, claim: str, error: str) -> None:
    """The chunk exhausted its retries (or hit a permanent error): it and its run fail,
    the run naming the chunk."""
    chunk = IssuanceChunk.objects.filter(pk=chunk_id).select_related("run").first()
    if chunk is None:
        return
    run = IssuanceRun.objects.select_for_update().get(pk=chunk.run_id)
    updated = IssuanceChunk.objects.filter(
        pk=chunk_id, status=ChunkStatus.RUNNING, claimed_by=claim
    ).update(status=ChunkStatus.FAILED, last_error=error[:2000], finished_at=timezone.now())
    if not updated or run.status not in (RunStatus.RUNNING, RunStatus.PAUSED):
        return
    run.failed_chunk_id = chunk_id
    run.failure_detail = (
        f"chunk {chunk_id} (customers {chunk.lo}..{chunk.hi - 1}) failed after "
        f"{chunk.attempts} attempt(s): {error[:500]}"
    )
    run.finished_at = timezone.now()
    _system_transition(run, RunStatus.FAILED, chunk_id=chunk_id)
    run.save(update_fields=["status", "failed_chunk", "failure_detail", "finished_at"])


_RECOVER_RUNNING = """
UPDATE issuance_issuancechunk SET status = 'pending', claimed_by = '', dispatched_at = NULL,
       last_error = 'claim lost (worker gone); re-dispatched'
WHERE id IN (
    SELECT id FROM issuance_issuancechunk
    WHERE status = 'running' AND started_at < %(stale)s
    FOR UPDATE SKIP LOCKED
)
"""


def recover() -> int:
    """Re-opens chunks whose worker is gone and forgets dispatches never picked up, then
    dispatches every active run. Returns how many chunks were re-opened."""
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        stale = now - dt.timedelta(seconds=settings.ISSUANCE_CHUNK_STALE_SECONDS)
        cursor.execute(_RECOVER_RUNNING, {"stale": stale})
        reopened = cursor.rowcount
        IssuanceChunk.objects.filter(
            status=ChunkStatus.PENDING,
            dispatched_at__lt=now - dt.timedelta(seconds=settings.ISSUANCE_DISPATCH_STALE_SECONDS),
        ).update(dispatched_at=None)
    if reopened:
        logger.warning("issuance: re-opened %d chunk(s) left running", reopened)
    active = IssuanceRun.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
    for run_id in active.values_list("pk", flat=True):
        dispatch(run_id=run_id)
    return reopened
