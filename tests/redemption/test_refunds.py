"""Refunds: single-use forfeit and its restoration, partial refunds, limits, the ledger."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Sum
from django.utils import timezone

from tests.redemption.conftest import redeem, step, voucher
from vouchers.finance.selectors import FIGURES, campaign_summary
from vouchers.ledger.verification import verify_ledger
from vouchers.models import LedgerPosting, Voucher
from vouchers.redemption.models import RedemptionEvent

pytestmark = pytest.mark.django_db


def account_totals(campaign_id: int) -> dict[str, int]:
    rows = (LedgerPosting.objects.filter(campaign_id=campaign_id).values("account")
            .annotate(total=Sum("amount_krw")))
    return {r["account"]: r["total"] for r in rows}


def assert_books_balance(campaign) -> None:
    assert verify_ledger(campaign_id=campaign.pk).ok
    s = campaign_summary(campaign)
    assert s["issued_krw"] == (s["redeemed_krw"] - s["refunded_krw"] + s["authorized_krw"]
                               + s["forfeited_krw"] + s["expired_krw"] + s["revoked_krw"]
                               + s["outstanding_krw"])


def test_single_use_forfeits_the_rest_and_a_full_refund_restores_it(shop, checkout):
    eats = voucher(1, "eats")
    spent = redeem(checkout, eats, amount_krw=3_000, order_total_krw=3_000).json()
    assert (spent["forfeited_krw"], spent["voucher_balance_krw"]) == (2_000, 0)
    eats.refresh_from_db()
    assert (eats.balance_krw, eats.status) == (0, "exhausted")
    assert campaign_summary(shop)["forfeited_krw"] == 2_000
    assert_books_balance(shop)

    refund = step(checkout, spent["id"], "refund", {"amount_krw": 3_000})
    assert refund.status_code == 200
    body = refund.json()
    assert (body["status"], body["refunded_krw"], body["voucher_restored"],
            body["voucher_balance_krw"]) == ("refunded", 3_000, True, 5_000)
    eats.refresh_from_db()
    assert (eats.balance_krw, eats.status) == (5_000, "active")
    summary = campaign_summary(shop)
    assert (summary["forfeited_krw"], summary["redeemed_krw"], summary["refunded_krw"]) == (
        0, 3_000, 3_000)
    assert_books_balance(shop)


def test_partial_refund_of_single_use_restores_nothing(shop, checkout):
    eats = voucher(1, "eats")
    spent = redeem(checkout, eats, amount_krw=4_000, order_total_krw=10_000).json()
    body = step(checkout, spent["id"], "refund", {"amount_krw": 1_000}).json()
    assert (body["status"], body["refunded_krw"], body["voucher_restored"],
            body["voucher_balance_krw"]) == ("partially_refunded", 1_000, False, 0)
    assert campaign_summary(shop)["forfeited_krw"] == 1_000 + 1_000
    assert_books_balance(shop)


def test_refunding_the_rest_after_a_partial_refund_restores_the_whole_voucher(shop, checkout):
    eats = voucher(1, "eats")
    spent = redeem(checkout, eats, amount_krw=4_000, order_total_krw=10_000).json()
    step(checkout, spent["id"], "refund", {"amount_krw": 1_000})
    body = step(checkout, spent["id"], "refund").json()
    assert (body["status"], body["refunded_krw"], body["refund_amount_krw"],
            body["voucher_restored"], body["voucher_balance_krw"]) == (
        "refunded", 4_000, 3_000, True, 5_000)
    assert campaign_summary(shop)["forfeited_krw"] == 0
    assert_books_balance(shop)


def test_full_refund_after_expiry_restores_nothing(shop, checkout):
    eats = voucher(1, "eats")
    spent = redeem(checkout, eats, amount_krw=5_000).json()
    Voucher.objects.filter(pk=eats.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    body = step(checkout, spent["id"], "refund").json()
    assert (body["status"], body["voucher_restored"], body["voucher_balance_krw"]) == (
        "refunded", False, 0)
    assert_books_balance(shop)


def test_multi_use_partial_refunds_go_back_to_the_balance(shop, checkout):
    v = voucher(1, "all")
    spent = redeem(checkout, v, amount_krw=20_000, order_total_krw=25_000).json()
    assert spent["voucher_balance_krw"] == 30_000
    first = step(checkout, spent["id"], "refund", {"amount_krw": 5_000}).json()
    assert (first["status"], first["refunded_krw"], first["voucher_restored"],
            first["voucher_balance_krw"]) == ("partially_refunded", 5_000, True, 35_000)
    second = step(checkout, spent["id"], "refund", {"amount_krw": 15_000}).json()
    assert (second["status"], second["refunded_krw"], second["voucher_balance_krw"]) == (
        "refunded", 20_000, 50_000)
    refunds = RedemptionEvent.objects.filter(redemption_id=spent["id"], kind="refund")
    assert sorted(refunds.values_list("amount_krw", flat=True)) == [5_000, 15_000]
    assert account_totals(shop.pk)["refunded"] == 20_000
    assert_books_balance(shop)


def test_multi_use_refund_after_expiry_lapses_to_expired(shop, checkout):
    v = voucher(1, "all")
    spent = redeem(checkout, v, amount_krw=20_000).json()
    Voucher.objects.filter(pk=v.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    body = step(checkout, spent["id"], "refund", {"amount_krw": 5_000}).json()
    # Expired: nothing on it can be spent any more (its 30,000 won lapse to expired).
    assert (body["voucher_restored"], body["voucher_balance_krw"]) == (False, 0)
    assert campaign_summary(shop)["expired_krw"] == 5_000
    assert_books_balance(shop)


def test_refund_over_captured_is_409(shop, checkout):
    spent = redeem(checkout, voucher(1, "all"), amount_krw=2_000).json()
    response = step(checkout, spent["id"], "refund", {"amount_krw": 2_001})
    assert response.status_code == 409
    assert response.json()["code"] == "refund_exceeds_captured"
    step(checkout, spent["id"], "refund", {"amount_krw": 1_500})
    response = step(checkout, spent["id"], "refund", {"amount_krw": 501})
    assert response.status_code == 409
    assert (response.json()["code"], response.json()["refundable_krw"]) == (
        "refund_exceeds_captured", 500)
    done = step(checkout, spent["id"], "refund", {"amount_krw": 500}).json()
    assert done["status"] == "refunded"
    again = step(checkout, spent["id"], "refund", {"amount_krw": 1})
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    assert_books_balance(shop)


@pytest.mark.parametrize("after", ["hold", "void"])
def test_only_captured_redemptions_are_refunded(shop, checkout, after):
    held = redeem(checkout, voucher(1, "all"), amount_krw=2_000, capture=False).json()
    if after == "void":
        step(checkout, held["id"], "void")
    response = step(checkout, held["id"], "refund", {"amount_krw": 1_000})
    assert response.status_code == 409 and response.json()["code"] == "invalid_transition"


def test_summary_figures_follow_a_mixed_day(shop, checkout):
    spent = redeem(checkout, voucher(1, "all"), amount_krw=10_000).json()
    redeem(checkout, voucher(2, "all"), amount_krw=7_000, capture=False)
    redeem(checkout, voucher(2, "travel"), amount_krw=15_000, order_total_krw=45_000)
    step(checkout, spent["id"], "refund", {"amount_krw": 4_000})
    summary = campaign_summary(shop)
    assert {k: summary[k] for k in FIGURES} == {
        "issued_krw": 3 * 75_000, "issued_count": 9, "redeemed_krw": 25_000,
        "refunded_krw": 4_000, "authorized_krw": 7_000, "forfeited_krw": 5_000,
        "expired_krw": 0, "revoked_krw": 0,
        "outstanding_krw": 3 * 75_000 - 25_000 + 4_000 - 7_000 - 5_000,
    }
    assert_books_balance(shop)
