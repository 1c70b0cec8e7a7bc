"""Periodic jobs of this app, merged into the Celery beat schedule (plain data only)."""

BEAT_SCHEDULE: dict = {
    # Claim code envelopes whose task message was lost (broker restart), and expired ones.
    "eligibility-sweep-claim-outbox": {
        "task": "eligibility.sweep_claim_outbox",
        "schedule": 60.0,
    },
    # Staging tables (raw phone numbers among them) of registry imports that died.
    "eligibility-drop-abandoned-imports": {
        "task": "eligibility.drop_abandoned_imports",
        "schedule": 600.0,
    },
}
