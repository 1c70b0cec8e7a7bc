"""Periodic jobs of the shared code, merged into the Celery beat schedule (plain data only).

``AUDIT_SEAL_INTERVAL_SECONDS`` (environment) is read here because the beat schedule is
built before Django's settings are loaded. A seal message not picked up within one interval
expires: the next one seals what it would have.
"""

import os

_SEAL_INTERVAL = float(os.environ.get("AUDIT_SEAL_INTERVAL_SECONDS", "2"))

BEAT_SCHEDULE: dict = {
    "audit-seal-events": {
        "task": "audit.seal_events",
        "schedule": _SEAL_INTERVAL,
        "options": {"expires": _SEAL_INTERVAL},
    },
}
