"""Concurrent confirms, real threads on real connections: the vouchers move exactly once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.identity import mint_customer_token
from tests.eligibility.conftest import NEW_ACCOUNT, STRANGER
from tests.eligibility.test_claims import closed_a_vouchers, confirm_url, start_and_receive
from vouchers.eligibility.models import Claim
from vouchers.ledger.verification import verify_ledger
from vouchers.models import LedgerTransaction

pytestmark = pytest.mark.django_db(transaction=True)


def _confirm_together(requests: list[tuple[int, str, str]]) -> list[int]:
    """Each (customer, challenge, code) confirmed from its own thread and connection, all
    released at once."""
    barrier = threading.Barrier(len(requests))
    statuses: list[int] = [0] * len(requests)

    def confirm(i: int, customer_id: int, challenge_id: str, code: str) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {mint_customer_token(customer_id)}")
        try:
            barrier.wait(timeout=10)
            statuses[i] = client.post(confirm_url(challenge_id), {"code": code},
                                      format="json").status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm, args=(i, *r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(statuses)


def _moved_once(campaign) -> None:
    assert set(closed_a_vouchers().values_list("customer_id", "status")) == {
        (closed_a_vouchers().first().customer_id, "active")}
    assert LedgerTransaction.objects.filter(reason="claim_transfer").count() == 4
    assert Claim.objects.count() == 2
    assert verify_ledger(campaign_id=campaign.pk).ok


def test_the_same_challenge_confirmed_twice_at_once_claims_once(issued, customer_client,
                                                                sms_dir):
    challenge_id, code = start_and_receive(customer_client(NEW_ACCOUNT), sms_dir)
    statuses = _confirm_together([(NEW_ACCOUNT, challenge_id, code)] * 4)
    assert statuses == [200, 409, 409, 409]
    _moved_once(issued)


def test_two_challenges_for_one_phone_confirmed_at_once_claim_once(issued, customer_client,
                                                                   sms_dir):
    first = start_and_receive(customer_client(NEW_ACCOUNT), sms_dir)
    second = start_and_receive(customer_client(STRANGER), sms_dir)
    statuses = _confirm_together([(NEW_ACCOUNT, *first), (STRANGER, *second)])
    assert statuses == [200, 409]
    _moved_once(issued)
