"""Periodic jobs: daily expiry (set-based, idempotent) and the hold timeout."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from tests.redemption.conftest import redeem, step, voucher
from voucher_service.models import AuditEvent
from vouchers.eligibility.cache import answer_key
from vouchers.finance.selectors import campaign_summary
from vouchers.issuance.chunk import issue_chunk
from vouchers.ledger.verification import verify_ledger
from vouchers.models import ExpirySweep, LedgerPosting, Voucher
from vouchers.redemption import services
from vouchers.redemption.expiry import expire_vouchers
from vouchers.redemption.models import Redemption
from vouchers.redemption.tasks import expire_due_vouchers, void_timed_out_holds

pytestmark = pytest.mark.django_db


def _postings(account: str, **filters) -> int:
    return (LedgerPosting.objects.filter(account=account, **filters)
            .aggregate(s=Sum("amount_krw"))["s"] or 0)


def _expire_all(campaign) -> None:
    Voucher.objects.filter(campaign=campaign).update(
        expires_at=timezone.now() - dt.timedelta(minutes=1))


def test_expiry_posts_each_leftover_from_its_holding_account(shop, checkout):
    redeem(checkout, voucher(1, "all"), amount_krw=20_000)  # 30,000 left
    redeem(checkout, voucher(2, "eats"), amount_krw=5_000)  # exhausted
    _expire_all(shop)
    before = campaign_summary(shop)["outstanding_krw"]
    rows_before = sorted(Voucher.objects.values_list("id", "status", "balance_krw"))

    result = expire_vouchers()

    # Left on them: customer 1: 30,000 + 5,000 + 20,000; customer 2: 50,000 + 20,000;
    # customer 3 (unclaimed): 75,000. Customer 2's eats voucher is exhausted.
    assert (result.vouchers, result.expired_krw) == (8, before)
    # No voucher row is written; each shows as expired but the exhausted one.
    assert sorted(Voucher.objects.values_list("id", "status", "balance_krw")) == rows_before
    shown = sorted(v.current_status for v in Voucher.objects.filter(campaign=shop))
    assert shown == ["exhausted"] + ["expired"] * 8
    assert _postings("expired") == -before
    assert _postings("unclaimed", transaction__reason="expiry") == 75_000
    assert _postings("liability", transaction__reason="expiry") == before - 75_000
    summary = campaign_summary(shop)
    assert (summary["expired_krw"], summary["outstanding_krw"]) == (before, 0)
    assert verify_ledger(campaign_id=shop.pk).ok
    sweep = ExpirySweep.objects.get()
    assert (sweep.vouchers, sweep.expired_krw, sweep.posted_at is not None) == (8, before, True)
    event = AuditEvent.objects.get(action="vouchers.expired")
    assert event.payload == {"vouchers": 8, "expired_krw": before, "campaign_ids": [shop.pk]}

    assert expire_vouchers().vouchers == 0
    assert expire_due_vouchers.apply().get() == 0
    assert _postings("expired") == -before


def test_expiry_posts_summaries_not_a_posting_per_voucher(shop, checkout):
    """Nine vouchers, one spent in part: the sweep writes one summary move per (category,
    holding account) carrying its voucher count, whatever the number of vouchers."""
    redeem(checkout, voucher(1, "all"), amount_krw=20_000)
    _expire_all(shop)
    expire_vouchers()
    expired = LedgerPosting.objects.filter(transaction__reason="expiry")
    assert not expired.filter(voucher_id__isnull=False).exists()
    held = expired.filter(account__in=["liability", "unclaimed"])
    assert held.aggregate(n=Sum("voucher_count"))["n"] == 9
    assert held.count() == len(set(held.values_list("category", "account"))) < 9
    assert verify_ledger(campaign_id=shop.pk).ok


def _tampered(sql: str, params: list) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    return {c.name for c in verify_ledger().checks if not c.ok}


def test_reconciliation_still_proves_each_expired_voucher(shop, checkout):
    """Without a posting of its own, an expired voucher is still accounted for: an expired
    voucher given another balance, a swept one taken out of the sweep (revoked quietly)
    and a live one pushed into a window already swept each fail the ledger checks."""
    redeem(checkout, voucher(1, "all"), amount_krw=20_000)
    Voucher.objects.filter(campaign=shop, category="all").update(
        expires_at=timezone.now() - dt.timedelta(minutes=1))
    expire_vouchers()
    assert verify_ledger().ok
    expired = voucher(2, "all")
    assert _tampered("UPDATE vouchers_voucher SET balance_krw = 1 WHERE id = %s",
                     [expired.pk]) >= {"voucher_balances_match_postings",
                                       "expired_matches_summaries"}
    _tampered("UPDATE vouchers_voucher SET balance_krw = amount_krw WHERE id = %s",
              [expired.pk])
    assert verify_ledger().ok
    assert _tampered("UPDATE vouchers_voucher SET status = 'revoked' WHERE id = %s",
                     [expired.pk]) >= {"expired_matches_summaries"}
    _tampered("UPDATE vouchers_voucher SET status = 'active' WHERE id = %s", [expired.pk])
    assert verify_ledger().ok
    untouched = voucher(2, "eats")
    assert _tampered("UPDATE vouchers_voucher SET expires_at = now() - interval '1 hour' "
                     "WHERE id = %s", [untouched.pk]) >= {
        "expired_matches_summaries", "holding_accounts_match_voucher_balances"}


def test_a_sweep_ahead_of_the_clock_binds_every_writer(shop, checkout):
    """A sweep through a time still to come (as the rehearsal runs its expiry day)
    expires what it adds up for checkout and every other writer too, so no balance it
    booked changes afterwards."""
    held = redeem(checkout, voucher(1, "eats"), amount_krw=3_000, capture=False).json()
    assert expire_vouchers().vouchers == 0
    soon = timezone.now() + dt.timedelta(days=90, minutes=1)
    assert expire_vouchers(now=soon).vouchers == 8  # customer 1's eats voucher is held whole
    response = redeem(checkout, voucher(1, "all"), amount_krw=1_000, order_total_krw=1_000)
    assert response.status_code == 409 and response.json()["code"] == "voucher_expired"
    voided = step(checkout, held["id"], "void").json()
    assert voided["voucher_balance_krw"] == 0  # lapsed to expired, not back on the voucher
    assert verify_ledger(campaign_id=shop.pk).ok


def test_a_customer_added_after_the_sweep_is_issued_nothing_expired(shop, load_registry):
    """A late addition after expiry is owed no voucher of an expired component: issued, it
    would hold value that no sweep to come adds up (the window is past)."""
    soon = timezone.now() + dt.timedelta(days=90, minutes=1)
    expire_vouchers(now=soon)
    load_registry(shop, {4: "active"})
    assert issue_chunk(campaign_id=shop.pk, lo=4, hi=5, run_id=None, chunk_id=None) == 0
    assert not Voucher.objects.filter(customer_id=4).exists()
    assert verify_ledger(campaign_id=shop.pk).ok


def test_a_sweep_posts_a_cutoff_a_crash_left_unposted(shop):
    _expire_all(shop)
    ExpirySweep.objects.create(cutoff=timezone.now())  # recorded; the run died before posting
    assert verify_ledger(campaign_id=shop.pk).ok  # an unposted sweep books nothing yet
    later = timezone.now() + dt.timedelta(seconds=1)
    result = expire_vouchers(now=later)
    assert result.vouchers == 9
    assert list(ExpirySweep.objects.order_by("cutoff").values_list("vouchers", flat=True)) == [
        9, 0]
    assert verify_ledger(campaign_id=shop.pk).ok


def test_expired_voucher_refuses_checkout(shop, checkout):
    _expire_all(shop)
    expire_vouchers()
    response = redeem(checkout, voucher(1, "all"), amount_krw=1_000, order_total_krw=1_000)
    assert response.status_code == 409 and response.json()["code"] == "voucher_expired"


def test_a_hold_on_an_expired_voucher_can_still_be_captured(shop, checkout):
    held = redeem(checkout, voucher(1, "all"), amount_krw=10_000, capture=False).json()
    _expire_all(shop)
    expire_vouchers()
    captured = step(checkout, held["id"], "capture").json()
    assert (captured["status"], captured["voucher_balance_krw"]) == ("captured", 0)
    assert campaign_summary(shop)["redeemed_krw"] == 10_000
    assert verify_ledger(campaign_id=shop.pk).ok


def test_a_hold_voided_after_expiry_lapses_to_expired(shop, checkout):
    held = redeem(checkout, voucher(1, "eats"), amount_krw=3_000, capture=False).json()
    _expire_all(shop)
    expire_vouchers()
    voided = step(checkout, held["id"], "void").json()
    assert (voided["status"], voided["voucher_balance_krw"]) == ("voided", 0)
    summary = campaign_summary(shop)
    assert (summary["authorized_krw"], summary["forfeited_krw"]) == (0, 2_000)
    assert _postings("expired", voucher_id=voucher(1, "eats").pk) == -3_000
    assert verify_ledger(campaign_id=shop.pk).ok


def test_timed_out_holds_are_voided(shop, checkout, settings):
    settings.AUTHORIZATION_TTL_SECONDS = 60
    stale = redeem(checkout, voucher(1, "all"), amount_krw=4_000, capture=False).json()
    captured = redeem(checkout, voucher(2, "all"), amount_krw=1_000, capture=False).json()
    step(checkout, captured["id"], "capture")
    settings.AUTHORIZATION_TTL_SECONDS = 3600
    fresh = redeem(checkout, voucher(2, "eats"), amount_krw=1_000, capture=False).json()

    later = timezone.now() + dt.timedelta(seconds=61)
    assert services.void_timed_out_holds(now=later, batch_size=1) == 1

    statuses = dict(Redemption.objects.values_list("id", "status"))
    assert {str(k): v for k, v in statuses.items()} == {
        stale["id"]: "voided", captured["id"]: "captured", fresh["id"]: "authorized"}
    assert voucher(1, "all").balance_krw == 50_000
    assert AuditEvent.objects.filter(action="redemption.void", target_id=stale["id"],
                                     actor=services.TIMEOUT_ACTOR).exists()
    assert void_timed_out_holds.apply().get() == 0
    assert verify_ledger(campaign_id=shop.pk).ok


def test_expire_vouchers_command_prints_the_count(shop, capsys):
    _expire_all(shop)
    call_command("expire_vouchers")
    assert capsys.readouterr().out.strip().splitlines()[-1] == "9"


def test_a_cached_answer_does_not_outlive_the_first_expiry_it_shows(shop, customer_client):
    """Expiry writes nothing that would fence an answer: the answer is cached only until
    its first live voucher expires, and the next check shows it expired."""
    Voucher.objects.filter(customer_id=1, category="all").update(
        expires_at=timezone.now() + dt.timedelta(seconds=2))
    client = customer_client(1)
    cache.delete(answer_key("shop", 1))
    first = client.get("/api/v1/campaigns/shop/eligibility")
    assert first.status_code == 200
    assert 0 < cache.ttl(answer_key("shop", 1)) <= 2
    time.sleep(2.1)
    statuses = {v["category"]: v["status"] for v in
                client.get("/api/v1/campaigns/shop/eligibility").json()["vouchers"]}
    assert statuses == {"all": "expired", "eats": "active", "travel": "active"}
