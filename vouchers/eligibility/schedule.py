"""Periodic jobs of this app, merged into the Celery beat schedule (plain data only)."""

BEAT_SCHEDULE: dict = {}
