"""Periodic jobs of this app, merged into the Celery beat schedule (plain data only)."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict = {
    "finance-nightly-reconciliation": {
        "task": "finance.nightly_reconciliation",
        "schedule": crontab(hour=3, minute=30),
    },
}
