"""Periodic jobs of this app, merged into the Celery beat schedule (plain data only).

``ISSUANCE_TICK_SECONDS`` (environment) shortens the recovery tick in tests; it is read
here because the beat schedule is built before Django's settings are loaded.
"""

import os

from celery.schedules import crontab

BEAT_SCHEDULE: dict = {
    "issuance-tick": {
        "task": "issuance.tick",
        "schedule": float(os.environ.get("ISSUANCE_TICK_SECONDS", "15")),
    },
    "issuance-drain-notifications": {
        "task": "issuance.drain_notifications",
        "schedule": 60.0,
    },
    "issuance-expiry-reminders": {
        "task": "issuance.enqueue_expiry_reminders",
        "schedule": crontab(hour=9, minute=0),
    },
}
