"""Issuance runs: creation and the operator's transitions (four-eyes approval).

Every transition locks the run row (``SELECT ... FOR UPDATE``), checks the move against
``TRANSITIONS`` and records an audit event in the same transaction. Workers are told
through the broker only after the commit (``on_commit``), by task name, so this module
does not import the task module.
"""

from __future__ import annotations

from uuid import UUID

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from voucher_service.audit import record_event
from voucher_service.problems import ProblemError
from vouchers.issuance.models import ChunkStatus, IssuanceRun, RunStatus
from vouchers.issuance.planning import dry_run, plan_chunks
from vouchers.models import Campaign

S = RunStatus
# action: (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "approve": (frozenset({S.PENDING_APPROVAL}), S.QUEUED),
    "pause": (frozenset({S.QUEUED, S.RUNNING}), S.PAUSED),
    "resume": (frozenset({S.PAUSED, S.FAILED}), S.RUNNING),
    "cancel": (frozenset({S.PENDING_APPROVAL, S.QUEUED, S.RUNNING, S.PAUSED}), S.CANCELLED),
}
DISPATCH_TASK = "issuance.dispatch"


def _audit(run: IssuanceRun, *, actor: str, action: str, **payload) -> None:
    record_event(actor=actor, action=f"issuance_run.{action}", target_type="issuance_run",
                 target_id=str(run.pk), payload={"campaign": run.campaign.slug, **payload})


def request_dispatch(run_id: UUID) -> None:
    """After the current transaction commits, ask a worker to dispatch the run's chunks."""
    transaction.on_commit(
        lambda: current_app.send_task(DISPATCH_TASK, args=[str(run_id)])
    )


@transaction.atomic
def create_run(
    *, campaign: Campaign, actor: str, dry_run_only: bool, max_customers: int | None = None
) -> IssuanceRun:
    """A real run is planned into chunks and waits for approval; a dry run only counts
    what a run would issue now and is completed at once (nothing to approve). Either
    counts as eligible customers those it takes: the registered customers still owed a
    voucher (every one of them on a campaign's first run).

    With ``max_customers`` the run is a stage: at most that many customers not yet issued,
    lowest ids first, counted as the run's eligible customers (its dry run counts them).
    A stage is planned against what is issued when it is created: one created while an
    earlier run is unfinished may take the same customers, and then issues fewer (never
    twice); create the next stage once the last one has completed."""
    run = IssuanceRun.objects.create(
        campaign=campaign, dry_run=dry_run_only, created_by=actor,
        chunk_size=settings.ISSUANCE_CHUNK_SIZE, max_customers=max_customers,
    )
    if dry_run_only:
        counted = dry_run(campaign_id=campaign.pk, max_customers=max_customers)
        now = timezone.now()
        run.eligible_customers = counted.eligible_customers
        run.chunk_count = -(-counted.eligible_customers // run.chunk_size)
        run.dry_run_vouchers = counted.vouchers
        run.dry_run_total_krw = counted.total_krw
        run.status = S.COMPLETED
        run.started_at = run.finished_at = now
    else:
        plan = plan_chunks(run_id=run.pk, campaign_id=campaign.pk, chunk_size=run.chunk_size,
                           max_customers=max_customers)
        run.eligible_customers = plan.eligible_customers
        run.chunk_count = plan.chunks
    run.save()
    _audit(run, actor=actor, action="created", dry_run=dry_run_only,
           max_customers=max_customers, eligible_customers=run.eligible_customers,
           chunks=run.chunk_count, dry_run_total_krw=run.dry_run_total_krw)
    return run


def _locked(run_id: UUID) -> IssuanceRun:
    try:
        return IssuanceRun.objects.select_for_update().select_related("campaign").get(pk=run_id)
    except IssuanceRun.DoesNotExist as exc:
        raise ProblemError(status=404, code="issuance_run_not_found",
                           detail="No such issuance run.") from exc


def _move(run: IssuanceRun, action: str) -> str:
    allowed_from, to = TRANSITIONS[action]
    if run.status not in allowed_from:
        raise ProblemError(
            status=409, code="invalid_transition",
            detail=f"A run that is {run.status} does not allow {action}.",
            status_now=run.status,
        )
    previous, run.status = run.status, to
    return previous


@transaction.atomic
def approve_run(*, run_id: UUID, actor: str, allow_self_approval: bool = False) -> IssuanceRun:
    """The second pair of eyes. Self-approval only where settings allow it (development)."""
    run = _locked(run_id)
    previous = _move(run, "approve")
    if run.created_by == actor and not (allow_self_approval and settings.ALLOW_SELF_APPROVAL):
        raise ProblemError(status=403, code="same_principal",
                           detail="A run must be approved by someone other than its creator.")
    run.approved_by = actor
    run.approved_at = timezone.now()
    run.save(update_fields=["status", "approved_by", "approved_at"])
    _audit(run, actor=actor, action="approve", **{"from": previous, "to": run.status})
    request_dispatch(run.pk)
    return run


@transaction.atomic
def pause_run(*, run_id: UUID, actor: str) -> IssuanceRun:
    """Stops dispatching; chunks already being issued finish, queued messages find the run
    paused and leave their chunk pending."""
    run = _locked(run_id)
    previous = _move(run, "pause")
    run.save(update_fields=["status"])
    run.chunks.filter(status=ChunkStatus.PENDING).update(dispatched_at=None)
    _audit(run, actor=actor, action="pause", **{"from": previous, "to": run.status})
    return run


@transaction.atomic
def resume_run(*, run_id: UUID, actor: str) -> IssuanceRun:
    """Continues with the chunks not done; after a failure the failed chunk is retried."""
    run = _locked(run_id)
    previous = _move(run, "resume")
    run.started_at = run.started_at or timezone.now()
    run.finished_at = None
    run.failed_chunk = None
    run.failure_detail = ""
    run.save(update_fields=["status", "started_at", "finished_at", "failed_chunk",
                            "failure_detail"])
    run.chunks.filter(status=ChunkStatus.FAILED).update(status=ChunkStatus.PENDING, attempts=0)
    # Messages sent before the stop found the run stopped and were dropped: send afresh.
    run.chunks.filter(status=ChunkStatus.PENDING).update(claimed_by="", dispatched_at=None)
    _audit(run, actor=actor, action="resume", **{"from": previous, "to": run.status})
    request_dispatch(run.pk)
    return run


@transaction.atomic
def cancel_run(*, run_id: UUID, actor: str) -> IssuanceRun:
    """Stops for good; what is issued stays issued (chunks done keep their vouchers)."""
    run = _locked(run_id)
    previous = _move(run, "cancel")
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at"])
    _audit(run, actor=actor, action="cancel", **{"from": previous, "to": run.status})
    return run
