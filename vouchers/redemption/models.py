"""Redemptions: what checkout spent of a voucher, and each step of it as an event.

Invariant 4 (never updated or deleted) is kept this way:

* ``RedemptionEvent`` is the history: one row per authorize, capture, void and refund,
  append-only (a trigger refuses UPDATE and DELETE, as on the ledger).
* ``Redemption`` holds the facts of the checkout (voucher, order, amounts), which a trigger
  makes immutable, and the current state cached from the events (``status``,
  ``refunded_krw``), which the same trigger lets move only forward: authorized to captured
  or voided, captured to (partially) refunded, refunded_krw only up. DELETE is refused.
  The cache lets finance filter and page millions of redemptions by status without
  replaying events; CHECK constraints tie it to the amounts (refunds never exceed what
  was captured).
"""

import uuid

from django.db import models
from django.db.models import F, Q


class RedemptionStatus(models.TextChoices):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


class Redemption(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed with created_at below (finance reads by campaign and time).
    campaign = models.ForeignKey("vouchers.Campaign", on_delete=models.PROTECT, db_index=False)
    voucher = models.ForeignKey("vouchers.Voucher", on_delete=models.PROTECT)
    customer_id = models.BigIntegerField()
    order_id = models.CharField(max_length=100)
    # What the order uses of the voucher (held, then captured).
    amount_krw = models.BigIntegerField()
    # Single-use only: the rest of the balance, which the order does not use.
    forfeited_krw = models.BigIntegerField(default=0)
    order_total_krw = models.BigIntegerField()
    merchant_category = models.SlugField(max_length=32, db_index=False)
    status = models.CharField(max_length=18, choices=RedemptionStatus.choices)
    refunded_krw = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # Holds only: after this the hold is voided (and can no longer be captured).
    authorized_until = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=120)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_krw__gt=0),
                                   name="redemption_amount_positive"),
            models.CheckConstraint(condition=Q(forfeited_krw__gte=0),
                                   name="redemption_forfeit_nonneg"),
            models.CheckConstraint(condition=Q(order_total_krw__gte=F("amount_krw")),
                                   name="redemption_within_order_total"),
            models.CheckConstraint(condition=Q(status__in=RedemptionStatus.values),
                                   name="redemption_status_valid"),
            # Refunds never exceed the captured amount, and the status says how much was.
            models.CheckConstraint(
                condition=(Q(status__in=["authorized", "captured", "voided"], refunded_krw=0)
                           | Q(status="partially_refunded", refunded_krw__gt=0,
                               refunded_krw__lt=F("amount_krw"))
                           | Q(status="refunded", refunded_krw=F("amount_krw"))),
                name="redemption_refunds_within_captured",
            ),
        ]
        indexes = [
            # Finance lists and exports: by campaign and time, cursor-paged.
            models.Index(fields=["campaign", "created_at", "id"], name="redemption_by_campaign"),
            # The timeout task: holds past their time.
            models.Index(fields=["authorized_until"], condition=Q(status="authorized"),
                         name="redemption_open_holds"),
        ]

    def __str__(self) -> str:
        return f"redemption {self.pk} ({self.status})"


class EventKind(models.TextChoices):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


class RedemptionEvent(models.Model):
    """One step of a redemption, with the won it moved; never changed once written."""

    redemption = models.ForeignKey(Redemption, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=10, choices=EventKind.choices)
    amount_krw = models.BigIntegerField()
    # What went back to the voucher's balance (a void, a refund, a forfeit reversed).
    restored_krw = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()
    actor = models.CharField(max_length=120)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=EventKind.values),
                                   name="redemption_event_kind_valid"),
            models.CheckConstraint(condition=Q(amount_krw__gt=0),
                                   name="redemption_event_amount_positive"),
            models.CheckConstraint(condition=Q(restored_krw__gte=0),
                                   name="redemption_event_restored_nonneg"),
            # Authorized, captured and voided once each; refunds may come in parts.
            models.UniqueConstraint(fields=["redemption", "kind"], condition=~Q(kind="refund"),
                                    name="redemption_event_step_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.redemption_id}"
