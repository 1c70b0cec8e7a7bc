"""Checking the ledger against itself and against the vouchers it accounts for.

Each check is one set-based query (a scan: meant for the nightly reconciliation, not for
a request path) and reports the ids of what does not match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from vouchers.models.expiry import swept

MAX_REPORTED = 100


@dataclass(frozen=True)
class Check:
    name: str
    expected: Any
    actual: Any
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.expected == self.actual and not self.mismatches


@dataclass(frozen=True)
class LedgerReport:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def _rows(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


_UNBALANCED = """
    SELECT transaction_id, sum(amount_krw)::bigint AS sum_krw
    FROM vouchers_ledgerposting
    WHERE (%(campaign_id)s::bigint IS NULL OR campaign_id = %(campaign_id)s)
    GROUP BY transaction_id HAVING sum(amount_krw) <> 0
    ORDER BY transaction_id LIMIT %(limit)s
"""

# Each voucher's own movements out of (positive) and back into its holding account.
_OWN_MOVES = """
        SELECT voucher_id, sum(amount_krw) AS moved FROM vouchers_ledgerposting
        WHERE voucher_id IS NOT NULL AND account IN ('liability', 'unclaimed')
          AND (%(campaign_id)s::bigint IS NULL OR campaign_id = %(campaign_id)s)
        GROUP BY voucher_id
"""

# Every voucher, expired ones included: expiry leaves a voucher's balance as it was and
# moves it in a summary (checked below).
_VOUCHER_BALANCES = f"""
    SELECT id AS voucher_id, expected, balance_krw AS actual FROM (
        SELECT v.id, v.balance_krw, (v.amount_krw - coalesce(p.moved, 0))::bigint AS expected
        FROM vouchers_voucher v
        LEFT JOIN ({_OWN_MOVES}) p ON p.voucher_id = v.id
        WHERE (%(campaign_id)s::bigint IS NULL OR v.campaign_id = %(campaign_id)s)
    ) checked
    WHERE balance_krw <> expected
    ORDER BY id LIMIT %(limit)s
"""  # noqa: S608  # nosec B608

# Appended to a WITH of ``expected`` and ``actual`` (campaign_id, category, amount, n): the
# categories whose won or voucher count differ.
_TOTALS_DIFFER = """
    SELECT coalesce(x.campaign_id, a.campaign_id) AS campaign_id,
           coalesce(x.category, a.category) AS category,
           coalesce(x.amount, 0) AS expected_krw, coalesce(a.amount, 0) AS actual_krw,
           coalesce(x.n, 0) AS expected_count, coalesce(a.n, 0) AS actual_count
    FROM expected x FULL JOIN actual a USING (campaign_id, category)
    WHERE coalesce(x.amount, 0) <> coalesce(a.amount, 0) OR coalesce(x.n, 0) <> coalesce(a.n, 0)
    LIMIT %(limit)s
"""

_SWEPT = swept()

# Expiry's summaries (postings of no voucher: the leftovers to ``expired``, the voucher
# count on the holding account's side) against what the swept vouchers hold (their
# balances, each proven by the check of voucher balances).
_EXPIRED = f"""
    WITH expected AS (
        SELECT campaign_id, category, sum(balance_krw)::bigint AS amount, count(*)::bigint AS n
        FROM vouchers_voucher
        WHERE {_SWEPT}
          AND (%(campaign_id)s::bigint IS NULL OR campaign_id = %(campaign_id)s)
        GROUP BY 1, 2
    ), actual AS (
        SELECT campaign_id, category,
               coalesce(-sum(amount_krw) FILTER (WHERE account = 'expired'), 0)::bigint AS amount,
               sum(voucher_count) FILTER (WHERE account IN ('liability', 'unclaimed'))::bigint
                   AS n
        FROM vouchers_ledgerposting
        WHERE voucher_id IS NULL AND account IN ('expired', 'liability', 'unclaimed')
          AND (%(campaign_id)s::bigint IS NULL OR campaign_id = %(campaign_id)s)
        GROUP BY 1, 2
    )
