"""The affected-customer registry, per campaign. Phones only as a keyed hash."""

from django.db import models
from django.db.models import Q


class AccountStatus(models.TextChoices):
    ACTIVE = "active"
    DORMANT = "dormant"
    CLOSED = "closed"


class RegistryEntry(models.Model):
    pk = models.CompositePrimaryKey("campaign_id", "customer_id")
    # Not indexed alone: the leading column of the primary key.
    campaign = models.ForeignKey("vouchers.Campaign", on_delete=models.PROTECT, db_index=False)
    customer_id = models.BigIntegerField()
    account_status = models.CharField(max_length=8, choices=AccountStatus.choices)
    account_closed_at = models.DateTimeField(null=True, blank=True)
    # HMAC-SHA256 of the normalised phone number, keyed by PHONE_HASH_KEY.
    phone_hash = models.BinaryField(max_length=32, null=True)
    imported_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(account_status__in=AccountStatus.values),
                name="registry_status_valid",
            ),
            models.CheckConstraint(condition=Q(customer_id__gt=0), name="registry_customer_pos"),
        ]
        indexes = [
            models.Index(
                fields=["campaign", "phone_hash"],
                condition=Q(account_status="closed"),
                name="registry_closed_phone",
            ),
        ]


class Exclusion(models.Model):
    """An operator's decision that a customer gets nothing; reversible (``lifted_at``)."""

    campaign = models.ForeignKey("vouchers.Campaign", on_delete=models.PROTECT)
    customer_id = models.BigIntegerField()
    reason = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=120)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.CharField(max_length=120, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "customer_id"],
                condition=Q(lifted_at__isnull=True),
                name="exclusion_one_in_force",
            ),
        ]
