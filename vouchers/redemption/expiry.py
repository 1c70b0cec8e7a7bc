"""Daily expiry: what is left on vouchers past ``expires_at`` moves to ``expired``.

Set-based, in batches of ``EXPIRY_BATCH_SIZE`` vouchers, one short transaction per batch and
one statement per batch: it locks the due vouchers it can (``FOR UPDATE SKIP LOCKED``: a
voucher locked by a checkout in flight is left for the next batch or the next day), marks
them expired with a zero balance, and posts each one's leftover from its holding account
(``unclaimed`` for unclaimed vouchers, ``liability`` for active ones) to ``expired``, in
one ledger transaction per campaign. Expired vouchers are no longer due, so a re-run, a
concurrent run or a run after a crash expires nothing twice.

Exhausted vouchers keep their status (nothing is left on them). Holds open on an expiring
voucher are not touched: the held amount is not on the voucher's balance; the hold may
still be captured until its ``authorized_until`` (the order was accepted before expiry),
and if it is voided instead, the amount goes to ``expired`` (see ``services``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from voucher_service.audit import record_event
from vouchers.eligibility.cache import invalidate_eligibility

ACTOR = "system:expiry"

_EXPIRE_BATCH = """
WITH due AS (
    SELECT id, campaign_id, category, balance_krw, status
    FROM vouchers_voucher
    WHERE status IN ('active', 'unclaimed') AND expires_at <= %(now)s
    ORDER BY expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
expired AS (
    UPDATE vouchers_voucher v SET status = 'expired', balance_krw = 0
    FROM due WHERE v.id = due.id
    RETURNING due.id, due.campaign_id, v.customer_id, due.category, due.balance_krw,
              CASE WHEN due.status = 'unclaimed' THEN 'unclaimed' ELSE 'liability' END AS held
),
tx AS (
    INSERT INTO vouchers_ledgertransaction (campaign_id, reason, created_at)
    SELECT DISTINCT campaign_id, 'expiry', now() FROM expired WHERE balance_krw > 0
    RETURNING id, campaign_id
),
posted AS (
    INSERT INTO vouchers_ledgerposting
        (transaction_id, campaign_id, category, account, voucher_id, amount_krw, voucher_count)
    SELECT tx.id, e.campaign_id, e.category, p.account, e.id, p.amount, 0
    FROM expired e
    JOIN tx ON tx.campaign_id = e.campaign_id,
    LATERAL (VALUES (e.held, e.balance_krw), ('expired', -e.balance_krw)) AS p(account, amount)
    WHERE e.balance_krw > 0
    RETURNING 1
)
-- posted runs although nothing reads it (data-modifying WITH parts always run to the end).
SELECT campaign_id, array_agg(customer_id), count(*), sum(balance_krw)::bigint
FROM expired GROUP BY campaign_id
"""


@dataclass(frozen=True)
class ExpiryResult:
    vouchers: int
    expired_krw: int


def _fence_eligibility(customers_by_campaign: dict[int, list[int]]) -> None:
    """The holders' cached eligibility answers show these vouchers as still active."""
    for campaign_id, customers in customers_by_campaign.items():
        invalidate_eligibility(campaign_id, customers)


def _expire_batch(now: datetime, limit: int) -> ExpiryResult:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_EXPIRE_BATCH, {"now": now, "limit": limit})
        rows = cursor.fetchall()
        by_campaign = {campaign_id: customers for campaign_id, customers, *_ in rows}
        vouchers = sum(row[2] for row in rows)
        expired_krw = sum(row[3] for row in rows)
        if vouchers:
            record_event(actor=ACTOR, action="vouchers.expired", target_type="voucher_expiry",
                         target_id=now.isoformat(timespec="seconds"),
                         payload={"vouchers": vouchers, "expired_krw": expired_krw,
                                  "campaign_ids": sorted(by_campaign)})
            transaction.on_commit(lambda: _fence_eligibility(by_campaign), robust=True)
    return ExpiryResult(vouchers=vouchers, expired_krw=expired_krw)


def expire_vouchers(*, now: datetime | None = None, batch_size: int | None = None
                    ) -> ExpiryResult:
    """Expires every voucher due at ``now``, batch by batch; returns the totals."""
    now = now or timezone.now()
    limit = batch_size or settings.EXPIRY_BATCH_SIZE
    vouchers = expired_krw = 0
    while True:
        batch = _expire_batch(now, limit)
        vouchers += batch.vouchers
        expired_krw += batch.expired_krw
        if batch.vouchers < limit:
            return ExpiryResult(vouchers=vouchers, expired_krw=expired_krw)
