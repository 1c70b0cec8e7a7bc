"""The audit trail: append-only, hash-chained events of every administrative action."""

from django.db import models


class AuditEvent(models.Model):
    occurred_at = models.DateTimeField()
    actor = models.CharField(max_length=120)
    action = models.CharField(max_length=80)
    target_type = models.CharField(max_length=40)
    target_id = models.CharField(max_length=80)
    # Ids and amounts only: never a phone number, a name or an address.
    payload = models.JSONField(default=dict)
    # Which of the parallel chains the event links into (see voucher_service.audit).
    chain = models.SmallIntegerField(default=0)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        indexes = [
            models.Index(fields=["chain", "id"], name="auditevent_chain_id"),
            models.Index(fields=["action", "id"]),
            models.Index(fields=["actor", "id"]),
            models.Index(fields=["target_type", "target_id"]),
            models.Index(fields=["occurred_at"]),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.target_type}:{self.target_id}"


class IdempotencyKey(models.Model):
    """One ``Idempotency-Key`` of one caller, with the answer its first request got.

    The row is inserted in the transaction of the request's effect and gets its response
    in that same transaction, so a committed row always holds the response of a committed
    effect (see ``voucher_service.idempotency``).
    """

    # The caller's audit name (``principal:NAME``): keys of different callers never meet.
    owner = models.CharField(max_length=120)
    key = models.CharField(max_length=255)
    # SHA-256 over method, path and the canonical JSON body of the first request.
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True)
    # The JSON text of the response body, as first sent.
    response_body = models.TextField(blank=True, db_default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="idempotency_key_once"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_key_created")]

    def __str__(self) -> str:
        return f"{self.owner}:{self.key}"