"""  # noqa: S608  # nosec B608

_ACCOUNT_TOTALS = """
    WITH posted AS (
        SELECT campaign_id, category, account,
               sum(amount_krw)::bigint AS balance, sum(voucher_count)::bigint AS n
        FROM vouchers_ledgerposting
        WHERE (%(campaign_id)s::bigint IS NULL OR campaign_id = %(campaign_id)s)
        GROUP BY 1, 2, 3
    ), kept AS (
        SELECT campaign_id, category, account,
               sum(balance_krw)::bigint AS balance, sum(voucher_count)::bigint AS n
        FROM vouchers_ledgerbalance
        WHERE (%(campaign_id)s::bigint IS NULL OR campaign_id = %(campaign_id)s)
        GROUP BY 1, 2, 3
    )
    SELECT coalesce(p.campaign_id, k.campaign_id) AS campaign_id,
           coalesce(p.category, k.category) AS category,
           coalesce(p.account, k.account) AS account,
           coalesce(p.balance, 0) AS expected, coalesce(k.balance, 0) AS actual
    FROM posted p FULL JOIN kept k USING (campaign_id, category, account)
    WHERE coalesce(p.balance, 0) <> coalesce(k.balance, 0) OR coalesce(p.n, 0) <> coalesce(k.n, 0)
    LIMIT %(limit)s
"""

# What the vouchers not swept yet hold, against the holding accounts' balances.
_HOLDINGS = f"""
    WITH held AS (
        SELECT campaign_id, category,
               CASE WHEN status = 'unclaimed' THEN 'unclaimed' ELSE 'liability' END AS account,
               sum(balance_krw)::bigint AS balance, sum(amount_krw)::bigint AS issued,
               count(*)::bigint AS n
        FROM vouchers_voucher
        WHERE NOT {_SWEPT}
          AND (%(campaign_id)s::bigint IS NULL OR campaign_id = %(campaign_id)s)
        GROUP BY 1, 2, 3
    ), booked AS (
        SELECT campaign_id, category, account, -sum(balance_krw)::bigint AS balance
        FROM vouchers_ledgerbalance
        WHERE account IN ('liability', 'unclaimed')
          AND (%(campaign_id)s::bigint IS NULL OR campaign_id = %(campaign_id)s)
        GROUP BY 1, 2, 3
    )
    SELECT coalesce(h.campaign_id, b.campaign_id) AS campaign_id,
           coalesce(h.category, b.category) AS category,
           coalesce(h.account, b.account) AS account,
           coalesce(h.balance, 0) AS expected, coalesce(b.balance, 0) AS actual
    FROM held h FULL JOIN booked b USING (campaign_id, category, account)
    WHERE coalesce(h.balance, 0) <> coalesce(b.balance, 0)
    LIMIT %(limit)s
"""  # noqa: S608  # nosec B608

_ISSUED = """
    WITH expected AS (
        SELECT campaign_id, category, sum(amount_krw)::bigint AS amount, count(*)::bigint AS n
        FROM vouchers_voucher
        WHERE (%(campaign_id)s::bigint IS NULL OR campaign_id = %(campaign_id)s)
        GROUP BY 1, 2
    ), actual AS (
        SELECT campaign_id, category, sum(amount_krw)::bigint AS amount,
               sum(voucher_count)::bigint AS n
        FROM vouchers_ledgerposting
        WHERE account = 'expense'
          AND (%(campaign_id)s::bigint IS NULL OR campaign_id = %(campaign_id)s)
        GROUP BY 1, 2
    )
"""

_CHECKS = [
    ("ledger_transactions_balance", _UNBALANCED),
    ("voucher_balances_match_postings", _VOUCHER_BALANCES),
    ("account_totals_match_postings", _ACCOUNT_TOTALS),
    ("holding_accounts_match_voucher_balances", _HOLDINGS),
    ("issued_matches_vouchers", _ISSUED + _TOTALS_DIFFER),
    ("expired_matches_summaries", _EXPIRED + _TOTALS_DIFFER),
]


def verify_ledger(*, campaign_id: int | None = None, limit: int = MAX_REPORTED) -> LedgerReport:
    """Runs every ledger check; ``expected``/``actual`` count the mismatches (0 is right)."""
    params = {"campaign_id": campaign_id, "limit": limit}
    checks = []
    for name, sql in _CHECKS:
        mismatches = _rows(sql, params)
        checks.append(Check(name=name, expected=0, actual=len(mismatches), mismatches=mismatches))
    return LedgerReport(checks=checks)
