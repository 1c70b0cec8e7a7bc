"""Finance reads: figures come from the ledger's maintained totals, never a voucher scan."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from vouchers.models import Account, Campaign, LedgerBalance, LedgerDaily

FIGURES = (
    "issued_krw", "issued_count", "redeemed_krw", "refunded_krw", "authorized_krw",
    "forfeited_krw", "expired_krw", "revoked_krw", "outstanding_krw",
)


def _figures(balances: dict[str, int], issued_count: int) -> dict[str, int]:
    """Signed account balances (debit positive) as the positive figures finance reads."""
    return {
        "issued_krw": balances.get(Account.EXPENSE, 0),
        "issued_count": issued_count,
        "redeemed_krw": -balances.get(Account.REDEEMED, 0),
        "refunded_krw": balances.get(Account.REFUNDED, 0),
        "authorized_krw": -balances.get(Account.AUTHORIZED, 0),
        "forfeited_krw": -balances.get(Account.FORFEITED, 0),
        "expired_krw": -balances.get(Account.EXPIRED, 0),
        "revoked_krw": -balances.get(Account.REVOKED, 0),
        "outstanding_krw": -(
            balances.get(Account.LIABILITY, 0) + balances.get(Account.UNCLAIMED, 0)
        ),
    }


def campaign_summary(campaign: Campaign) -> dict[str, Any]:
    """The summary of API.md; ``issued == redeemed - refunded + authorized + forfeited +
    expired + revoked + outstanding`` holds because every posting balances."""
    rows = (
        LedgerBalance.objects.filter(campaign_id=campaign.pk)
        .values("category", "account")
        .annotate(balance=Sum("balance_krw"), count=Sum("voucher_count"))
        .order_by()
    )
    by_category: dict[str, dict[str, int]] = defaultdict(dict)
    counts: dict[str, int] = defaultdict(int)
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        by_category[row["category"]][row["account"]] = row["balance"]
        totals[row["account"]] += row["balance"]
        if row["account"] == Account.EXPENSE:
            counts[row["category"]] += row["count"]
    return {
        "campaign": campaign.slug,
        **_figures(totals, sum(counts.values())),
        "by_category": [
            {"category": category, **_figures(balances, counts[category])}
            for category, balances in sorted(by_category.items())
        ],
        "as_of": timezone.now(),
    }


def daily_series(campaign: Campaign, *, days: int = 60) -> list[dict[str, Any]]:
    """Per day: won redeemed (net of refunds) and the outstanding liability at its end."""
    today = timezone.localdate()
    start = today - dt.timedelta(days=days - 1)
    holding = {Account.LIABILITY.value, Account.UNCLAIMED.value}
    rows = (
        LedgerDaily.objects.filter(campaign_id=campaign.pk)
        .values("day", "account").annotate(amount=Sum("amount_krw")).order_by("day")
    )
    outstanding = 0
    redeemed: dict[dt.date, int] = defaultdict(int)
    closing: dict[dt.date, int] = {}
    for row in rows:
        if row["account"] in holding:
            outstanding -= row["amount"]
        elif row["account"] in (Account.REDEEMED, Account.REFUNDED):
            redeemed[row["day"]] -= row["amount"]
        closing[row["day"]] = outstanding
    series = []
    running = 0
    for day in sorted(closing):
        if day < start:
            running = closing[day]
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        running = closing.get(day, running)
        series.append({"day": day, "redeemed_krw": redeemed.get(day, 0),
                       "outstanding_krw": running})
    return series


def today_figures(campaign: Campaign) -> dict[str, int]:
    """Today's movement (Asia/Seoul day) in the same terms as the summary."""
    rows = (
        LedgerDaily.objects.filter(campaign_id=campaign.pk, day=timezone.localdate())
        .values("account").annotate(amount=Sum("amount_krw")).order_by()
    )
    return _figures({row["account"]: row["amount"] for row in rows}, issued_count=0)
