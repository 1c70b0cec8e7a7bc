"""Staging tables of registry imports that died are dropped by the beat's job once their
lease is stale, not left (with raw phone numbers) until the campaign's next import; a
running import's stay."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from vouchers.eligibility.importing import LEASE_SECONDS
from vouchers.eligibility.models import RegistryImportLease
from vouchers.eligibility.tasks import drop_abandoned_imports

pytestmark = pytest.mark.django_db(transaction=True)


def stage(campaign_id: int) -> None:
    with connection.cursor() as cursor:
        for kind in ("raw", "rows"):
            cursor.execute(f"CREATE UNLOGGED TABLE registry_import_{kind}_{campaign_id} "
                           "(line bigint, phone text)")


def staged(campaign_id: int) -> list[bool]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
                       [f"registry_import_raw_{campaign_id}",
                        f"registry_import_rows_{campaign_id}"])
        return list(cursor.fetchone())


def lease(campaign, seconds_ago: float) -> None:
    RegistryImportLease.objects.create(
        campaign=campaign, holder=uuid.uuid4(),
        renewed_at=timezone.now() - dt.timedelta(seconds=seconds_ago))


def test_only_the_tables_of_dead_imports_are_dropped(make_campaign):
    dead, running, unleased = (make_campaign(slug=s) for s in ("dead", "running", "unleased"))
    gone = 2**40  # a campaign deleted since
    for campaign_id in (dead.pk, running.pk, unleased.pk, gone):
        stage(campaign_id)
    lease(dead, LEASE_SECONDS + 5)
    lease(running, 1)

    dropped = drop_abandoned_imports()  # other tests' leftovers too, if any
    assert {dead.pk, unleased.pk, gone} <= set(dropped) and running.pk not in dropped
    assert staged(dead.pk) == staged(unleased.pk) == staged(gone) == [False, False]
    assert staged(running.pk) == [True, True]
    assert RegistryImportLease.objects.get(campaign=running).renewed_at > (
        timezone.now() - dt.timedelta(seconds=LEASE_SECONDS))
    assert not RegistryImportLease.objects.filter(campaign__in=[dead, unleased]).exists()
    assert drop_abandoned_imports() == []
