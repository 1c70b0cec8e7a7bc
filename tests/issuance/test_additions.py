"""A run after late additions: it plans only the customers still owed vouchers, its chunks
cover them alone (their ranges wide, over customers issued before), and it issues exactly
their vouchers; exclusions, stages and re-runs behave as on a first run. Runs are driven
as the workers drive them (``conftest.drive``)."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django.db import connection

from tests.issuance.conftest import FOUR_VOUCHERS, drive
from vouchers.eligibility.cache import FENCE, answer_key
from vouchers.issuance import selectors, services
from vouchers.issuance.chunk import issue_chunk
from vouchers.issuance.models import IssuanceChunk, IssuanceRun
from vouchers.ledger.verification import verify_ledger
from vouchers.models import Component, Exclusion, Voucher

pytestmark = pytest.mark.django_db

# 10, 20, ..., 1000 at launch; the late file spreads over the whole range (and past it).
LAUNCH = {cid: "closed" if cid % 70 == 0 else "active" for cid in range(10, 1001, 10)}
LATE = {cid: "closed" if cid == 395 else "active"
        for cid in (5, 95, 195, 295, 395, 495, 595, 695, 795, 895, 995, 1005)}
EXCLUDED_LATE = 495
OWED = sorted(set(LATE) - {EXCLUDED_LATE})


def _run(campaign, max_customers: int | None = None) -> IssuanceRun:
    run = services.create_run(campaign=campaign, actor="alice", dry_run_only=False,
                              max_customers=max_customers)
    services.approve_run(run_id=run.pk, actor="bob")
    return run


def _chunks(run) -> list[tuple[int, int, int]]:
    return list(IssuanceChunk.objects.filter(run=run).order_by("lo")
                .values_list("lo", "hi", "customers"))


def _issued_by(run) -> dict[int, int]:
    """Vouchers the run issued, per registry customer."""
    counts: dict[int, int] = {}
    for cid in Voucher.objects.filter(issuance_run_id=run.pk).values_list(
            "registry_customer_id", flat=True):
        counts[cid] = counts.get(cid, 0) + 1
    return counts


def _exclude(campaign, customer_id: int) -> None:
    Exclusion.objects.create(campaign=campaign, customer_id=customer_id, reason="fraud",
                             created_by="test")


@pytest.fixture
def launched(make_campaign, load_registry):
    """A campaign issued in full at launch, then the late file imported, one of its
    customers excluded."""
    campaign = make_campaign(slug="late", components=FOUR_VOUCHERS)
    load_registry(campaign, LAUNCH)
    assert drive(_run(campaign).pk).status == "completed"
    load_registry(campaign, LATE)
    _exclude(campaign, EXCLUDED_LATE)
    return campaign


def test_a_run_after_late_additions_plans_and_issues_only_them(launched):
    before = set(Voucher.objects.values_list("pk", "balance_krw", "status"))
    run = _run(launched)
    # Before: every eligible customer (100 + 11) in 12 chunks that walked the whole range.
    assert (run.eligible_customers, run.chunk_count) == (len(OWED), 2)
    assert _chunks(run) == [(5, 1005, 10), (1005, 1006, 1)]
    assert drive(run.pk).status == "completed"
    assert _issued_by(run) == dict.fromkeys(OWED, 4)
    assert before <= set(Voucher.objects.values_list("pk", "balance_krw", "status"))
    assert Voucher.objects.count() == (len(LAUNCH) + len(OWED)) * 4
    figures = selectors.progress(selectors.get_run(run.pk))
    assert (figures.customers_done, figures.vouchers_issued, figures.progress) == (
        len(OWED), len(OWED) * 4, 1.0)
    assert Voucher.objects.get(registry_customer_id=395, component__category="all").status \
        == "unclaimed"
    assert verify_ledger(campaign_id=launched.pk).ok


def test_a_run_after_that_plans_nothing_and_issues_nothing(launched):
    drive(_run(launched).pk)
    issued = Voucher.objects.count()
    again = _run(launched)
    assert (again.eligible_customers, again.chunk_count) == (0, 0)
    assert drive(again.pk).status == "completed"
    assert Voucher.objects.count() == issued
    dry = services.create_run(campaign=launched, actor="alice", dry_run_only=True)
    assert (dry.eligible_customers, dry.chunk_count, dry.dry_run_vouchers) == (0, 0, 0)


def test_an_exclusion_made_after_planning_is_respected_and_its_lifting_owes_again(launched):
    run = _run(launched)
    _exclude(launched, 295)
    assert drive(run.pk).status == "completed"
    assert _issued_by(run) == dict.fromkeys(set(OWED) - {295}, 4)
    Exclusion.objects.filter(campaign=launched, customer_id__in=[295, EXCLUDED_LATE]).update(
        lifted_at=run.created_at, lifted_by="test")
    after = _run(launched)
    assert _chunks(after) == [(295, 496, 2)]
    drive(after.pk)
    assert _issued_by(after) == {295: 4, EXCLUDED_LATE: 4}
    assert verify_ledger(campaign_id=launched.pk).ok


def test_a_stage_after_late_additions_takes_the_lowest_owed_ids(launched):
    stage = _run(launched, max_customers=4)
    assert (stage.eligible_customers, _chunks(stage)) == (4, [(5, 296, 4)])
    drive(stage.pk)
    assert _issued_by(stage) == dict.fromkeys(OWED[:4], 4)
    rest = _run(launched)
    assert rest.eligible_customers == len(OWED) - 4
    drive(rest.pk)
    assert _issued_by(rest) == dict.fromkeys(OWED[4:], 4)


def test_a_new_component_is_owed_by_everyone_and_issued_alone(launched):
    drive(_run(launched).pk)
    Component.objects.create(campaign=launched, category="books", amount_krw=1_000,
                             expires_at=Component.objects.first().expires_at)
    run = _run(launched)
    assert run.eligible_customers == len(LAUNCH) + len(OWED)
    drive(run.pk)
    assert _issued_by(run) == dict.fromkeys(set(LAUNCH) | set(OWED), 1)
    assert set(Voucher.objects.filter(issuance_run_id=run.pk)
               .values_list("category", flat=True)) == {"books"}


def test_only_the_customers_issued_have_their_answers_fenced(
        launched, django_capture_on_commit_callbacks):
    """A chunk records the customers it issued, not its range: the wide range of an
    additions chunk holds a hundred customers issued at launch whose answers stand."""
    cache.clear()
    with django_capture_on_commit_callbacks(execute=True):
        drive(_run(launched).pk)
    every = set(LAUNCH) | set(LATE)
    assert {c for c in every if cache.get(answer_key("late", c)) == FENCE} == set(OWED)


# -- the plan: one merge over the two indexes, no probe per registry row ------------------

_ISSUE = re.compile(r"INSERT INTO vouchers_voucher.*ON CONFLICT", re.S)
_MERGED = re.compile(
    r"Merge Anti Join.*\n.*Merge Cond: \(+r\.customer_id = \w+\.registry_customer_id\)")


def test_owed_customers_are_found_by_a_merge_of_the_two_indexes(make_campaign):
    """At a size where the planner has a choice: the planning statement and the chunk
    statement anti-join the registry to the campaign's vouchers as a merge, both read in
    customer order (at this size the vouchers' heap may be read and sorted rather than
    their index), never probing the voucher index per registry row and component as the
    old ``NOT_YET_ISSUED`` did."""
    campaign = make_campaign(slug="merged", components=FOUR_VOUCHERS)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO vouchers_registryentry (campaign_id, customer_id, "
                       "account_status, imported_at) SELECT %s, g * 10, 'active', now() "
                       "FROM generate_series(1, 5000) g", [campaign.pk])
    issue_chunk(campaign_id=campaign.pk, lo=1, hi=50_001, run_id=None, chunk_id=None)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO vouchers_registryentry (campaign_id, customer_id, "
                       "account_status, imported_at) SELECT %s, g * 1000 + 5, 'active', "
                       "now() FROM generate_series(0, 49) g", [campaign.pk])
        cursor.execute("ANALYZE vouchers_registryentry")
        cursor.execute("ANALYZE vouchers_voucher")
    plans = []

    def explain(execute, sql, params, many, context):
        if "INSERT INTO issuance_issuancechunk" in sql or _ISSUE.search(sql):
            raw = context["cursor"].cursor  # not through this wrapper again
            raw.execute("EXPLAIN " + sql, params)
            plans.append("\n".join(row[0] for row in raw.fetchall()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        run = _run(campaign)
        drive(run.pk)
    assert (run.eligible_customers, run.chunk_count) == (50, 5)
    assert Voucher.objects.filter(issuance_run_id=run.pk).count() == 50 * 4
    assert len(plans) == 1 + 5
    for plan in plans:
        assert _MERGED.search(plan), plan
        assert "registry_customer_id = r.customer_id" not in plan, plan
