"""One mechanism fences every changed answer once the change commits: writers never call a
fence. A new kind of write made with the ORM is fenced without a line of fencing code;
set-based statements record whom they changed, and a range (issuance's chunk) is resolved
to the registry's customers at the commit, only while eligibility is open."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tests.eligibility.conftest import ACTIVE, DORMANT, NEW_ACCOUNT
from vouchers.eligibility.cache import FENCE, answer_key
from vouchers.models import RegistryEntry, Voucher
from vouchers.models.changes import customers_changed

pytestmark = pytest.mark.django_db


def _fenced(slug: str, customers) -> set[int]:
    return {c for c in customers if cache.get(answer_key(slug, c)) == FENCE}


def _extend_expiry(voucher_id: int, days: int) -> None:
    """A kind of write nothing in the service does: pushing a voucher's expiry back."""
    with transaction.atomic():
        Voucher.objects.filter(pk=voucher_id).update(
            expires_at=F("expires_at") + dt.timedelta(days=days))


def test_a_new_kind_of_write_is_fenced_without_calling_anything(
        issued, django_capture_on_commit_callbacks):
    voucher = Voucher.objects.filter(customer_id=ACTIVE).first()
    cache.clear()  # the fixture's issuance fenced everyone
    with django_capture_on_commit_callbacks(execute=True):
        _extend_expiry(voucher.pk, days=30)
        assert _fenced("breach", [ACTIVE]) == set()  # not before the commit
    assert _fenced("breach", [ACTIVE, DORMANT]) == {ACTIVE}


def test_a_saved_row_and_a_change_of_holder_are_fenced(issued,
                                                       django_capture_on_commit_callbacks):
    voucher = Voucher.objects.filter(customer_id=DORMANT).first()
    cache.clear()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        voucher.min_order_krw = 1_000
        voucher.save(update_fields=["min_order_krw"])
        Voucher.objects.filter(customer_id=ACTIVE).update(customer_id=NEW_ACCOUNT)
    assert _fenced("breach", [ACTIVE, DORMANT, NEW_ACCOUNT]) == {ACTIVE, DORMANT, NEW_ACCOUNT}


def test_a_rolled_back_write_fences_nothing(issued, django_capture_on_commit_callbacks):
    cache.clear()
    voucher_id = Voucher.objects.filter(customer_id=ACTIVE).first().pk
    with (django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError),
          transaction.atomic()):
        _extend_expiry(voucher_id, days=1)
        raise RuntimeError("rolled back")
    assert _fenced("breach", [ACTIVE]) == set()


def test_a_range_fences_the_registry_customers_in_it(campaign, settings,
                                                     django_capture_on_commit_callbacks):
    registered = set(RegistryEntry.objects.filter(campaign=campaign, customer_id__lt=104)
                     .values_list("customer_id", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        customers_changed(campaign_id=campaign.pk, customer_range=(100, 104))
    assert _fenced("breach", range(95, 110)) == registered == {101, 102, 103}
    assert 0 < cache.ttl(answer_key("breach", 101)) <= settings.ELIGIBILITY_CACHE_FENCE_SECONDS


def test_before_eligibility_opens_nothing_is_fenced(campaign,
                                                     django_capture_on_commit_callbacks):
    campaign.eligibility_opens_at = timezone.now() + dt.timedelta(days=1)
    campaign.save(update_fields=["eligibility_opens_at"])
    with django_capture_on_commit_callbacks(execute=True):
        customers_changed(campaign_id=campaign.pk, customer_range=(100, 110))
        customers_changed(campaign_id=campaign.pk, customer_ids=[ACTIVE])
    assert _fenced("breach", range(100, 110)) == set()
