"""Idempotency keys on every checkout POST: required, replayed, refused when reused."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.redemption.conftest import URL, order, post, redeem, step, voucher
from voucher_service.idempotency import purge_expired_keys
from voucher_service.models import AuditEvent, IdempotencyKey
from vouchers.ledger.verification import verify_ledger
from vouchers.models import LedgerPosting
from vouchers.redemption.models import Redemption
from vouchers.redemption.tasks import purge_idempotency_keys

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("action", [None, "capture", "void", "refund"])
def test_every_post_needs_a_key(shop, checkout, action):
    if action is None:
        response = checkout.post(URL, order(voucher(1, "all"), amount_krw=1_000),
                                 format="json")
    else:
        held = redeem(checkout, voucher(1, "all"), amount_krw=1_000, capture=False).json()
        response = checkout.post(f"{URL}/{held['id']}/{action}", {}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "idempotency_key_required"
    assert Redemption.objects.count() == (0 if action is None else 1)


@pytest.mark.parametrize("key", ["x" * 256, "has space", "naïve"])
def test_malformed_keys_are_400(shop, checkout, key):
    response = checkout.post(URL, order(voucher(1, "all")), format="json",
                             HTTP_IDEMPOTENCY_KEY=key.encode().decode("latin-1"))
    assert response.status_code == 400 and response.json()["code"] == "idempotency_key_invalid"


def test_same_key_and_body_replays_without_a_second_effect(shop, checkout):
    v = voucher(1, "all")
    body = order(v, amount_krw=1_000)
    first = post(checkout, URL, body, key="order-1")
    again = post(checkout, URL, body, key="order-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Redemption.objects.count() == 1
    v.refresh_from_db()
    assert v.balance_krw == 49_000


def test_same_key_with_another_body_is_422(shop, checkout):
    v = voucher(1, "all")
    post(checkout, URL, order(v, amount_krw=1_000, order_id="o-1"), key="k")
    response = post(checkout, URL, order(v, amount_krw=2_000, order_id="o-1"), key="k")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Redemption.objects.count() == 1


def test_same_key_on_another_path_is_422(shop, checkout):
    held = redeem(checkout, voucher(1, "all"), amount_krw=1_000, capture=False).json()
    assert step(checkout, held["id"], "capture", key="step").status_code == 200
    response = step(checkout, held["id"], "void", key="step")
    assert response.status_code == 422


def test_client_errors_are_stored_and_replayed(shop, checkout):
    v = voucher(1, "all")
    body = order(v, amount_krw=60_000, order_total_krw=60_000)
    first = post(checkout, URL, body, key="too-much")
    assert first.status_code == 409 and first.json()["code"] == "insufficient_balance"
    again = post(checkout, URL, body, key="too-much")
    assert again.status_code == 409
    assert again["Content-Type"] == "application/problem+json"
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_validation_errors_are_replayed_too(shop, checkout):
    body = order(voucher(1, "all"), amount_krw=0)
    assert post(checkout, URL, body, key="bad").status_code == 400
    assert post(checkout, URL, body, key="bad")["Idempotent-Replayed"] == "true"


def test_steps_replay(shop, checkout):
    spent = redeem(checkout, voucher(1, "all"), amount_krw=4_000).json()
    first = step(checkout, spent["id"], "refund", {"amount_krw": 1_000}, key="r1")
    again = step(checkout, spent["id"], "refund", {"amount_krw": 1_000}, key="r1")
    assert again.json() == first.json()
    assert again.json()["refunded_krw"] == 1_000
    assert LedgerPosting.objects.filter(transaction__reason="refund").count() == 2
    assert verify_ledger(campaign_id=shop.pk).ok


def test_keys_belong_to_one_caller(shop, checkout, role_client):
    other = role_client("checkout")
    v = voucher(1, "all")
    assert post(checkout, URL, order(v, amount_krw=1_000), key="shared").status_code == 201
    assert post(other, URL, order(v, amount_krw=1_000), key="shared").json().get(
        "voucher_balance_krw") == 48_000
    assert Redemption.objects.count() == 2


def _age(key: str, hours: float) -> None:
    IdempotencyKey.objects.filter(key=key).update(
        created_at=timezone.now() - dt.timedelta(hours=hours))


def test_purge_drops_keys_past_their_ttl(shop, checkout, settings):
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 48
    v = voucher(1, "all")
    for key in ("old", "young"):
        post(checkout, URL, order(v, amount_krw=1_000), key=key)
    _age("old", 49)
    _age("young", 47)
    assert purge_idempotency_keys.apply().get() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["young"]


def test_keys_are_kept_at_least_a_day(shop, checkout, settings):
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 1
    post(checkout, URL, order(voucher(1, "all"), amount_krw=1_000), key="k")
    _age("k", 23)
    assert purge_expired_keys(batch_size=1) == 0
    _age("k", 25)
    assert purge_expired_keys(batch_size=1) == 1


@pytest.mark.urls("tests.redemption.idempotent_urls")
def test_a_refusal_after_a_write_leaves_only_the_stored_answer(checkout):
    first = post(checkout, "/t/write", {"fail": "refuse"}, key="w")
    assert first.status_code == 409 and first.json()["code"] == "refused"
    assert not AuditEvent.objects.filter(action="test.write").exists()
    again = post(checkout, "/t/write", {"fail": "refuse"}, key="w")
    assert (again.status_code, again["Idempotent-Replayed"]) == (409, "true")
    assert again.json() == first.json()
    assert IdempotencyKey.objects.get(key="w").status_code == 409


@pytest.mark.urls("tests.redemption.idempotent_urls")
def test_server_errors_are_not_stored(checkout):
    checkout.raise_request_exception = False
    crashed = post(checkout, "/t/write", {"fail": "crash"}, key="c")
    assert crashed.status_code == 500
    assert not IdempotencyKey.objects.filter(key="c").exists()
    assert not AuditEvent.objects.filter(action="test.write").exists()
    checkout.raise_request_exception = True
    done = post(checkout, "/t/write", {}, key="c")
    assert (done.status_code, done.json()) == (201, {"events": 1})
