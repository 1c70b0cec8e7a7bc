"""Issuance fixtures: a campaign with a mixed registry, two operators, an in-process driver.

``drive(run_id)`` does what the workers do (dispatch a window, issue each chunk, dispatch
again) in the test's own transaction, so the fast tests need no worker; the slow tests in
``test_faults.py`` run real Celery workers.
"""

from __future__ import annotations

import pytest

from vouchers.issuance import processing
from vouchers.issuance.models import IssuanceRun
from vouchers.models import Exclusion

# 1..60: every third closed, every fifth (not closed) dormant; 7 and 8 excluded.
STATUSES = {
    cid: "closed" if cid % 3 == 0 else "dormant" if cid % 5 == 0 else "active"
    for cid in range(1, 61)
}
EXCLUDED = (7, 8)
ELIGIBLE = len(STATUSES) - len(EXCLUDED)
FOUR_VOUCHERS = [
    {"category": "all", "amount_krw": 5_000, "single_use": True},
    {"category": "eats", "amount_krw": 5_000, "single_use": True},
    {"category": "travel", "amount_krw": 20_000, "single_use": True, "min_order_krw": 40_000},
    {"category": "luxury", "amount_krw": 20_000, "single_use": True},
]


@pytest.fixture(autouse=True)
def small_chunks(settings):
    settings.ISSUANCE_CHUNK_SIZE = 10
    settings.ISSUANCE_MAX_IN_FLIGHT = 2


@pytest.fixture
def campaign(make_campaign, load_registry):
    campaign = make_campaign(slug="breach", components=FOUR_VOUCHERS)
    load_registry(campaign, STATUSES)
    for cid in EXCLUDED:
        Exclusion.objects.create(campaign=campaign, customer_id=cid, reason="fraud",
                                 created_by="test")
    return campaign


@pytest.fixture
def ops(role_client):
    return role_client("operations")


@pytest.fixture
def ops2(role_client):
    return role_client("operations")


def drive(run_id, *, max_chunks: int | None = None) -> IssuanceRun:
    """Issues chunks as workers would, until the run stops or ``max_chunks`` are done."""
    done = 0
    while max_chunks is None or done < max_chunks:
        sent = processing.dispatch(run_id=run_id)
        if not sent:
            break
        for chunk_id in sent[: None if max_chunks is None else max_chunks - done]:
            if processing.process_chunk(chunk_id=chunk_id, claim=f"test-{chunk_id}"):
                done += 1
    return IssuanceRun.objects.get(pk=run_id)


@pytest.fixture
def approved_run(campaign, ops, ops2):
    """A real run, created by ``ops`` and approved by ``ops2``: returns its id."""
    run_id = ops.post(f"/api/v1/campaigns/{campaign.slug}/issuance-runs", {"dry_run": False},
                      format="json").json()["id"]
    assert ops2.post(f"/api/v1/issuance-runs/{run_id}/approve").status_code == 200
    return run_id
