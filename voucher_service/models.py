"""The audit trail: append-only, hash-chained events of every administrative action."""

from django.db import models
from django.db.models import F, Q


class AuditEvent(models.Model):
    """One event; appended unsealed (no ``prev_hash``, ``hash`` nor ``seal``), then sealed
    once by the sealer (see ``voucher_service.audit``). Events linked before the sealer
    existed have a hash and no ``seal``."""

    occurred_at = models.DateTimeField()
    actor = models.CharField(max_length=120)
    action = models.CharField(max_length=80)
    target_type = models.CharField(max_length=40)
    target_id = models.CharField(max_length=80)
    # Ids and amounts only: never a phone number, a name or an address.
    payload = models.JSONField(default=dict)
    # Which of the parallel chains the event links into (see voucher_service.audit).
    chain = models.SmallIntegerField(default=0)
    # NULL until sealed (not ''): "not linked yet", which the partial indexes key on.
    prev_hash = models.CharField(max_length=64, null=True)  # noqa: DJ001
    hash = models.CharField(max_length=64, null=True)  # noqa: DJ001
    # Its position in its chain, from 1, set when sealed.
    seal = models.BigIntegerField(null=True)

    class Meta:
        indexes = [
            # A chain in its order: what the verifier walks and the sealer's head lookup.
            models.Index(F("chain"), F("seal").asc(nulls_first=True), F("id"),
                         name="auditevent_chain_order", condition=Q(hash__isnull=False)),
            # What the sealer has still to seal: the only index an append writes besides the
            # primary key.
            models.Index(fields=["id"], name="auditevent_unsealed", condition=Q(hash__isnull=True)),
            # The audit API's filters, over sealed events (what it lists): written once, as
            # the sealer seals.
            *(models.Index(fields=fields, name=name, condition=Q(hash__isnull=False))
              for name, fields in (("auditevent_action", ["action", "id"]),
                                   ("auditevent_actor", ["actor", "id"]),
                                   ("auditevent_target", ["target_type", "target_id"]),
                                   ("auditevent_occurred", ["occurred_at"]))),
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
