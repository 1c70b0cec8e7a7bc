"""``VoucherSerializer`` renders directly what DRF's generic field loop renders, for
vouchers of every status, in every API that shows them."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from tests.eligibility.conftest import ACTIVE, CLOSED_A
from vouchers.api.serializers import VoucherSerializer
from vouchers.models import Voucher, VoucherStatus

pytestmark = pytest.mark.django_db


def _generic(voucher: Voucher) -> dict:
    return serializers.ModelSerializer.to_representation(VoucherSerializer(voucher), voucher)


def test_direct_rendering_matches_the_generic_one(issued):
    vouchers = list(Voucher.objects.filter(campaign=issued).select_related("campaign"))
    statuses = [VoucherStatus.EXHAUSTED, VoucherStatus.EXPIRED, VoucherStatus.REVOKED]
    for voucher, status in zip(vouchers, statuses, strict=False):
        voucher.status = status
    assert {v.status for v in vouchers} >= {*statuses, VoucherStatus.ACTIVE,
                                            VoucherStatus.UNCLAIMED}
    for voucher in vouchers:
        assert VoucherSerializer(voucher).data == _generic(voucher)


def test_the_check_and_the_list_show_the_same_vouchers(issued, customer_client):
    for customer_id in (ACTIVE, CLOSED_A):
        client = customer_client(customer_id)
        checked = client.get(f"/api/v1/campaigns/{issued.slug}/eligibility").json()
        listed = client.get("/api/v1/me/vouchers").json()["results"]
        assert listed
        assert sorted(checked["vouchers"], key=lambda v: v["id"]) == sorted(
            listed, key=lambda v: v["id"])
