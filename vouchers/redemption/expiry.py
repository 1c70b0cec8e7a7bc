"""Daily expiry: what is left on vouchers past ``expires_at`` moves to ``expired``.

Set-based, in batches of ``EXPIRY_BATCH_SIZE`` vouchers, one short transaction per batch and
one statement per batch: it locks the due vouchers it can (``FOR UPDATE SKIP LOCKED``: a
voucher locked by a checkout in flight is left for the next batch or the next day), marks
them expired with a zero balance, and posts their leftovers from the holding account
(``unclaimed`` for unclaimed vouchers, ``liability`` for active ones) to ``expired``, in
one ledger transaction per campaign: one summary move per (category, holding account)
with the number of vouchers it covers, not a posting per voucher (at the programme's size
that is about 130 million vouchers on one day, ~40 GB of postings for vouchers nobody
touched). Reconciliation still proves each voucher: an expired voucher's balance is 0,
and what the summaries moved equals, per campaign and category, each expired voucher's
issued amount less its own postings (``vouchers.ledger.verification``). Expired vouchers
are no longer due, so a re-run, a concurrent run or a run after a crash expires nothing
twice.

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
from vouchers.ledger.posting import literal, posted
from vouchers.models import Account, Reason
from vouchers.models.changes import customers_changed

ACTOR = "system:expiry"

_EXPIRE_BATCH_SQL = """
WITH due AS (
    SELECT id, campaign_id, category, balance_krw, status
    FROM vouchers_voucher
    WHERE status IN ('active', 'unclaimed') AND expires_at <= %(now)s
    ORDER BY expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), expired AS (
    UPDATE vouchers_voucher v SET status = 'expired', balance_krw = 0
    FROM due WHERE v.id = due.id
    RETURNING due.campaign_id, v.customer_id, due.category, due.balance_krw,
              CASE WHEN due.status = 'unclaimed' THEN {unclaimed} ELSE {liability} END AS held
), moves AS (
    SELECT campaign_id, {expiry} AS reason, NULL::bigint AS tx_voucher_id,
           NULL::uuid AS redemption_id, NULL::uuid AS run_id, NULL::bigint AS chunk_id,
           category, held AS debit, {expired} AS credit, sum(balance_krw)::bigint AS amount_krw,
           NULL::bigint AS voucher_id, count(*)::int AS voucher_count
    FROM expired GROUP BY campaign_id, category, held
), {posted}
SELECT campaign_id, array_agg(customer_id), count(*), sum(balance_krw)::bigint
FROM expired GROUP BY campaign_id
"""
_EXPIRE_BATCH = _EXPIRE_BATCH_SQL.format(
    posted=posted("moves"), expiry=literal(Reason.EXPIRY), expired=literal(Account.EXPIRED),
    liability=literal(Account.LIABILITY), unclaimed=literal(Account.UNCLAIMED))


@dataclass(frozen=True)
class ExpiryResult:
    vouchers: int
    expired_krw: int


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
            for campaign_id, customers in by_campaign.items():
                customers_changed(campaign_id=campaign_id, customer_ids=customers)
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
