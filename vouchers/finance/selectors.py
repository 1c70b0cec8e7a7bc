"""Finance reads: figures come from the ledger's maintained totals, never a voucher scan."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.db import connection
from django.db.models import CharField, F, Func, QuerySet, Sum
from django.utils import timezone

from vouchers.identifiers import public_voucher_id
from vouchers.models import Account, Campaign, LedgerBalance, LedgerDaily
from vouchers.redemption.models import Redemption

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


def redemptions(
    *,
    campaign: Campaign | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    status: str | None = None,
) -> QuerySet[Redemption]:
    """Redemptions in ``[start, end)`` by creation time, oldest first (pages do not shift
    as checkout adds new ones); served by the (campaign, created_at, id) index."""
    rows = Redemption.objects.select_related("campaign")
    if campaign is not None:
        rows = rows.filter(campaign=campaign)
    if start is not None:
        rows = rows.filter(created_at__gte=start)
    if end is not None:
        rows = rows.filter(created_at__lt=end)
    if status is not None:
        rows = rows.filter(status=status)
    return rows.order_by("created_at", "id")


EXPORT_COLUMNS = (
    "redemption_id", "campaign", "voucher_id", "customer_id", "order_id", "merchant_category",
    "status", "amount_krw", "forfeited_krw", "refunded_krw", "order_total_krw", "created_at",
    "updated_at",
)


# ISO 8601 in UTC, formatted by PostgreSQL.
_ISO_UTC = """to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


# The export's column types, in order, for psycopg's COPY row loader.
_EXPORT_TYPES = ("uuid", "varchar", "int8", "int8", "varchar", "varchar", "varchar", "int8",
                 "int8", "int8", "int8", "text", "text")


def export_rows(rows: QuerySet[Redemption]) -> Iterator[tuple]:
    """The CSV rows of ``rows`` in ``EXPORT_COLUMNS`` order, in flat memory whatever the
    range: the queryset's own SQL runs as ``COPY (...) TO STDOUT``, which PostgreSQL
    streams and psycopg parses in C a block at a time; Python adds only the public
    voucher id. Holds the connection until the last row is read."""
    values = rows.annotate(
        created_iso=Func(F("created_at"), template=_ISO_UTC, output_field=CharField()),
        updated_iso=Func(F("updated_at"), template=_ISO_UTC, output_field=CharField()),
    ).values_list(
        "id", "campaign__slug", "voucher_id", "customer_id", "order_id", "merchant_category",
        "status", "amount_krw", "forfeited_krw", "refunded_krw", "order_total_krw",
        "created_iso", "updated_iso",
    )
    sql, params = values.query.sql_with_params()
    # The statement is Django's own compilation of the queryset; values are parameters.
    with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY ({sql}) TO STDOUT", params) as copy:  # nosec B608
        copy.set_types(_EXPORT_TYPES)
        for row in copy.rows():
            yield (row[0], row[1], public_voucher_id(row[2]), *row[3:])
