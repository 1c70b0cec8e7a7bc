"""Reads: runs with their progress, computed from the chunk table.

Progress is customers in done chunks over eligible customers; the ETA extrapolates the
rate since ``started_at`` (customers per second) over what is left. Both are one
aggregate per run over its chunks (a few thousand rows at 33.7M customers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from vouchers.issuance.models import IssuanceRun, Revocation, RunStatus
from vouchers.models import Campaign


@dataclass(frozen=True)
class Progress:
    vouchers_issued: int
    customers_done: int
    progress: float
    eta_seconds: int | None


def runs_with_counters() -> QuerySet[IssuanceRun]:
    return IssuanceRun.objects.select_related("campaign").annotate(
        chunk_vouchers=Coalesce(Sum("chunks__vouchers_issued"), 0),
        chunk_customers=Coalesce(Sum("chunks__customers_done"), 0),
    )


def campaign_runs(campaign: Campaign) -> QuerySet[IssuanceRun]:
    return runs_with_counters().filter(campaign=campaign)


def get_run(run_id) -> IssuanceRun | None:
    return runs_with_counters().filter(pk=run_id).first()


def progress(run: IssuanceRun, *, now: datetime | None = None) -> Progress:
    """``run`` must come from ``runs_with_counters`` (it carries the chunk sums)."""
    done, vouchers = run.chunk_customers, run.chunk_vouchers
    if run.dry_run:
        fraction = 1.0 if run.status == RunStatus.COMPLETED else 0.0
        return Progress(0, 0, fraction, 0 if fraction == 1.0 else None)
    total = run.eligible_customers
    fraction = 1.0 if total == 0 else min(1.0, done / total)
    if run.status == RunStatus.COMPLETED:
        return Progress(vouchers, done, fraction, 0)
    eta = None
    if run.status == RunStatus.RUNNING and run.started_at and done:
        elapsed = ((now or timezone.now()) - run.started_at).total_seconds()
        if elapsed > 0:
            eta = round((total - done) / (done / elapsed))
    return Progress(vouchers, done, fraction, eta)


IN_PROGRESS = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED)


def runs_in_progress(campaign: Campaign) -> list[dict]:
    """Queued, running and paused runs as plain data, for the dashboard."""
    runs = campaign_runs(campaign).filter(status__in=IN_PROGRESS).order_by("created_at")
    rows = []
    for run in runs:
        figures = progress(run)
        rows.append({
            "id": str(run.pk), "status": run.status, "progress": figures.progress,
            "percent": round(figures.progress * 100, 1),
            "vouchers_issued": figures.vouchers_issued, "eta_seconds": figures.eta_seconds,
        })
    return rows


def campaign_revocations(campaign: Campaign) -> QuerySet[Revocation]:
    return Revocation.objects.filter(campaign=campaign).select_related("campaign")
