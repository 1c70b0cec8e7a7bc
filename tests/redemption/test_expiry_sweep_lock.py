"""An expiry sweep and the writers in flight, on real threads and connections: the sweep's
cutoff waits for a checkout that has not committed, so its sum includes what that
checkout spent; and it gives up, recording nothing, when writers hold on too long."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from tests.redemption.conftest import voucher
from vouchers.finance.selectors import campaign_summary
from vouchers.ledger.verification import verify_ledger
from vouchers.models import ExpirySweep
from vouchers.redemption import services
from vouchers.redemption.expiry import SweepDeferred, expire_vouchers

pytestmark = pytest.mark.django_db(transaction=True)


class CheckoutInFlight(threading.Thread):
    """A checkout of 20,000 won on customer 1's ``all`` voucher, done but not committed
    until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.spent = threading.Event()
        self.release = threading.Event()

    def run(self) -> None:
        try:
            with transaction.atomic():
                target = voucher(1, "all")
                services.create_redemption(
                    voucher_id=target.pk, customer_id=1, order_id="in-flight",
                    amount_krw=20_000, order_total_krw=20_000, merchant_category="eats",
                    capture=True, actor="test")
                self.spent.set()
                self.release.wait(timeout=30)
        finally:
            connection.close()


class Sweep(threading.Thread):
    def __init__(self, now: dt.datetime) -> None:
        super().__init__(daemon=True)
        self.now = now
        self.result = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = expire_vouchers(now=self.now)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connection.close()


def test_the_sweep_waits_for_a_checkout_in_flight_and_counts_what_it_spent(shop, settings):
    settings.EXPIRY_LOCK_TIMEOUT_MS = 100
    settings.EXPIRY_LOCK_ATTEMPTS = 100
    outstanding = campaign_summary(shop)["outstanding_krw"]
    checkout = CheckoutInFlight()
    checkout.start()
    assert checkout.spent.wait(timeout=30)
    sweep = Sweep(timezone.now() + dt.timedelta(days=91))
    sweep.start()
    sweep.join(timeout=1.0)
    assert sweep.is_alive()  # waiting for the checkout: no cutoff yet
    assert not ExpirySweep.objects.exists()
    checkout.release.set()
    checkout.join(timeout=30)
    sweep.join(timeout=30)
    assert sweep.error is None
    assert (sweep.result.vouchers, sweep.result.expired_krw) == (9, outstanding - 20_000)
    assert campaign_summary(shop)["outstanding_krw"] == 0
    assert verify_ledger(campaign_id=shop.pk).ok


def test_the_sweep_gives_up_rather_than_stall_checkouts(shop, settings):
    settings.EXPIRY_LOCK_TIMEOUT_MS = 50
    settings.EXPIRY_LOCK_ATTEMPTS = 2
    checkout = CheckoutInFlight()
    checkout.start()
    assert checkout.spent.wait(timeout=30)
    try:
        with pytest.raises(SweepDeferred):
            expire_vouchers(now=timezone.now() + dt.timedelta(days=91))
    finally:
        checkout.release.set()
        checkout.join(timeout=30)
    assert not ExpirySweep.objects.exists()
    assert expire_vouchers(now=timezone.now() + dt.timedelta(days=91)).vouchers == 9
    assert verify_ledger(campaign_id=shop.pk).ok
