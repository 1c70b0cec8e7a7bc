"""The customer notification outbox: filled set-based, drained in rate-limited batches.

Rows for ``issued`` are inserted by the chunk statement itself (``chunk.py``), in the
chunk's transaction. ``expiry_reminder`` rows come from one daily INSERT ... SELECT over
the live-by-expiry voucher index. The unique (campaign, customer, kind) makes every kind
reach a customer at most once: a drain marks its batch sent and commits *before* handing
the messages over, so a crash loses a message rather than sending it twice.

Messages name the amount and tell people to open the app themselves; they never carry a
link (a phishing wave followed the leak).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from vouchers.issuance.messaging import messenger
from vouchers.issuance.models import NotificationKind
from vouchers.models import Campaign

_ENQUEUE_REMINDERS = """
INSERT INTO issuance_notification (campaign_id, customer_id, kind, created_at)
SELECT DISTINCT v.campaign_id, v.customer_id, 'expiry_reminder', now()
FROM vouchers_voucher v
WHERE v.status = 'active' AND v.balance_krw > 0
  AND v.expires_at > now() AND v.expires_at <= now() + make_interval(days => %(days)s)
ON CONFLICT (campaign_id, customer_id, kind) DO NOTHING
"""

_CLAIM_BATCH = """
UPDATE issuance_notification SET sent_at = now()
WHERE id IN (
    SELECT id FROM issuance_notification WHERE sent_at IS NULL
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
RETURNING campaign_id, customer_id, kind
"""

_UNSPENT = """
SELECT campaign_id, customer_id, sum(balance_krw)::bigint, min(expires_at)
FROM vouchers_voucher
WHERE status = 'active' AND balance_krw > 0
  AND expires_at > now() AND expires_at <= now() + make_interval(days => %(days)s)
  AND (campaign_id, customer_id) IN (SELECT * FROM unnest(%(campaigns)s::bigint[],
                                                          %(customers)s::bigint[]))
GROUP BY 1, 2
"""


def enqueue_expiry_reminders() -> int:
    """Holders of unspent active vouchers expiring within the reminder window."""
    with connection.cursor() as cursor:
        cursor.execute(_ENQUEUE_REMINDERS, {"days": settings.ISSUANCE_EXPIRY_REMINDER_DAYS})
        return cursor.rowcount


def issued_message(*, campaign_name: str, amount_krw: int) -> str:
    return (
        f"[{campaign_name}] {amount_krw:,} won of compensation vouchers have been added to "
        "your account. To see and use them, open the shop's app yourself. We never send "
        "links: ignore any message about this compensation that contains one."
    )


def reminder_message(*, campaign_name: str, balance_krw: int, expires_on: str) -> str:
    return (
        f"[{campaign_name}] {balance_krw:,} won of your compensation vouchers expire on "
        f"{expires_on}. To use them, open the shop's app yourself. We never send links."
    )


def _bodies(batch: list[tuple[int, int, str]]) -> list[tuple[int, str]]:
    campaigns = {c.pk: c for c in Campaign.objects.filter(pk__in={b[0] for b in batch})
                 .prefetch_related("components")}
    reminders = [(c, cust) for c, cust, kind in batch if kind == NotificationKind.EXPIRY_REMINDER]
    unspent: dict[tuple[int, int], tuple[int, object]] = {}
    if reminders:
        with connection.cursor() as cursor:
            cursor.execute(_UNSPENT, {"campaigns": [r[0] for r in reminders],
                                      "customers": [r[1] for r in reminders],
                                      "days": settings.ISSUANCE_EXPIRY_REMINDER_DAYS})
            unspent = {(c, cust): (bal, exp) for c, cust, bal, exp in cursor.fetchall()}
    bodies = []
    for campaign_id, customer_id, kind in batch:
        campaign = campaigns[campaign_id]
        if kind == NotificationKind.ISSUED:
            bodies.append((customer_id, issued_message(
                campaign_name=campaign.name, amount_krw=campaign.amount_krw)))
        elif (campaign_id, customer_id) in unspent:  # spent since queued: say nothing
            balance, expires = unspent[(campaign_id, customer_id)]
            bodies.append((customer_id, reminder_message(
                campaign_name=campaign.name, balance_krw=balance,
                expires_on=timezone.localtime(expires).date().isoformat())))
    return bodies


def drain(*, limit: int | None = None) -> int:
    """Sends up to ``limit`` queued messages at ``ISSUANCE_NOTIFY_RATE_PER_SECOND``."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM_BATCH, {"limit": limit or settings.ISSUANCE_NOTIFY_BATCH_SIZE})
        batch = cursor.fetchall()
    if not batch:
        return 0
    backend = messenger()
    interval = 1.0 / settings.ISSUANCE_NOTIFY_RATE_PER_SECOND
    started = time.monotonic()
    bodies = _bodies(batch)
    for i, (customer_id, body) in enumerate(bodies):
        time.sleep(max(0.0, started + i * interval - time.monotonic()))
        backend.send(customer_id=customer_id, body=body)
    return len(bodies)
