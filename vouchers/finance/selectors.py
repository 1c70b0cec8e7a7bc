"""Finance reads: figures come from the ledger's maintained totals, never a voucher scan."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import CharField, Expression, F, Func, QuerySet, Sum
from django.utils import timezone

from voucher_service.spreadsheets import SpreadsheetText
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


# ISO 8601 in UTC, formatted by PostgreSQL.
_ISO_UTC = """to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


def _iso_utc(field: str) -> Func:
    return Func(F(field), template=_ISO_UTC, output_field=CharField())


@dataclass(frozen=True)
class ExportColumn:
    """One column of the redemption export: its header, what the queryset reads for it (a
    field path or an expression), the PostgreSQL type psycopg's COPY loader parses it as,
    and what Python makes of the loaded value, if anything. Text columns are written as a
    spreadsheet must read them (``SpreadsheetText``)."""

    header: str
    source: str | Expression
    pg_type: str
    convert: Callable[[Any], Any] | None = None

    def expression(self) -> Expression:
        value = F(self.source) if isinstance(self.source, str) else self.source
        return SpreadsheetText(value) if self.pg_type in ("varchar", "text") else value


EXPORT = (
    ExportColumn("redemption_id", "id", "uuid"),
    ExportColumn("campaign", "campaign__slug", "varchar"),
    ExportColumn("voucher_id", "voucher_id", "int8", public_voucher_id),
    ExportColumn("customer_id", "customer_id", "int8"),
    ExportColumn("order_id", "order_id", "varchar"),
    ExportColumn("merchant_category", "merchant_category", "varchar"),
    ExportColumn("status", "status", "varchar"),
    ExportColumn("amount_krw", "amount_krw", "int8"),
    ExportColumn("forfeited_krw", "forfeited_krw", "int8"),
    ExportColumn("refunded_krw", "refunded_krw", "int8"),
    ExportColumn("order_total_krw", "order_total_krw", "int8"),
    ExportColumn("created_at", _iso_utc("created_at"), "text"),
    ExportColumn("updated_at", _iso_utc("updated_at"), "text"),
)
EXPORT_COLUMNS = tuple(column.header for column in EXPORT)
_CONVERTED = [(i, column.convert) for i, column in enumerate(EXPORT) if column.convert]


def export_rows(rows: QuerySet[Redemption]) -> Iterator[Sequence]:
    """The CSV rows of ``rows`` in ``EXPORT`` order, in flat memory whatever the range: the
    queryset's own SQL runs as ``COPY (...) TO STDOUT``, which PostgreSQL streams and
    psycopg parses in C a block at a time; Python only converts the columns that say so
    (the public voucher id). Holds the connection until the last row is read."""
    names = [f"export_{i}" for i in range(len(EXPORT))]
    values = rows.annotate(**{
        name: column.expression() for name, column in zip(names, EXPORT, strict=True)
    }).values_list(*names)
    sql, params = values.query.sql_with_params()
    # The statement is Django's own compilation of the queryset; values are parameters.
    with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY ({sql}) TO STDOUT", params) as copy:  # nosec B608
        copy.set_types([column.pg_type for column in EXPORT])
        for row in copy.rows():
            row = list(row)
            for i, convert in _CONVERTED:
                row[i] = convert(row[i])
            yield row
