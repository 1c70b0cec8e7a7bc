"""Periodic jobs of this app, merged into the Celery beat schedule (plain data only).

Expiry runs just after midnight Asia/Seoul (the Celery app's time zone), when a voucher
valid "to" a date has passed it.
"""

from celery.schedules import crontab

BEAT_SCHEDULE: dict = {
    "redemption-void-timed-out-holds": {
        "task": "redemption.void_timed_out_holds",
        "schedule": 300.0,
    },
    "redemption-expire-vouchers": {
        "task": "redemption.expire_vouchers",
        "schedule": crontab(hour=0, minute=5),
    },
    "redemption-purge-idempotency-keys": {
        "task": "redemption.purge_idempotency_keys",
        "schedule": crontab(minute=17),
    },
}
