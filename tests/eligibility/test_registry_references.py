"""A registry entry's campaign, held by the database per statement (vouchers.0012): an
entry of no campaign is refused, its campaign never changes, and a campaign with registry
entries cannot be deleted."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from vouchers.models import RegistryEntry

pytestmark = pytest.mark.django_db


def _insert(campaign_id: int, customer_id: int) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO vouchers_registryentry (campaign_id, customer_id, account_status,"
            " imported_at) VALUES (%s, %s, 'active', now())", [campaign_id, customer_id])


def test_an_entry_of_no_campaign_is_refused(make_campaign):
    campaign = make_campaign(slug="registered")
    with pytest.raises(IntegrityError, match="no such campaign"):
        _insert(campaign.pk + 1000, 1)
    _insert(campaign.pk, 1)  # its own: accepted
    assert RegistryEntry.objects.filter(campaign=campaign).count() == 1


def test_an_entrys_campaign_never_changes(make_campaign):
    first, second = make_campaign(slug="first"), make_campaign(slug="second")
    _insert(first.pk, 1)
    with pytest.raises(IntegrityError, match="never changes"), transaction.atomic():
        RegistryEntry.objects.filter(campaign=first).update(campaign_id=second.pk)
    RegistryEntry.objects.filter(campaign=first).update(account_status="dormant")


def test_a_campaign_with_registry_entries_is_not_deleted(make_campaign):
    kept, empty = make_campaign(slug="kept"), make_campaign(slug="empty")
    _insert(kept.pk, 1)
    for campaign in (kept, empty):
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM vouchers_component WHERE campaign_id = %s",
                           [campaign.pk])
    with pytest.raises(IntegrityError, match="it has registry entries"), \
            transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM vouchers_campaign WHERE id = %s", [kept.pk])
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM vouchers_campaign WHERE id = %s", [empty.pk])
        assert cursor.rowcount == 1
