"""Many checkouts at once, with real threads on real connections (committed data)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction
from django.db.models import Sum
from rest_framework.test import APIClient

from tests.redemption.conftest import URL, order, voucher
from voucher_service.idempotency import claim_key
from voucher_service.models import IdempotencyKey
from vouchers.ledger.verification import verify_ledger
from vouchers.models import LedgerPosting
from vouchers.redemption.models import Redemption

pytestmark = pytest.mark.django_db(transaction=True)
CLIENTS = 64


def _all_at_once(token: str, bodies: list[dict], keys: list[str]) -> list:
    """POSTs every body from its own thread and connection, released together."""
    barrier = threading.Barrier(len(bodies))

    def send(i: int):
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            barrier.wait(timeout=30)
            return client.post(URL, bodies[i], format="json", HTTP_IDEMPOTENCY_KEY=keys[i])
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(send, range(len(bodies))))


@pytest.fixture
def token(make_principal):
    return make_principal("checkout")[1]


def test_concurrent_redemptions_never_spend_more_than_the_balance(shop, token):
    v = voucher(1, "all")  # 50,000 won; 64 orders of 1,000 ask for 64,000
    bodies = [order(v, amount_krw=1_000, order_total_krw=1_000) for _ in range(CLIENTS)]
    responses = _all_at_once(token, bodies, [str(uuid.uuid4()) for _ in range(CLIENTS)])
    outcomes = Counter((r.status_code, r.json().get("code")) for r in responses)
    assert outcomes == {(201, None): 50, (409, "insufficient_balance"): 14}
    v.refresh_from_db()
    assert (v.balance_krw, v.status) == (0, "exhausted")
    redeemed = LedgerPosting.objects.filter(voucher_id=v.pk, account="redeemed")
    assert redeemed.aggregate(s=Sum("amount_krw"))["s"] == -50_000
    assert Redemption.objects.filter(voucher=v).count() == 50
    assert verify_ledger(campaign_id=shop.pk).ok


def test_concurrent_requests_with_one_key_make_one_redemption(shop, token):
    v = voucher(1, "all")
    body = order(v, amount_krw=1_000, order_total_krw=1_000)
    responses = _all_at_once(token, [body] * CLIENTS, ["one-key"] * CLIENTS)
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.get("Idempotent-Replayed") == "true" for r in responses) == CLIENTS - 1
    assert Redemption.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1
    v.refresh_from_db()
    assert v.balance_krw == 49_000
    assert verify_ledger(campaign_id=shop.pk).ok


def test_a_key_in_flight_elsewhere_is_409_after_the_wait(shop, make_principal, settings):
    settings.IDEMPOTENCY_KEY_WAIT_MS = 200
    principal, token = make_principal("checkout")
    body = order(voucher(1, "all"), amount_krw=1_000)
    holder = threading.Event()
    release = threading.Event()

    def hold_the_key():
        """Another request with the key, in flight: claimed, not yet committed."""
        try:
            with transaction.atomic():
                assert claim_key(owner=principal.audit_name, key="busy") is None
                holder.set()
                release.wait(timeout=30)
                transaction.set_rollback(True)
        finally:
            connection.close()

    thread = threading.Thread(target=hold_the_key)
    thread.start()
    try:
        assert holder.wait(timeout=30)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        response = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="busy")
    finally:
        release.set()
        thread.join()
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_use"
    assert not Redemption.objects.exists()
    retry = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="busy")
    assert retry.status_code == 201
