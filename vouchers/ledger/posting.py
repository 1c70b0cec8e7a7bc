"""Writing ledger transactions: one statement inserts the transaction and its postings.

Call inside the database transaction of the business change being recorded. The database
refuses an unbalanced insert; the check here only gives a clearer error sooner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from django.db import connection

from vouchers.models import Account, Reason


class UnbalancedTransaction(ValueError):
    pass


@dataclass(frozen=True)
class Posting:
    account: Account
    amount_krw: int
    category: str
    voucher_id: int | None = None
    voucher_count: int = 0


def move(
    *,
    debit: Account,
    credit: Account,
    amount_krw: int,
    category: str,
    voucher_id: int | None = None,
) -> tuple[Posting, Posting]:
    """The pair of postings that moves ``amount_krw`` from ``credit`` to ``debit``."""
    return (
        Posting(debit, amount_krw, category, voucher_id),
        Posting(credit, -amount_krw, category, voucher_id),
    )


_ROW = "(%s::bigint, %s::text, %s::text, %s::bigint, %s::bigint, %s::int)"


def post_transaction(
    *,
    campaign_id: int,
    reason: Reason,
    postings: Sequence[Posting],
    voucher_id: int | None = None,
    redemption_id: UUID | None = None,
    run_id: UUID | None = None,
) -> int:
    """Records one balanced ledger transaction and returns its id."""
    postings = [p for p in postings if p.amount_krw != 0]
    if not postings:
        raise UnbalancedTransaction("a ledger transaction needs at least one non-zero posting")
    total = sum(p.amount_krw for p in postings)
    if total != 0:
        raise UnbalancedTransaction(f"postings sum to {total}, not zero")
    params: list[object] = [campaign_id, reason.value, voucher_id, redemption_id, run_id]
    for p in postings:
        params += [campaign_id, p.category, p.account.value, p.voucher_id, p.amount_krw,
                   p.voucher_count]
    # Only placeholders are interpolated into the statement.
    values = ", ".join([_ROW] * len(postings))
    sql = f"""
        WITH tx AS (
            INSERT INTO vouchers_ledgertransaction
                (campaign_id, reason, created_at, voucher_id, redemption_id, run_id)
            VALUES (%s, %s, now(), %s, %s, %s)
            RETURNING id
        )
        INSERT INTO vouchers_ledgerposting
            (transaction_id, campaign_id, category, account, voucher_id, amount_krw, voucher_count)
        SELECT tx.id, v.* FROM tx, (VALUES {values}) AS v
        RETURNING transaction_id
    """  # noqa: S608  # nosec B608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]
