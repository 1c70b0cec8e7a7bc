"""Staged runs (``max_customers``): at most N of the customers not yet issued, lowest ids
first; a later run issues the rest. Runs are driven as the workers drive them
(``conftest.drive``); ``test_faults.py`` kills a real worker in the middle of a stage."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.utils import timezone

from tests.issuance.conftest import EXCLUDED, FOUR_VOUCHERS, STATUSES, drive
from voucher_service.models import AuditEvent
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


def _create(client, slug="breach", **body):
    return client.post(f"/api/v1/campaigns/{slug}/issuance-runs", {"dry_run": False, **body},
                       format="json")


# -- a stage and the rest issue what one full run issues -----------------------------------

EXPIRES_AT = dt.datetime(2099, 6, 30, 15, 0, tzinfo=dt.UTC)
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


# -- what a stage takes --------------------------------------------------------------------

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


def test_stages_planned_side_by_side_overlap_and_issue_nothing_twice(campaign):
    """Each stage is planned against what is issued when it is created: two created before
    either runs take the same customers, and the second finds them issued."""
    first, second = _run(campaign, max_customers=13), _run(campaign, max_customers=13)
    assert _chunks(first) == _chunks(second)
    assert drive(first.pk).status == "completed"
    assert drive(second.pk).status == "completed"
    assert selectors.progress(selectors.get_run(second.pk)).vouchers_issued == 0
    assert _issued(campaign) == set(ELIGIBLE_IDS[:13]) and _sets_are_whole(campaign)


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


# -- dry runs, progress --------------------------------------------------------------------

def test_a_staged_dry_run_reports_the_stage(campaign, ops):
    body = _create(ops, dry_run=True, max_customers=13).json()
    assert body["status"] == "completed" and body["max_customers"] == 13
    assert body["eligible_customers"] == 13
    assert (body["dry_run_vouchers"], body["dry_run_total_krw"]) == (13 * 4, 13 * 50_000)
    assert body["chunk_count"] == 2
    assert not Voucher.objects.exists()
    drive(_run(campaign, max_customers=13).pk)
    rest = _create(ops, dry_run=True, max_customers=100).json()
    left = len(ELIGIBLE_IDS) - 13
    assert (rest["eligible_customers"], rest["dry_run_vouchers"]) == (left, left * 4)


def test_progress_and_eta_count_against_the_stage(campaign, ops, ops2):
    run_id = _create(ops, max_customers=25).json()["id"]
    assert ops2.post(f"/api/v1/issuance-runs/{run_id}/approve").status_code == 200
    drive(run_id, max_chunks=1)
    IssuanceRun.objects.filter(pk=run_id).update(
        started_at=timezone.now() - dt.timedelta(seconds=10))
    run = selectors.get_run(run_id)
    figures = selectors.progress(run, now=run.started_at + dt.timedelta(seconds=10))
    assert (figures.customers_done, figures.vouchers_issued) == (10, 40)
    assert figures.progress == pytest.approx(10 / 25)
    assert figures.eta_seconds == 15  # 15 of the stage left at 1 customer/s
    body = ops.get(f"/api/v1/issuance-runs/{run_id}").json()
    assert body["eligible_customers"] == 25 and body["progress"] == pytest.approx(0.4)

    # The chunk sent with the first one and still in flight, then the rest.
    for chunk in IssuanceChunk.objects.filter(run_id=run_id, status="pending",
                                              dispatched_at__isnull=False):
        processing.process_chunk(chunk_id=chunk.pk, claim="in-flight")
    assert drive(run_id).status == "completed"
    body = ops.get(f"/api/v1/issuance-runs/{run_id}").json()
    assert (body["progress"], body["eta_seconds"]) == (1.0, 0)
    assert (body["customers_done"], body["vouchers_issued"]) == (25, 100)


# -- pause, resume, cancel -----------------------------------------------------------------

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


# -- the API and the command ---------------------------------------------------------------

def test_the_run_answer_shows_max_customers(campaign, ops):
    staged = _create(ops, max_customers=13)
    assert staged.status_code == 201
    assert staged.json()["max_customers"] == 13 and staged.json()["eligible_customers"] == 13
    got = ops.get(f"/api/v1/issuance-runs/{staged.json()['id']}").json()
    assert got["max_customers"] == 13
    assert _create(ops).json()["max_customers"] is None
    assert _create(ops, max_customers=None).json()["max_customers"] is None
    event = AuditEvent.objects.get(action="issuance_run.created", target_id=got["id"])
    assert event.payload["max_customers"] == 13


@pytest.mark.parametrize("value", [0, -1, 1.5, 13.0, True, False, "13", "all", [13], {"n": 13},
                                   2**63])
def test_max_customers_must_be_a_positive_integer(campaign, ops, value):
    response = _create(ops, max_customers=value)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "validation_error"
    assert list(response.json()["errors"]) == ["max_customers"]
    assert not IssuanceRun.objects.exists() and not IssuanceChunk.objects.exists()
    assert not AuditEvent.objects.filter(action="issuance_run.created").exists()


def test_the_schema_documents_max_customers(client):
    schemas = client.get("/api/schema/?format=json").json()["components"]["schemas"]
    asked = schemas["CreateRunRequest"]["properties"]["max_customers"]
    assert (asked["type"], asked["minimum"], asked["nullable"]) == ("integer", 1, True)
    shown = schemas["Run"]["properties"]["max_customers"]
    assert (shown["type"], shown["nullable"]) == ("integer", True)


def test_issue_vouchers_with_max_customers(campaign, settings):
    settings.ALLOW_SELF_APPROVAL = True
    out = io.StringIO()
    call_command("issue_vouchers", "--campaign", campaign.slug, "--max-customers", "13",
                 stdout=out)
    run = IssuanceRun.objects.get(pk=out.getvalue().strip().splitlines()[-1])
    assert (run.status, run.max_customers, run.eligible_customers) == ("queued", 13, 13)


@pytest.mark.parametrize("value", ["0", "-5", "ten", "1.5"])
def test_issue_vouchers_refuses_a_bad_max_customers(campaign, settings, value):
    settings.ALLOW_SELF_APPROVAL = True
    with pytest.raises(CommandError, match="max-customers"):
        call_command("issue_vouchers", "--campaign", campaign.slug, "--max-customers", value)
    assert not IssuanceRun.objects.exists()
