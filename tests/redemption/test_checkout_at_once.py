"""Checkout at once: outside a caller's transaction (as served), the checkout, its key's
claim and its stored answer go in one round trip; what it cannot answer takes the general
path. Committed data, so these tests are transactional."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.redemption.conftest import URL, order, post, voucher
from voucher_service.audit import verify_audit_chain
from voucher_service.models import AuditEvent, IdempotencyKey
from voucher_service.sealing import seal_events
from vouchers.ledger.verification import verify_ledger
from vouchers.redemption.models import Redemption
from vouchers.redemption.services import CHECKOUT_ROUTINE

pytestmark = pytest.mark.django_db(transaction=True)


def _stored(key: str) -> IdempotencyKey:
    return IdempotencyKey.objects.get(key=key)


@pytest.mark.parametrize(("category", "overrides"), [
    ("all", {"amount_krw": 1_000}),
    ("all", {"amount_krw": 2_500, "capture": False, "order_id": "50% off, 100%"}),
    ("eats", {"amount_krw": 3_000, "order_total_krw": 12_000}),  # 2,000 won forfeited
])
def test_a_checkout_is_one_round_trip_and_stores_the_answer_it_gives(shop, checkout, category,
                                                                     overrides):
    v = voucher(1, category)
    with CaptureQueriesContext(connection) as queries:
        response = post(checkout, URL, order(v, **overrides), key="k-1")
    assert response.status_code == 201, response.content
    authentication, checkout_at_once = (q["sql"] for q in queries)
    assert "accounts_principal" in authentication
    assert checkout_at_once.startswith(f"BEGIN; SELECT * FROM {CHECKOUT_ROUTINE.function}(")
    answer = response.json()
    stored = json.loads(_stored("k-1").response_body)
    assert stored == answer and list(stored) == list(answer)
    v.refresh_from_db()
    assert answer["voucher_balance_krw"] == v.balance_krw
    assert answer["forfeited_krw"] == Redemption.objects.get().forfeited_krw
    assert AuditEvent.objects.get(action__startswith="redemption.").target_id == answer["id"]
    seal_events()
    assert verify_audit_chain().ok and verify_ledger(campaign_id=shop.pk).ok


def test_a_replay_and_a_reused_key_take_the_general_path(shop, checkout):
    body = order(voucher(1, "all"), amount_krw=1_000)
    first = post(checkout, URL, body, key="k-2")
    again = post(checkout, URL, body, key="k-2")
    other = post(checkout, URL, {**body, "amount_krw": 2_000}, key="k-2")
    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 422)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Redemption.objects.count() == 1 and IdempotencyKey.objects.count() == 1


@pytest.mark.parametrize(("body", "status", "code"), [
    (lambda: order(voucher(1, "all"), amount_krw=60_000, order_total_krw=60_000), 409,
     "insufficient_balance"),
    (lambda: order(voucher(2, "all")), 404, "voucher_not_found"),  # another customer's
    (lambda: {**order(voucher(1, "all")), "amount_krw": -1}, 400, "validation_error"),
])
def test_refusals_are_stored_and_replayed(shop, checkout, body, status, code):
    sent = body()
    if code == "voucher_not_found":
        sent["customer_id"] = 1
    first = post(checkout, URL, sent, key="k-3")
    again = post(checkout, URL, sent, key="k-3")
    assert (first.status_code, first.json()["code"]) == (status, code)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert json.loads(_stored("k-3").response_body) == first.json()
    assert not Redemption.objects.exists()


def test_without_its_routine_installed_checkout_takes_the_general_path(shop, checkout, caplog):
    """Code deployed without its migrate: checkouts go on, slower, and say why."""
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER FUNCTION {CHECKOUT_ROUTINE.function} RENAME TO routine_away")
    try:
        response = post(checkout, URL, order(voucher(1, "all"), amount_krw=1_000), key="k-4")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER FUNCTION routine_away RENAME TO {CHECKOUT_ROUTINE.function}")
    assert response.status_code == 201
    assert json.loads(_stored("k-4").response_body) == response.json()
    assert "not installed" in caplog.text
