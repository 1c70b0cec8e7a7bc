"""Appeals: a customer missing from a campaign's registry asks to be added; operations
accept (the customer becomes a registry row, a late addition) or reject with a reason the
customer reads.

The rules live in the database: one open appeal per (campaign, customer) is a partial
unique index, so two filings at once cannot both get through; a reason is 1 to 2,000
characters; a decided appeal carries its decision (who, when, and the account status of
an acceptance or the reason of a rejection), an open one none of it.
"""

import uuid

from django.db import models
from django.db.models import Q

from vouchers.models import AccountStatus

MAX_REASON = 2000
ONE_OPEN_PER_CUSTOMER = "appeal_one_open_per_customer"


class AppealStatus(models.TextChoices):
    OPEN = "open"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


# What each status carries of a decision.
_OPEN = Q(status=AppealStatus.OPEN, decided_at__isnull=True, decided_by="", account_status="",
          decision_reason="")
_ACCEPTED = Q(status=AppealStatus.ACCEPTED, account_status__in=AccountStatus.values,
              decision_reason="")
_REJECTED = Q(status=AppealStatus.REJECTED, account_status="") & ~Q(decision_reason="")
_DECIDED = Q(decided_at__isnull=False) & ~Q(decided_by="")


class Appeal(models.Model):
    # Random: an id in a URL tells nothing about how many appeals there are.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Not indexed alone: the leading column of the queue index.
    campaign = models.ForeignKey("vouchers.Campaign", on_delete=models.PROTECT,
                                 related_name="appeals", db_index=False)
    customer_id = models.BigIntegerField()
    # The customer's own words: shown to them and to staff, never logged or audited.
    reason = models.CharField(max_length=MAX_REASON)
    status = models.CharField(max_length=8, choices=AppealStatus.choices,
                              default=AppealStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=120, blank=True)
    # Acceptance: the registry row's account status. Rejection: the reason the customer
    # reads. An operator's note on either is for staff only.
    account_status = models.CharField(max_length=8, choices=AccountStatus.choices, blank=True)
    decision_reason = models.CharField(max_length=MAX_REASON, blank=True)
    note = models.CharField(max_length=MAX_REASON, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "customer_id"],
                                    condition=Q(status=AppealStatus.OPEN),
                                    name=ONE_OPEN_PER_CUSTOMER),
            models.CheckConstraint(condition=Q(customer_id__gt=0),
                                   name="appeal_customer_pos"),
            models.CheckConstraint(condition=~Q(reason=""),
                                   name="appeal_reason_not_empty"),
            # Also holds the status to the three values.
            models.CheckConstraint(condition=_OPEN | ((_ACCEPTED | _REJECTED) & _DECIDED),
                                   name="appeal_decision_matches_status"),
        ]
        indexes = [
            # The operations queue, by campaign or across campaigns, oldest first.
            models.Index(fields=["campaign", "status", "created_at"], name="appeal_queue"),
            models.Index(fields=["status", "created_at"], name="appeal_queue_all"),
            # A customer's own appeals (and support's lookup of one customer).
            models.Index(fields=["customer_id", "created_at"], name="appeal_by_customer"),
        ]

    def __str__(self) -> str:
        return f"appeal {self.pk} ({self.status})"
