"""Issuing through chunks: exclusions, closed accounts, idempotency, pause, cancel,
progress and ETA, recovery of lost chunks, failure naming the chunk."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Count
from django.utils import timezone

from tests.issuance.conftest import ELIGIBLE, EXCLUDED, STATUSES, drive
from vouchers.issuance import processing, selectors, services
from vouchers.issuance.models import ChunkStatus, IssuanceChunk, IssuanceRun
from vouchers.ledger.verification import verify_ledger
from vouchers.models import RegistryEntry, Voucher

pytestmark = pytest.mark.django_db


def _new_run(campaign) -> IssuanceRun:
    run = services.create_run(campaign=campaign, actor="alice", dry_run_only=False)
    return services.approve_run(run_id=run.pk, actor="bob")


def _per_customer(campaign) -> dict[int, int]:
    return dict(Voucher.objects.filter(campaign=campaign).values("registry_customer_id")
                .annotate(n=Count("pk")).values_list("registry_customer_id", "n"))


def test_run_issues_one_set_per_eligible_customer(campaign, approved_run):
    run = drive(approved_run)
    assert run.status == "completed" and run.finished_at is not None
    counts = _per_customer(campaign)
    assert set(counts) == set(STATUSES) - set(EXCLUDED)
    assert set(counts.values()) == {4}
    assert verify_ledger(campaign_id=campaign.pk).ok


def test_closed_accounts_get_unclaimed_vouchers(campaign, approved_run):
    drive(approved_run)
    statuses = dict(Voucher.objects.filter(campaign=campaign)
                    .values_list("registry_customer_id", "status"))
    for cid, account in STATUSES.items():
        if cid not in EXCLUDED:
            assert statuses[cid] == ("unclaimed" if account == "closed" else "active"), cid


def test_second_run_issues_nothing_twice_and_picks_up_late_additions(campaign):
    drive(_new_run(campaign).pk)
    before = Voucher.objects.count()
    again = drive(_new_run(campaign).pk)
    assert again.status == "completed"
    assert Voucher.objects.count() == before
    assert selectors.progress(selectors.get_run(again.pk)).vouchers_issued == 0
    RegistryEntry.objects.create(campaign=campaign, customer_id=500, account_status="active",
                                 imported_at=timezone.now())
    late = drive(_new_run(campaign).pk)
    assert selectors.progress(selectors.get_run(late.pk)).vouchers_issued == 4
    assert _per_customer(campaign)[500] == 4
    assert verify_ledger(campaign_id=campaign.pk).ok


def test_a_done_chunk_is_a_noop(campaign, approved_run):
    drive(approved_run)
    chunk = IssuanceChunk.objects.filter(run_id=approved_run).first()
    assert processing.process_chunk(chunk_id=chunk.pk, claim="again") is None
    chunk.refresh_from_db()
    assert chunk.status == "done" and chunk.attempts == 1


def test_progress_and_eta_from_chunks(campaign, approved_run):
    run = drive(approved_run, max_chunks=3)
    assert run.status == "running"
    IssuanceRun.objects.filter(pk=run.pk).update(
        started_at=timezone.now() - dt.timedelta(seconds=30))
    run = selectors.get_run(run.pk)
    now = run.started_at + dt.timedelta(seconds=30)
    p = selectors.progress(run, now=now)
    assert p.customers_done == 30 and p.vouchers_issued == 120
    assert p.progress == pytest.approx(30 / ELIGIBLE)
    assert p.eta_seconds == round((ELIGIBLE - 30) / (30 / 30))  # 1 customer/s
    services.pause_run(run_id=run.pk, actor="carol")
    assert selectors.progress(selectors.get_run(run.pk), now=now).eta_seconds is None


def test_pause_stops_dispatch_and_resume_finishes(campaign, approved_run):
    drive(approved_run, max_chunks=1)
    in_flight = list(IssuanceChunk.objects.filter(run_id=approved_run, status="pending",
                                                  dispatched_at__isnull=False))
    services.pause_run(run_id=approved_run, actor="carol")
    assert processing.dispatch(run_id=approved_run) == []
    # A message sent before the pause finds the run paused: the chunk stays pending.
    for chunk in in_flight:
        assert processing.process_chunk(chunk_id=chunk.pk, claim="late") is None
        chunk.refresh_from_db()
        assert chunk.status == "pending" and chunk.attempts == 0
    issued = Voucher.objects.count()
    assert issued == 40
    services.resume_run(run_id=approved_run, actor="carol")
    assert drive(approved_run).status == "completed"
    assert Voucher.objects.count() == ELIGIBLE * 4


def test_cancel_keeps_what_is_issued(campaign, approved_run):
    drive(approved_run, max_chunks=2)
    services.cancel_run(run_id=approved_run, actor="carol")
    assert drive(approved_run).status == "cancelled"
    assert Voucher.objects.count() == 80
    assert verify_ledger(campaign_id=campaign.pk).ok


def test_only_one_claim_wins(campaign, approved_run):
    chunk_id = processing.dispatch(run_id=approved_run)[0]
    IssuanceChunk.objects.filter(pk=chunk_id).update(status="running", claimed_by="worker-a",
                                                     started_at=timezone.now())
    assert processing.process_chunk(chunk_id=chunk_id, claim="worker-b") is None
    assert IssuanceChunk.objects.get(pk=chunk_id).claimed_by == "worker-a"
    assert processing.process_chunk(chunk_id=chunk_id, claim="worker-a") is not None
    assert IssuanceChunk.objects.get(pk=chunk_id).status == "done"


def test_recover_reopens_chunks_of_dead_workers(campaign, approved_run, settings):
    settings.ISSUANCE_CHUNK_STALE_SECONDS = 60
    settings.ISSUANCE_DISPATCH_STALE_SECONDS = 60
    lost, fresh = processing.dispatch(run_id=approved_run)
    long_ago = timezone.now() - dt.timedelta(minutes=5)
    IssuanceChunk.objects.filter(pk=lost).update(status="running", claimed_by="dead",
                                                 started_at=long_ago)
    IssuanceChunk.objects.filter(pk=fresh).update(status="running", claimed_by="alive",
                                                  started_at=timezone.now())
    assert processing.recover() == 1
    assert IssuanceChunk.objects.get(pk=fresh).status == "running"
    reopened = IssuanceChunk.objects.get(pk=lost)
    # recover() re-dispatched it straight away (one window slot was free).
    assert reopened.status == "pending" and reopened.dispatched_at is not None


def test_recover_forgets_dispatches_never_picked_up(campaign, approved_run, settings):
    settings.ISSUANCE_DISPATCH_STALE_SECONDS = 60
    sent = processing.dispatch(run_id=approved_run)
    IssuanceChunk.objects.filter(pk__in=sent).update(
        dispatched_at=timezone.now() - dt.timedelta(minutes=5))
    processing.recover()
    for chunk in IssuanceChunk.objects.filter(pk__in=sent):
        assert chunk.dispatched_at > timezone.now() - dt.timedelta(seconds=5)


def test_exhausted_chunk_fails_the_run_naming_it_and_resume_retries(campaign, approved_run):
    chunk_id = processing.dispatch(run_id=approved_run)[0]
    IssuanceChunk.objects.filter(pk=chunk_id).update(status="running", claimed_by="t",
                                                     attempts=9)
    processing.fail_chunk(chunk_id=chunk_id, claim="t", error="OperationalError: gone")
    run = IssuanceRun.objects.get(pk=approved_run)
    assert run.status == "failed" and run.failed_chunk_id == chunk_id
    assert f"chunk {chunk_id}" in run.failure_detail and "9 attempt" in run.failure_detail
    assert IssuanceChunk.objects.get(pk=chunk_id).status == ChunkStatus.FAILED
    services.resume_run(run_id=approved_run, actor="carol")
    assert drive(approved_run).status == "completed"
    assert Voucher.objects.count() == ELIGIBLE * 4
