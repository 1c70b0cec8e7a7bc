"""The redemption answer on the hot path: ``RedemptionSerializer`` renders directly what
DRF's generic field loop renders, and the redemption a checkout builds without reading it
back answers as the stored row does."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from tests.redemption.conftest import URL, redeem, step, voucher
from vouchers.redemption.api import RedemptionSerializer
from vouchers.redemption.models import Redemption

pytestmark = pytest.mark.django_db


def _generic(redemption: Redemption) -> dict:
    serializer = RedemptionSerializer(redemption)
    return serializers.ModelSerializer.to_representation(serializer, redemption)


def test_direct_rendering_matches_the_generic_one(shop, checkout):
    captured = redeem(checkout, voucher(1, "all"), amount_krw=1_000).json()["id"]
    held = redeem(checkout, voucher(1, "all"), amount_krw=2_000, capture=False).json()["id"]
    forfeit = redeem(checkout, voucher(2, "eats"), amount_krw=3_000).json()["id"]
    voided = redeem(checkout, voucher(2, "all"), amount_krw=500, capture=False).json()["id"]
    refunded = redeem(checkout, voucher(2, "all"), amount_krw=700).json()["id"]
    assert step(checkout, captured, "refund", {"amount_krw": 400}).status_code == 200
    assert step(checkout, voided, "void").status_code == 200
    assert step(checkout, refunded, "refund").status_code == 200
    rendered = Redemption.objects.select_related("voucher").filter(
        id__in=[captured, held, forfeit, voided, refunded])
    assert {r.status for r in rendered} == {"partially_refunded", "authorized", "captured",
                                            "voided", "refunded"}
    for redemption in rendered:
        assert RedemptionSerializer(redemption).data == _generic(redemption)


@pytest.mark.parametrize("body", [
    {"category": "all", "amount_krw": 1_000},
    {"category": "all", "amount_krw": 50_000},
    {"category": "eats", "amount_krw": 3_000, "capture": False},
])
def test_a_checkout_answers_what_is_stored(shop, checkout, body):
    created = redeem(checkout, voucher(1, body.pop("category")), **body)
    assert created.status_code == 201
    assert checkout.get(f"{URL}/{created.json()['id']}").json() == created.json()
