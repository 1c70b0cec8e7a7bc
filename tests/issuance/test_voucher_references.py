"""A voucher's campaign and component, held by the database per statement
(vouchers.0010): a voucher of a component that is not its campaign's is refused, its
references never change, and a campaign or component with vouchers cannot be deleted."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from vouchers.issuance.chunk import issue_chunk
from vouchers.models import Campaign, Component, RegistryEntry, Voucher

pytestmark = pytest.mark.django_db

ONE = [{"category": "all", "amount_krw": 5_000}]


@pytest.fixture
def two(make_campaign, load_registry) -> tuple[Campaign, Campaign]:
    first = make_campaign(slug="first", components=ONE)
    second = make_campaign(slug="second", components=ONE)
    load_registry(first, {1: "active", 2: "active"})
    issue_chunk(campaign_id=first.pk, lo=1, hi=3, run_id=None, chunk_id=None)
    return first, second


def _insert(campaign_id: int, component_id: int, customer_id: int) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO vouchers_voucher (campaign_id, component_id, registry_customer_id,"
            " customer_id, category, amount_krw, balance_krw, single_use, min_order_krw,"
            " status, issued_at, expires_at) VALUES"
            " (%s, %s, %s, %s, 'all', 5000, 5000, false, 0, 'active', now(),"
            "  now() + interval '1 day')",
            [campaign_id, component_id, customer_id, customer_id])


def test_a_voucher_of_another_campaigns_component_is_refused(two):
    first, second = two
    with pytest.raises(IntegrityError, match="not one of its campaign's"):
        _insert(first.pk, second.components.get().pk, 3)
    with pytest.raises(IntegrityError, match="not one of its campaign's"):
        _insert(first.pk, 999_999, 3)
    _insert(second.pk, second.components.get().pk, 3)  # its own: accepted
    assert Voucher.objects.filter(campaign=second).count() == 1


def test_a_vouchers_references_never_change(two):
    first, second = two
    voucher = Voucher.objects.filter(campaign=first).first()
    with pytest.raises(IntegrityError, match="never change"), transaction.atomic():
        Voucher.objects.filter(pk=voucher.pk).update(
            campaign_id=second.pk, component_id=second.components.get().pk)


def test_a_campaign_or_component_with_vouchers_is_not_deleted(two):
    first, second = two
    # Its registry entries would refuse the campaign's deletion first (vouchers.0012).
    RegistryEntry.objects.filter(campaign=first).delete()
    for sql, pk in (("DELETE FROM vouchers_component WHERE id = %s",
                     first.components.get().pk),
                    ("DELETE FROM vouchers_campaign WHERE id = %s", first.pk)):
        with pytest.raises(IntegrityError, match="it has vouchers"), transaction.atomic(), \
                connection.cursor() as cursor:
            cursor.execute(sql, [pk])
    Component.objects.filter(campaign=second).delete()  # none issued: deleted
    assert not Component.objects.filter(campaign=second).exists()
