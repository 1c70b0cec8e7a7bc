"""The customer notification outboxes: filled set-based, drained in rate-limited batches.

"Vouchers issued": the chunk statement (``chunk.py``) queues one ``IssuedNotice`` per chunk,
in the chunk's transaction; the drain expands it, a batch at a time, into the customers who
hold an active voucher the chunk issued, in customer-id order behind a cursor. Expiry
reminders: one daily INSERT ... SELECT over the live-by-expiry voucher index, one
``Notification`` row per customer (unique per campaign, customer and kind).

Each customer is told at most once per kind: a drain advances the notice cursors and marks
its reminders sent, commits, and only then hands the messages over, so a crash loses a
message rather than sending it twice. Notices and reminder rows are taken ``FOR UPDATE SKIP
LOCKED``: concurrent drains never share a batch.

Messages name the amount and tell people to open the app themselves; they never carry a
link (a phishing wave followed the leak).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from vouchers.issuance.messaging import messenger
from vouchers.models import Campaign

_ENQUEUE_REMINDERS = """
INSERT INTO issuance_notification (campaign_id, customer_id, kind, created_at)
SELECT DISTINCT v.campaign_id, v.customer_id, 'expiry_reminder', now()
FROM vouchers_voucher v
WHERE v.status = 'active' AND v.balance_krw > 0
  AND v.expires_at > now() AND v.expires_at <= now() + make_interval(days => %(days)s)
ON CONFLICT (campaign_id, customer_id, kind) DO NOTHING
"""

_CLAIM_REMINDERS = """
UPDATE issuance_notification SET sent_at = now()
WHERE id IN (
    SELECT id FROM issuance_notification WHERE sent_at IS NULL AND kind = 'expiry_reminder'
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
RETURNING campaign_id, customer_id
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

_OPEN_NOTICE = """
SELECT id, campaign_id, run_id, hi, first_voucher_id, last_voucher_id, next_customer_id
FROM issuance_issuednotice WHERE next_customer_id < hi
ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
"""

# The notice's customers from its cursor on: still holding, as the registry customer (not
# moved by a closed account's claim), an active voucher the chunk issued, and no voucher of
# the campaign from before the chunk (told then, by an earlier run).
_NOTICE_CUSTOMERS = """
SELECT v.registry_customer_id
FROM vouchers_voucher v
WHERE v.campaign_id = %(campaign_id)s
  AND v.registry_customer_id >= %(cursor)s AND v.registry_customer_id < %(hi)s
  AND v.id BETWEEN %(first)s AND %(last)s
  AND v.issuance_run_id IS NOT DISTINCT FROM %(run_id)s::uuid
  AND v.status = 'active' AND v.customer_id = v.registry_customer_id
  AND NOT EXISTS (
      SELECT 1 FROM vouchers_voucher w
      WHERE w.campaign_id = v.campaign_id AND w.registry_customer_id = v.registry_customer_id
        AND w.id < %(first)s
  )
GROUP BY v.registry_customer_id
ORDER BY v.registry_customer_id
LIMIT %(limit)s
"""

_ADVANCE = "UPDATE issuance_issuednotice SET next_customer_id = %(cursor)s WHERE id = %(id)s"


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


def _claim_issued(cursor, limit: int) -> list[tuple[int, int]]:
    """Up to ``limit`` (campaign, customer) pairs from open notices, their cursors advanced
    past them (to ``hi`` once a notice has no more)."""
    taken: list[tuple[int, int]] = []
    while len(taken) < limit:
        cursor.execute(_OPEN_NOTICE)
        notice = cursor.fetchone()
        if notice is None:
            break
        notice_id, campaign_id, run_id, hi, first, last, start = notice
        want = limit - len(taken)
        cursor.execute(_NOTICE_CUSTOMERS, {"campaign_id": campaign_id, "cursor": start,
                                           "hi": hi, "first": first, "last": last,
                                           "run_id": run_id, "limit": want})
        customers = [row[0] for row in cursor.fetchall()]
        taken += [(campaign_id, customer) for customer in customers]
        cursor.execute(_ADVANCE, {"id": notice_id,
                                  "cursor": customers[-1] + 1 if len(customers) == want else hi})
    return taken


def _issued_bodies(issued: list[tuple[int, int]], campaigns: dict) -> list[tuple[int, str]]:
    return [(customer_id, issued_message(campaign_name=campaigns[campaign_id].name,
                                         amount_krw=campaigns[campaign_id].amount_krw))
            for campaign_id, customer_id in issued]


def _reminder_bodies(reminders: list[tuple[int, int]], campaigns: dict) -> list[tuple[int, str]]:
    if not reminders:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_UNSPENT, {"campaigns": [r[0] for r in reminders],
                                  "customers": [r[1] for r in reminders],
                                  "days": settings.ISSUANCE_EXPIRY_REMINDER_DAYS})
        unspent = {(c, cust): (bal, exp) for c, cust, bal, exp in cursor.fetchall()}
    bodies = []
    for campaign_id, customer_id in reminders:
        if (campaign_id, customer_id) in unspent:  # spent since queued: say nothing
            balance, expires = unspent[(campaign_id, customer_id)]
            bodies.append((customer_id, reminder_message(
                campaign_name=campaigns[campaign_id].name, balance_krw=balance,
                expires_on=timezone.localtime(expires).date().isoformat())))
    return bodies


def drain(*, limit: int | None = None) -> int:
    """Sends up to ``limit`` queued messages (reminders first, they are due by a date) at
    ``ISSUANCE_NOTIFY_RATE_PER_SECOND``."""
    limit = limit or settings.ISSUANCE_NOTIFY_BATCH_SIZE
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM_REMINDERS, {"limit": limit})
        reminders = cursor.fetchall()
        issued = _claim_issued(cursor, limit - len(reminders))
    if not reminders and not issued:
        return 0
    campaigns = {c.pk: c for c in Campaign.objects.filter(
        pk__in={c for c, _ in reminders + issued}).prefetch_related("components")}
    bodies = _reminder_bodies(reminders, campaigns) + _issued_bodies(issued, campaigns)
    backend = messenger()
    interval = 1.0 / settings.ISSUANCE_NOTIFY_RATE_PER_SECOND
    started = time.monotonic()
    for i, (customer_id, body) in enumerate(bodies):
        time.sleep(max(0.0, started + i * interval - time.monotonic()))
        backend.send(customer_id=customer_id, body=body)
    return len(bodies)
