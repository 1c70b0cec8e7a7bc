"""Staged runs (``max_customers``): at most N of the customers not yet issued, lowest ids
first; a later run issues the rest. Runs are driven as the workers drive them
(``conftest.drive``); ``test_faults.py`` kills a real worker in the middle of a stage."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Count
from django.utils import timezone

from tests.issuance.conftest import EXCLUDED, FOUR_VOUCHERS, STATUSES, drive
from vouchers.issuance import processing, selectors, services
from vouchers.issuance.models import IssuanceChunk, IssuanceRun
from vouchers.ledger.verification import verify_ledger
from vouchers.models import Component, Exclusion, Voucher

pytestmark = pytest.mark.django_db

# The fixture campaign's eligible customers (1..60 without 7 and 8), in customer-id order.
ELIGIBLE_IDS = sorted(set(STATUSES) - set(EXCLUDED))


def _run(campaign, max_customers: int | None = None, *, dry_run: bool = False) -> IssuanceRun:
    """A run created by one operator and, unless a dry run, approved by another."""
    run = services.create_run(campaign=campaign, actor="alice", dry_run_only=dry_run,
                              max_customers=max_customers)
    if not dry_run:
        services.approve_run(run_id=run.pk, actor="bob")
    return run


def _issued(campaign) -> set[int]:
    return set(Voucher.objects.filter(campaign=campaign)
               .values_list("registry_customer_id", flat=True))


def _sets_are_whole(campaign) -> bool:
    """Every customer holding vouchers holds exactly one per component."""
    components = Component.objects.filter(campaign=campaign).count()
    counts = (Voucher.objects.filter(campaign=campaign).values("registry_customer_id")
              .annotate(n=Count("pk")).values_list("n", flat=True))
    return set(counts) <= {components}


def _chunks(run) -> list[tuple[int, int, int]]:
    return list(IssuanceChunk.objects.filter(run=run).order_by("lo")
                .values_list("lo", "hi", "customers"))


# -- a stage and the rest issue what one full run issues -----------------------------------

EXPIRES_AT = dt.datetime(2026, 6, 30, 15, 0, tzinfo=dt.UTC)
COMPONENTS = [{**spec, "expires_at": EXPIRES_AT} for spec in FOUR_VOUCHERS]
# 10, 20, ..., 600: gaps for late additions to land inside ranges already planned.
GAPPED = {cid: "closed" if cid % 30 == 0 else "dormant" if cid % 50 == 0 else "active"
          for cid in range(10, 601, 10)}
# What every voucher must agree on, whichever runs issued it (ids and times aside).
SAME = ("registry_customer_id", "customer_id", "category", "amount_krw", "balance_krw",
        "single_use", "min_order_krw", "status", "expires_at")


def _registry(campaign, load_registry) -> None:
    load_registry(campaign, GAPPED)
    for cid in (70, 80):
        Exclusion.objects.create(campaign=campaign, customer_id=cid, reason="fraud",
                                 created_by="test")


def _later(campaign, load_registry) -> None:
    """After the stage: late additions below, inside and above what it covered, a new
    exclusion and a lifted one."""
    load_registry(campaign, {15: "closed", 305: "active", 605: "dormant"})
    Exclusion.objects.create(campaign=campaign, customer_id=320, reason="fraud",
                             created_by="test")
    Exclusion.objects.filter(campaign=campaign, customer_id=80).update(
        lifted_at=timezone.now(), lifted_by="test")


def _vouchers(campaign) -> list[tuple]:
    return sorted(Voucher.objects.filter(campaign=campaign).values_list(*SAME))


@pytest.mark.parametrize("rest", [None, 10**6], ids=["full-rest", "staged-rest"])
def test_a_stage_and_the_rest_issue_what_one_full_run_issues(make_campaign, load_registry,
                                                             rest):
    whole = make_campaign(slug="whole", components=COMPONENTS)
    _registry(whole, load_registry)
    staged = make_campaign(slug="staged", components=COMPONENTS)
    _registry(staged, load_registry)

    # 10 % of the registry: the six lowest eligible ids (70 and 80 are excluded).
    stage = drive(_run(staged, max_customers=6).pk)
    assert stage.status == "completed" and stage.eligible_customers == 6
    assert _issued(staged) == {10, 20, 30, 40, 50, 60}
    _later(staged, load_registry)
    assert drive(_run(staged, max_customers=rest).pk).status == "completed"

    _later(whole, load_registry)
    assert drive(_run(whole).pk).status == "completed"

    expected = (set(GAPPED) - {70, 320}) | {15, 305, 605}
    assert _issued(whole) == expected
    assert _vouchers(staged) == _vouchers(whole)
    assert len(_vouchers(whole)) == len(expected) * 4
    assert {v[SAME.index("status")] for v in _vouchers(whole)} == {"active", "unclaimed"}
    for campaign in (whole, staged):
        assert verify_ledger(campaign_id=campaign.pk).ok


# -- what a stage takes ----------------------------------------------------------------------

def test_a_stage_takes_the_lowest_eligible_ids_and_its_chunks_cover_exactly_them(campaign):
    run = _run(campaign, max_customers=13)
    assert run.eligible_customers == 13 and run.chunk_count == 2
    # 1..6 and 9..12, then 13..15: the last chunk ends at the last id taken + 1.
    assert _chunks(run) == [(1, 13, 10), (13, 16, 3)]
    assert drive(run.pk).status == "completed"
    assert _issued(campaign) == set(ELIGIBLE_IDS[:13])
    assert _sets_are_whole(campaign)


def test_two_stages_in_a_row_issue_disjoint_lowest_id_sets(campaign):
    drive(_run(campaign, max_customers=13).pk)
    first = _issued(campaign)
    second_run = drive(_run(campaign, max_customers=13).pk)
    second = _issued(campaign) - first
    assert first == set(ELIGIBLE_IDS[:13])
    assert second == set(ELIGIBLE_IDS[13:26])
    assert second_run.eligible_customers == 13
    assert selectors.progress(selectors.get_run(second_run.pk)).vouchers_issued == 13 * 4
    assert _chunks(second_run)[0][0] == ELIGIBLE_IDS[13]
    assert _sets_are_whole(campaign)
    assert verify_ledger(campaign_id=campaign.pk).ok


def test_a_stage_when_fewer_than_max_customers_remain(campaign):
    drive(_run(campaign, max_customers=50).pk)
    last = drive(_run(campaign, max_customers=20).pk)
    assert last.status == "completed" and last.eligible_customers == 8
    assert selectors.progress(selectors.get_run(last.pk)).vouchers_issued == 8 * 4
    assert _issued(campaign) == set(ELIGIBLE_IDS)
    # Nothing left: a stage of nobody, completed as soon as it is dispatched.
    empty = _run(campaign, max_customers=5)
    assert (empty.eligible_customers, empty.chunk_count) == (0, 0)
    assert drive(empty.pk).status == "completed"
    assert selectors.progress(selectors.get_run(empty.pk)).progress == 1.0
    assert Voucher.objects.filter(campaign=campaign).count() == len(ELIGIBLE_IDS) * 4


def test_max_customers_larger_than_the_registry_takes_everyone(campaign):
    full = _run(campaign)
    services.cancel_run(run_id=full.pk, actor="carol")
    run = _run(campaign, max_customers=10**12)
    assert run.eligible_customers == len(ELIGIBLE_IDS)
    assert _chunks(run) == _chunks(full)
    assert drive(run.pk).status == "completed"
    assert _issued(campaign) == set(ELIGIBLE_IDS) and _sets_are_whole(campaign)


def test_a_stage_takes_customers_owed_any_component(campaign):
    """Not yet issued means short of a voucher for some component: what the chunk statement
    inserts and the dry run counts. A component added after a stage is owed by everyone."""
    drive(_run(campaign, max_customers=13).pk)
    Component.objects.create(campaign=campaign, category="books", amount_krw=1_000,
                             expires_at=EXPIRES_AT)
    dry = _run(campaign, max_customers=5, dry_run=True)
    assert (dry.eligible_customers, dry.dry_run_vouchers, dry.dry_run_total_krw) == (
        5, 5, 5_000)
    run = drive(_run(campaign, max_customers=5).pk)
    assert run.eligible_customers == 5
    books = Voucher.objects.filter(campaign=campaign, category="books")
    assert set(books.values_list("registry_customer_id", flat=True)) == set(ELIGIBLE_IDS[:5])
    assert Voucher.objects.filter(campaign=campaign).count() == 13 * 4 + 5
    assert verify_ledger(campaign_id=campaign.pk).ok


def test_a_stage_never_issues_more_than_max_customers(make_campaign, load_registry, settings):
    """The rule for customers who join a stage's range between planning and issuing: each
    chunk issues at most the customers planned for it, the lowest ids of its range still
    owed vouchers when it runs. 15 joins below the first chunk's last planned customer (30)
    and takes its place; 35 joins above it and 55 beyond the stage: the next run issues
    them, and 30."""
    settings.ISSUANCE_CHUNK_SIZE = 3
    campaign = make_campaign(slug="late", components=FOUR_VOUCHERS)
    load_registry(campaign, {cid: "active" for cid in range(10, 101, 10)})
    run = _run(campaign, max_customers=5)
    assert _chunks(run) == [(10, 40, 3), (40, 51, 2)]
    load_registry(campaign, {15: "closed", 35: "active", 55: "active"})

    assert drive(run.pk).status == "completed"
    assert _issued(campaign) == {10, 15, 20, 40, 50}
    figures = selectors.progress(selectors.get_run(run.pk))
    assert (figures.customers_done, figures.vouchers_issued) == (5, 20)

    assert drive(_run(campaign).pk).status == "completed"
    assert _issued(campaign) == set(range(10, 101, 10)) | {15, 35, 55}
    assert _sets_are_whole(campaign)
    assert verify_ledger(campaign_id=campaign.pk).ok


# -- pause, resume, cancel ------------------------------------------------------------------

def test_pause_and_resume_a_stage(campaign):
    run = _run(campaign, max_customers=25)
    drive(run.pk, max_chunks=1)
    services.pause_run(run_id=run.pk, actor="carol")
    assert processing.dispatch(run_id=run.pk) == []
    assert _issued(campaign) == set(ELIGIBLE_IDS[:10])
    services.resume_run(run_id=run.pk, actor="carol")
    assert drive(run.pk).status == "completed"
    assert _issued(campaign) == set(ELIGIBLE_IDS[:25]) and _sets_are_whole(campaign)


def test_a_cancelled_stage_keeps_its_issue_and_the_next_stage_goes_on(campaign):
    run = _run(campaign, max_customers=25)
    drive(run.pk, max_chunks=1)
    services.cancel_run(run_id=run.pk, actor="carol")
    assert drive(run.pk).status == "cancelled"
    assert _issued(campaign) == set(ELIGIBLE_IDS[:10])
    following = drive(_run(campaign, max_customers=25).pk)
    assert following.eligible_customers == 25
    assert _issued(campaign) == set(ELIGIBLE_IDS[:35]) and _sets_are_whole(campaign)
    assert verify_ledger(campaign_id=campaign.pk).ok
