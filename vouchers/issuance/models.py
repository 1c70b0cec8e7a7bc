"""Issuance runs and their chunks, revocations, and the customer notification outboxes.

A run's progress lives in its chunk table (one row per customer-id range); the run row
holds only what does not change per chunk, so chunk workers never contend on it.
"""

import uuid

from django.db import models
from django.db.models import Q


class RunStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"


class ChunkStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class IssuanceRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    campaign = models.ForeignKey("vouchers.Campaign", on_delete=models.PROTECT,
                                 related_name="issuance_runs")
    status = models.CharField(max_length=16, choices=RunStatus.choices,
                              default=RunStatus.PENDING_APPROVAL)
    dry_run = models.BooleanField(default=False)
    max_customers = models.BigIntegerField(
        null=True, blank=True,
        help_text="A staged run: at most this many customers not yet issued, lowest customer "
                  "ids first. Null: every eligible customer.")
    created_by = models.CharField(max_length=120)
    approved_by = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Counted when the run is planned: the customers it takes, registry customers without
    # an exclusion in force still owed a voucher (all of them on a campaign's first run; of
    # a staged run, the stage's customers).
    eligible_customers = models.BigIntegerField(default=0)
    chunk_size = models.PositiveIntegerField()
    chunk_count = models.PositiveIntegerField(default=0)
    # Dry runs only: what a real run would issue now (the vouchers still owed).
    dry_run_vouchers = models.BigIntegerField(null=True, blank=True)
    dry_run_total_krw = models.BigIntegerField(null=True, blank=True)
    failed_chunk = models.ForeignKey("IssuanceChunk", null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    failure_detail = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=RunStatus.values),
                                   name="issuance_run_status_valid"),
            models.CheckConstraint(condition=Q(max_customers__gt=0),
                                   name="issuance_run_max_customers_positive"),
        ]
        indexes = [
            models.Index(fields=["campaign", "-created_at"], name="issuance_run_campaign"),
            models.Index(fields=["status"], condition=Q(status__in=["queued", "running"]),
                         name="issuance_run_active"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"


class IssuanceChunk(models.Model):
    """Registry customers with ``lo <= customer_id < hi``; ``customers`` counted at planning."""

    run = models.ForeignKey(IssuanceRun, on_delete=models.CASCADE, related_name="chunks")
    lo = models.BigIntegerField()
    hi = models.BigIntegerField()
    customers = models.IntegerField()
    status = models.CharField(max_length=8, choices=ChunkStatus.choices,
                              default=ChunkStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Set when a task message is sent for the chunk; a pending chunk with it set is in flight.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # The Celery task id holding the claim (kept across that task's retries).
    claimed_by = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    vouchers_issued = models.IntegerField(default=0)
    customers_done = models.IntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ChunkStatus.values),
                                   name="issuance_chunk_status_valid"),
            models.CheckConstraint(condition=Q(lo__lt=models.F("hi")),
                                   name="issuance_chunk_range"),
            models.UniqueConstraint(fields=["run", "lo"], name="issuance_chunk_once"),
        ]
        indexes = [
            models.Index(fields=["run", "status", "lo"], name="issuance_chunk_by_status"),
        ]

    def __str__(self) -> str:
        return f"chunk {self.pk} [{self.lo}, {self.hi})"


class Revocation(models.Model):
    """An account found invalid after launch: its unspent vouchers withdrawn, once."""

    campaign = models.ForeignKey("vouchers.Campaign", on_delete=models.PROTECT)
    customer_id = models.BigIntegerField()
    reason = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=120)
    vouchers_revoked = models.IntegerField()
    revoked_krw = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "customer_id"],
                                    name="revocation_once_per_customer"),
        ]

    def __str__(self) -> str:
        return f"revocation {self.campaign_id}:{self.customer_id}"


class NotificationKind(models.TextChoices):
    EXPIRY_REMINDER = "expiry_reminder"


class Notification(models.Model):
    """The per-customer outbox (expiry reminders): one row per customer and kind, ever.
    ``sent_at`` set before sending."""

    campaign = models.ForeignKey("vouchers.Campaign", on_delete=models.PROTECT)
    customer_id = models.BigIntegerField()
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "customer_id", "kind"],
                                    name="notification_once_per_kind"),
        ]
        indexes = [
            models.Index(fields=["id"], condition=Q(sent_at__isnull=True),
                         name="notification_unsent"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.customer_id}"


class IssuedNotice(models.Model):
    """The "vouchers issued" outbox: one row per issued chunk, not one per customer.

    It stands for the customers of ``[lo, hi)`` holding an active voucher that the chunk
    issued (ids ``first_voucher_id..last_voucher_id`` of run ``run_id``) as registry
    customers, and no voucher of the campaign issued before it. ``next_customer_id`` is the
    drain's cursor: customers below it have been handed over, and it is advanced and
    committed before they are, so each customer is told at most once.
    """

    campaign = models.ForeignKey("vouchers.Campaign", on_delete=models.PROTECT)
    # Plain ids, as on the vouchers and ledger transactions: chunks issued outside a run
    # (tools, tests) have neither.
    run_id = models.UUIDField(null=True, blank=True)
    chunk_id = models.BigIntegerField(null=True, blank=True)
    lo = models.BigIntegerField()
    hi = models.BigIntegerField()
    first_voucher_id = models.BigIntegerField()
    last_voucher_id = models.BigIntegerField()
    next_customer_id = models.BigIntegerField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(lo__lt=models.F("hi")),
                                   name="issued_notice_range"),
            models.CheckConstraint(
                condition=Q(next_customer_id__gte=models.F("lo"),
                            next_customer_id__lte=models.F("hi")),
                name="issued_notice_cursor_in_range"),
            models.CheckConstraint(condition=Q(first_voucher_id__lte=models.F("last_voucher_id")),
                                   name="issued_notice_voucher_span"),
            models.UniqueConstraint(fields=["chunk_id"], condition=Q(chunk_id__isnull=False),
                                    name="issued_notice_once_per_chunk"),
        ]
        indexes = [
            models.Index(fields=["id"], condition=Q(next_customer_id__lt=models.F("hi")),
                         name="issued_notice_open"),
        ]

    def __str__(self) -> str:
        return f"issued notice [{self.lo}, {self.hi})"
