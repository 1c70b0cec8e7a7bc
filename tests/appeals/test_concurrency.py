"""Appeals at once, real threads on real connections: one open appeal per customer and
campaign, and an appeal decided once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from accounts.identity import mint_customer_token
from tests.appeals.conftest import APPELLANT, decide_url, file
from voucher_service.models import AuditEvent
from vouchers.appeals.models import Appeal
from vouchers.models import RegistryEntry

pytestmark = pytest.mark.django_db(transaction=True)


def together(calls: list[Callable[[], object]], *, holding: str | None = None) -> list:
    """Each call in its own thread and connection, released at once by a barrier; returns
    their results in order. ``holding``: an appeal whose row this test keeps locked until
    every call waits for a lock, so that each has read what it reads before any writes."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = calls[i]()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    with transaction.atomic():
        if holding is not None:
            Appeal.objects.select_for_update().get(pk=holding)
        for thread in threads:
            thread.start()
        if holding is not None:
            _waiting_on_locks(len(calls))
    for thread in threads:
        thread.join(timeout=30)
    return results


def _waiting_on_locks(count: int) -> None:
    """Until ``count`` other backends wait for a lock (5 s at most)."""
    deadline = time.monotonic() + 5
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            # Within a transaction the statistics views keep their first snapshot.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT count(*) FROM pg_stat_activity "
                           "WHERE wait_event_type = 'Lock' AND datname = current_database()")
            if cursor.fetchone()[0] >= count:
                return
            time.sleep(0.02)
    raise AssertionError(f"{count} calls never waited for a lock")


def client(token: str) -> APIClient:
    made = APIClient()
    made.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return made


def test_a_double_filing_at_once_makes_one_appeal(campaign):
    token = mint_customer_token(APPELLANT)
    responses = together([lambda: file(client(token)) for _ in range(2)])
    assert sorted(r.status_code for r in responses) == [201, 409]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"appeal_exists"}
    assert Appeal.objects.filter(customer_id=APPELLANT).count() == 1
    assert AuditEvent.objects.filter(action="appeal.filed").count() == 1


def test_an_acceptance_and_a_rejection_at_once_decide_once(campaign, make_principal):
    """Both decisions arrive while the appeal's row is busy: without the row lock a
    decision takes before reading the appeal, both would read it open."""
    appeal_id = file(client(mint_customer_token(APPELLANT))).json()["id"]
    first, second = (client(make_principal("operations")[1]) for _ in range(2))
    responses = together([
        lambda: first.post(decide_url(appeal_id, "accept"), {"account_status": "active"},
                           format="json"),
        lambda: second.post(decide_url(appeal_id, "reject"), {"reason": "Not affected."},
                            format="json"),
    ], holding=appeal_id)
    assert sorted(r.status_code for r in responses) == [200, 409]
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert Appeal.objects.get().status == winner["status"]
    assert RegistryEntry.objects.filter(customer_id=APPELLANT).exists() == (
        winner["status"] == "accepted")
    assert AuditEvent.objects.filter(
        action__in=["appeal.accepted", "appeal.rejected"]).count() == 1
