"""Property: any history of issue, checkout, capture, void, refund, revoke and expiry, run
through the real services, keeps the books.

After each random history: every ledger transaction balances and all postings sum to zero,
every voucher's balance equals its amount minus its postings (``verify_ledger``), the
finance identity ``issued == redeemed - refunded + authorized + forfeited + expired +
revoked + outstanding`` holds, and each redemption's refunded total equals its refund
events. Invalid steps (spending too much, refunding a hold, ...) are part of the histories:
they must be refused and change nothing.
"""

from __future__ import annotations

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voucher_service.problems import ProblemError
from vouchers.finance.selectors import campaign_summary
from vouchers.issuance.chunk import issue_chunk
from vouchers.issuance.revocations import revoke_customer
from vouchers.ledger.verification import verify_ledger
from vouchers.models import Campaign, LedgerPosting, RegistryEntry, Voucher
from vouchers.redemption import services
from vouchers.redemption.expiry import expire_vouchers
from vouchers.redemption.models import Redemption, RedemptionEvent

COMPONENTS = [
    {"category": "all", "amount_krw": 50_000},
    {"category": "eats", "amount_krw": 5_000, "single_use": True},
    {"category": "travel", "amount_krw": 20_000, "single_use": True, "min_order_krw": 40_000},
]
KINDS = ["issue", "issue_closed", "redeem", "hold", "capture", "void", "refund", "refund_all",
         "revoke", "expire"]
STEPS = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 2**16), st.integers(0, 2**16)),
    min_size=1, max_size=16,
)


class History:
    """Applies steps to one campaign; picks its targets from what exists so far."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.customers = 0
        self.redemptions: list = []

    def issue(self, status: str) -> None:
        self.customers += 1
        RegistryEntry.objects.create(campaign=self.campaign, customer_id=self.customers,
                                     account_status=status, imported_at=timezone.now())
        issue_chunk(campaign_id=self.campaign.pk, lo=self.customers, hi=self.customers + 1,
                    run_id=None, chunk_id=None)

    def _voucher(self, pick: int) -> Voucher | None:
        vouchers = list(Voucher.objects.filter(campaign=self.campaign).order_by("pk"))
        return vouchers[pick % len(vouchers)] if vouchers else None

    def spend(self, pick: int, seed: int, *, capture: bool) -> None:
        voucher = self._voucher(pick)
        if voucher is None:
            return
        # Mostly within the balance; every seventh asks for one won more than it has, every
        # fifth order is one won short of the minimum where there is one.
        balance = voucher.balance_krw
        amount = balance + 1 if seed % 7 == 0 else 1 + seed % max(balance, 1)
        total = max(amount, voucher.min_order_krw)
        if seed % 5 == 0 and voucher.min_order_krw > amount:
            total = voucher.min_order_krw - 1
        redemption = services.create_redemption(
            voucher_id=voucher.pk, customer_id=voucher.customer_id, order_id=f"o{seed}",
            amount_krw=amount, order_total_krw=total, merchant_category=voucher.category
            if voucher.category != "all" else "eats", capture=capture, actor="test")
        self.redemptions.append(redemption.pk)

    def _redemption(self, pick: int):
        return self.redemptions[pick % len(self.redemptions)] if self.redemptions else None

    def apply(self, kind: str, pick: int, seed: int) -> None:
        redemption_id = self._redemption(pick)
        if kind in ("issue", "issue_closed"):
            self.issue("closed" if kind == "issue_closed" else "active")
        elif kind in ("redeem", "hold"):
            self.spend(pick, seed, capture=kind == "redeem")
        elif kind == "revoke" and self.customers:
            revoke_customer(campaign=self.campaign, customer_id=1 + pick % self.customers,
                            reason="test", actor="test")
        elif kind == "expire":
            # Those not expired yet reach their expiry now (an expired voucher's time
            # never moves again: it would carry it into a later sweep's window).
            Voucher.objects.filter(campaign=self.campaign, expires_at__gt=timezone.now()
                                   ).update(expires_at=timezone.now())
            expire_vouchers()
        elif redemption_id is None:
            return
        elif kind == "capture":
            services.capture_redemption(redemption_id=redemption_id, actor="test")
        elif kind == "void":
            services.void_redemption(redemption_id=redemption_id, actor="test")
        elif kind in ("refund", "refund_all"):
            amount = None if kind == "refund_all" else 1 + seed % 30_000
            services.refund_redemption(redemption_id=redemption_id, amount_krw=amount,
                                       actor="test")


def assert_books_kept(campaign: Campaign) -> None:
    report = verify_ledger(campaign_id=campaign.pk)
    assert report.ok, [c for c in report.checks if not c.ok]
    total = LedgerPosting.objects.filter(campaign_id=campaign.pk).aggregate(s=Sum("amount_krw"))
    assert (total["s"] or 0) == 0
    s = campaign_summary(campaign)
    assert s["issued_krw"] == (s["redeemed_krw"] - s["refunded_krw"] + s["authorized_krw"]
                               + s["forfeited_krw"] + s["expired_krw"] + s["revoked_krw"]
                               + s["outstanding_krw"])
    for redemption in Redemption.objects.filter(campaign=campaign):
        refunds = RedemptionEvent.objects.filter(redemption=redemption, kind="refund")
        assert redemption.refunded_krw == (refunds.aggregate(s=Sum("amount_krw"))["s"] or 0)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=STEPS)
def test_any_history_keeps_the_books(make_campaign, steps):
    with transaction.atomic():
        history = History(make_campaign(slug="prop", components=COMPONENTS))
        history.issue("active")
        for kind, pick, seed in steps:
            try:
                with transaction.atomic():
                    history.apply(kind, pick, seed)
            except ProblemError as refused:
                assert refused.status_code in (404, 409)
        assert_books_kept(history.campaign)
        transaction.set_rollback(True)
