"""Periodic jobs of the shared code, merged into the Celery beat schedule (plain data only).

``AUDIT_SEAL_INTERVAL_SECONDS`` (environment) is read here because the beat schedule is
built before Django's settings are loaded. Seal messages that queued up while the workers
were away each cost a query at most: the first seals everything, the rest find nothing.
(They carry no ``expires``: with it, a worker losing its broker connection mid-task died of
kombu's restore of unacknowledged messages in 2 runs of 10 of
``tests/hardening/test_faults.py::test_redis_lost_mid_run_then_back``; 0 of 15 without.)
"""

import os

_SEAL_INTERVAL = float(os.environ.get("AUDIT_SEAL_INTERVAL_SECONDS", "2"))

BEAT_SCHEDULE: dict = {
    "audit-seal-events": {
        "task": "audit.seal_events",
        "schedule": _SEAL_INTERVAL,
    },
}
