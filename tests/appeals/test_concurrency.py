"""Appeals at once, real threads on real connections: one open appeal per customer and
campaign, and an appeal decided once."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.identity import mint_customer_token
from tests.appeals.conftest import APPELLANT, decide_url, file
from voucher_service.models import AuditEvent
from vouchers.appeals.models import Appeal
from vouchers.models import RegistryEntry

pytestmark = pytest.mark.django_db(transaction=True)


def together(calls: list[Callable[[], object]]) -> list:
    """Each call in its own thread and connection, released at once by a barrier."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = calls[i]()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


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
    appeal_id = file(client(mint_customer_token(APPELLANT))).json()["id"]
    first, second = (client(make_principal("operations")[1]) for _ in range(2))
    responses = together([
        lambda: first.post(decide_url(appeal_id, "accept"), {"account_status": "active"},
                           format="json"),
        lambda: second.post(decide_url(appeal_id, "reject"), {"reason": "Not affected."},
                            format="json"),
    ])
    assert sorted(r.status_code for r in responses) == [200, 409]
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert Appeal.objects.get().status == winner["status"]
    assert RegistryEntry.objects.filter(customer_id=APPELLANT).exists() == (
        winner["status"] == "accepted")
    assert AuditEvent.objects.filter(
        action__in=["appeal.accepted", "appeal.rejected"]).count() == 1
