"""Closed-account claims: one-time-code challenges and the claims they (or a re-join) make.

A challenge keeps the phone only as its keyed hash (like the registry) and the code only
as an HMAC. Until its SMS is handed to the backend it also holds ``outbox``: the message
(number and body) encrypted with a key derived from ``SECRET_KEY``, cleared once sent or
expired, so no raw number or code is ever stored in the clear.
"""

import uuid

from django.db import models
from django.db.models import F, Q

MAX_CODE_ATTEMPTS = 5


class ClaimChallenge(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    campaign = models.ForeignKey("vouchers.Campaign", on_delete=models.PROTECT)
    # The claimant: the signed-in (new) account the vouchers would move to.
    customer_id = models.BigIntegerField()
    phone_hash = models.BinaryField(max_length=32)
    code_hash = models.BinaryField(max_length=32)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    outbox = models.BinaryField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(attempts__lte=MAX_CODE_ATTEMPTS),
                                   name="claim_challenge_attempts_max"),
            models.CheckConstraint(condition=Q(expires_at__gt=F("created_at")),
                                   name="claim_challenge_expires_after_creation"),
        ]
        indexes = [
            models.Index(fields=["created_at"], condition=Q(outbox__isnull=False),
                         name="claim_challenge_outbox"),
        ]

    def __str__(self) -> str:
        return f"challenge {self.pk}"


class ClaimVia(models.TextChoices):
    CODE = "code"
    REJOINED = "rejoined"


class Claim(models.Model):
    """A closed registry account's vouchers moved to a new account: once per account."""

    campaign = models.ForeignKey("vouchers.Campaign", on_delete=models.PROTECT)
    registry_customer_id = models.BigIntegerField()
    customer_id = models.BigIntegerField()
    via = models.CharField(max_length=8, choices=ClaimVia.choices)
    challenge = models.ForeignKey(ClaimChallenge, null=True, blank=True,
                                  on_delete=models.PROTECT)
    vouchers_moved = models.PositiveIntegerField()
    amount_krw = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=120)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "registry_customer_id"],
                                    name="claim_once_per_closed_account"),
            models.CheckConstraint(condition=Q(via__in=ClaimVia.values),
                                   name="claim_via_valid"),
            models.CheckConstraint(
                condition=Q(via="rejoined") | Q(challenge__isnull=False),
                name="claim_code_has_challenge",
            ),
        ]
        indexes = [models.Index(fields=["customer_id"], name="claim_by_claimant")]

    def __str__(self) -> str:
        return f"claim {self.campaign_id}:{self.registry_customer_id}->{self.customer_id}"


class RegistryImportLease(models.Model):
    """The one registry import a campaign may have running, held across its transactions.

    A row rather than a session's advisory lock, so that an import works through a pooler in
    transaction mode (each of its transactions may run on another server connection). Every
    transaction of the import renews the lease first (and so holds its row locked until it
    commits) and again last; another import takes it over only once it has gone unrenewed
    for ``importing.LEASE_SECONDS``: its holder died between two transactions.
    """

    campaign = models.OneToOneField("vouchers.Campaign", primary_key=True,
                                    on_delete=models.CASCADE)
    holder = models.UUIDField()
    renewed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"import lease {self.campaign_id}: {self.holder}"
