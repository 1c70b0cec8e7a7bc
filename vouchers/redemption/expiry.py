"""Daily expiry: what is left on lapsed vouchers moves to ``expired``, in summaries.

A voucher expires by the clock (``vouchers.models.expiry``): its row is never rewritten
and its balance is frozen from its ``expires_at`` on. An expiry *sweep* books what the
lapsed vouchers still hold, in two short steps:

1. **Cutoff.** ``SWEEP_LOCK`` taken exclusively (it waits for the writers in flight, each
   holding it shared, and gives up after ``EXPIRY_LOCK_TIMEOUT_MS`` rather than stall
   checkouts queued behind it), then an ``ExpirySweep`` row with the cutoff. From its
   commit on, every writer reads the new cutoff and refuses the vouchers it passed.
2. **Posting.** One statement per recorded, unposted sweep, in cutoff order: the live
   vouchers with ``expires_at`` in ``(previous cutoff, cutoff]`` summed per (campaign,
   category, holding account: ``unclaimed`` for unclaimed vouchers, ``liability`` for
   active ones) and posted to ``expired`` as one ledger transaction per campaign, one
   summary move per group with the number of vouchers it covers; the sweep marked posted
   with its totals and an audit event, in the same transaction. A crash between the two
   steps leaves the sweep to the next run; a sweep posts once (``posted_at``).

At the programme's size that is an aggregate over the ~130 million vouchers lapsing on
one day and a few dozen postings, where an update of every voucher would write a new
version of each row and its five index entries (tens of GB, an hour). Reconciliation
still proves each voucher (``vouchers.ledger.verification``): a lapsed voucher keeps its
balance, which equals its issued amount less its own postings, and what the summaries
moved equals the balances of the swept vouchers.

Holds open on a lapsing voucher are not touched: the held amount is not on the voucher's
balance; the hold may still be captured until its ``authorized_until`` (the order was
accepted before expiry), and if it is voided instead, the amount goes to ``expired`` (see
``services``). A cached eligibility answer does not outlive the first expiry it shows
(``vouchers.eligibility.cache``), so no answer is fenced here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from voucher_service.audit import record_event
from voucher_service.integrity import lock_not_available
from vouchers.ledger.posting import literal, posted
from vouchers.models import Account, ExpirySweep, Reason
from vouchers.models.expiry import SWEEP_LOCK, SWEPT_THROUGH, live

ACTOR = "system:expiry"

_RECORD_CUTOFF = f"""
INSERT INTO vouchers_expirysweep (cutoff, created_at, vouchers, expired_krw)
SELECT %(cutoff)s, now(), 0, 0 WHERE %(cutoff)s > {SWEPT_THROUGH}
"""

_POST_SWEEP_SQL = """
WITH sweep AS (
    SELECT s.id, s.cutoff,
           (SELECT coalesce(max(p.cutoff), '-infinity') FROM vouchers_expirysweep p
            WHERE p.cutoff < s.cutoff) AS after
    FROM vouchers_expirysweep s
    WHERE s.id = %(sweep_id)s AND s.posted_at IS NULL
    FOR UPDATE
), due AS (
    SELECT v.campaign_id, v.category,
           CASE WHEN v.status = 'unclaimed' THEN {unclaimed} ELSE {liability} END AS held,
           sum(v.balance_krw)::bigint AS amount_krw, count(*)::int AS vouchers
    FROM sweep JOIN vouchers_voucher v
      ON v.expires_at > sweep.after AND v.expires_at <= sweep.cutoff
    WHERE {live}
    GROUP BY 1, 2, 3
), moves AS (
    SELECT campaign_id, {expiry} AS reason, NULL::bigint AS tx_voucher_id,
           NULL::uuid AS redemption_id, NULL::uuid AS run_id, NULL::bigint AS chunk_id,
           category, held AS debit, {expired} AS credit, amount_krw,
           NULL::bigint AS voucher_id, vouchers AS voucher_count
    FROM due
), {posted}, marked AS (
    UPDATE vouchers_expirysweep s
    SET posted_at = now(),
        vouchers = (SELECT coalesce(sum(vouchers), 0) FROM due),
        expired_krw = (SELECT coalesce(sum(amount_krw), 0) FROM due)
    FROM sweep WHERE s.id = sweep.id
    RETURNING s.cutoff, s.vouchers, s.expired_krw
)
SELECT cutoff, vouchers, expired_krw,
       ARRAY(SELECT DISTINCT campaign_id FROM due ORDER BY 1) FROM marked
"""
_POST_SWEEP = _POST_SWEEP_SQL.format(
    posted=posted("moves"), expiry=literal(Reason.EXPIRY), expired=literal(Account.EXPIRED),
    liability=literal(Account.LIABILITY), unclaimed=literal(Account.UNCLAIMED),
    live=live(alias="v."))


@dataclass(frozen=True)
class ExpiryResult:
    vouchers: int
    expired_krw: int


class SweepDeferred(Exception):
    """Writers held the sweep lock past ``EXPIRY_LOCK_TIMEOUT_MS`` on every attempt: no
    cutoff was recorded; the next run tries again."""


def _record_cutoff(cutoff: datetime) -> None:
    """Records the sweep through ``cutoff`` (nothing when a sweep already reached it),
    under ``SWEEP_LOCK`` taken exclusively, retried a few times when writers hold it."""
    for attempt in range(settings.EXPIRY_LOCK_ATTEMPTS):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = %s",
                               [f"{settings.EXPIRY_LOCK_TIMEOUT_MS}ms"])
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", SWEEP_LOCK)
                cursor.execute(_RECORD_CUTOFF, {"cutoff": cutoff})
            return
        except OperationalError as exc:
            if not lock_not_available(exc):
                raise
            time.sleep(0.1 * (attempt + 1))
    raise SweepDeferred(f"the sweep lock stayed held by writers; no cutoff at {cutoff}")


def _post(sweep_id: int) -> ExpiryResult:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_POST_SWEEP, {"sweep_id": sweep_id})
        row = cursor.fetchone()
        if row is None:  # posted meanwhile by another run
            return ExpiryResult(vouchers=0, expired_krw=0)
        cutoff, vouchers, expired_krw, campaign_ids = row
        record_event(actor=ACTOR, action="vouchers.expired", target_type="voucher_expiry",
                     target_id=cutoff.isoformat(timespec="seconds"),
                     payload={"vouchers": vouchers, "expired_krw": expired_krw,
                              "campaign_ids": campaign_ids})
    return ExpiryResult(vouchers=vouchers, expired_krw=expired_krw)


def expire_vouchers(*, now: datetime | None = None) -> ExpiryResult:
    """Sweeps through ``now`` (default: the present) and posts every sweep not posted
    yet; returns the vouchers and won it posted."""
    _record_cutoff(now or timezone.now())
    vouchers = expired_krw = 0
    for sweep_id in (ExpirySweep.objects.filter(posted_at__isnull=True)
                     .order_by("cutoff").values_list("pk", flat=True)):
        result = _post(sweep_id)
        vouchers += result.vouchers
        expired_krw += result.expired_krw
    return ExpiryResult(vouchers=vouchers, expired_krw=expired_krw)
