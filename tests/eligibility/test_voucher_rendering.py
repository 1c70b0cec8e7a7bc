"""``VoucherSerializer`` and ``EligibilitySerializer`` render directly what DRF's generic
field loop renders: vouchers of every status, in every API that shows them; the answers of
every kind of customer, with and without exposed data."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from tests.eligibility.conftest import (
    ACTIVE,
    CLOSED_A,
    CLOSED_B,
    DORMANT,
    EXCLUDED,
    NEW_ACCOUNT,
    STRANGER,
)
from vouchers.api.serializers import VoucherSerializer
from vouchers.eligibility import selectors
from vouchers.eligibility.api import EligibilitySerializer, eligibility_answer
from vouchers.models import RegistryEntry, Voucher, VoucherStatus
from vouchers.models.registry import EXPOSED_BITS

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


def test_the_eligibility_answer_renders_as_the_generic_loop_does(issued):
    for customer_id, kinds in ((ACTIVE, list(EXPOSED_BITS)), (CLOSED_A, ["phone", "name"])):
        RegistryEntry.objects.filter(campaign=issued, customer_id=customer_id).update(
            exposed=sum(EXPOSED_BITS[kind] for kind in kinds))
    facts = selectors.campaign_facts(issued.slug)
    answers = [eligibility_answer(facts, selectors.eligibility(facts, customer_id))
               for customer_id in (ACTIVE, DORMANT, CLOSED_A, CLOSED_B, EXCLUDED, NEW_ACCOUNT,
                                   STRANGER)]
    assert {a["status"] for a in answers} >= {"issued", "claimable", "not_eligible"}
    assert any(a["vouchers"] for a in answers) and any(a["account_status"] is None
                                                      for a in answers)
    assert [len(a["exposed"]) for a in answers] == [6, 0, 2, 0, 0, 0, 0]
    assert all(len(a["advice"]) == len(a["exposed"]) for a in answers)
    for answer in answers:
        generic = serializers.Serializer.to_representation(EligibilitySerializer(answer), answer)
        assert EligibilitySerializer(answer).data == generic
