"""Vouchers: one per (campaign, registry customer, component); balance cached from the ledger."""

from django.contrib.postgres.indexes import BrinIndex
from django.db import connections, models
from django.db.models import F, Q
from django.utils import timezone

from vouchers.models.changes import customers_changed


class VoucherStatus(models.TextChoices):
    ACTIVE = "active"
    UNCLAIMED = "unclaimed"
    EXHAUSTED = "exhausted"
    EXPIRED = "expired"
    REVOKED = "revoked"


# A voucher with one of these statuses still holds its balance for its customer, until it
# expires (``vouchers.models.expiry``: expiry never rewrites the status).
LIVE_STATUSES = (VoucherStatus.ACTIVE, VoucherStatus.UNCLAIMED)


def in_current_status(status: str) -> Q:
    """The vouchers whose ``current_status`` is ``status`` now."""
    now = timezone.now()
    if status == VoucherStatus.EXPIRED:
        return Q(status=status) | Q(status__in=LIVE_STATUSES, expires_at__lte=now)
    if status in LIVE_STATUSES:
        return Q(status=status, expires_at__gt=now)
    return Q(status=status)


class VoucherQuerySet(models.QuerySet):
    def update(self, **kwargs):
        """Also records the holders whose answers change: the vouchers' holders before, their
        registry customers, and the new holder (``customer_id=``) if any. Inside a
        transaction they are read under a row lock, so no voucher changes hands between
        the read and the update."""
        rows = self.select_for_update() if connections[self.db].in_atomic_block else self
        holders = list(rows.order_by("pk")
                       .values_list("campaign_id", "customer_id", "registry_customer_id"))
        updated = super().update(**kwargs)
        by_campaign: dict[int, set[int]] = {}
        for campaign_id, *customers in holders:
            by_campaign.setdefault(campaign_id, set()).update(customers)
            if "customer_id" in kwargs:
                by_campaign[campaign_id].add(kwargs["customer_id"])
        for campaign_id, customer_ids in by_campaign.items():
            customers_changed(campaign_id=campaign_id, customer_ids=customer_ids)
        return updated


class Voucher(models.Model):
    # Both references are checked per statement, not per row, by the database
    # (migration 0010): a row's two foreign-key lookups were half the cost of inserting it.
    # Not indexed alone: the campaign leads the one-per-customer-component constraint.
    campaign = models.ForeignKey("vouchers.Campaign", on_delete=models.PROTECT, db_index=False,
                                 db_constraint=False)
    component = models.ForeignKey("vouchers.Component", on_delete=models.PROTECT,
                                  db_index=False, db_constraint=False)
    # The registry customer the voucher was issued for; never changes.
    registry_customer_id = models.BigIntegerField()
    # The holder: the registry customer, or the new account that claimed a closed one's.
    customer_id = models.BigIntegerField(db_index=True)
    category = models.SlugField(max_length=32, db_index=False)
    amount_krw = models.BigIntegerField()
    # A cache of amount_krw minus the voucher's ledger postings (verify_ledger checks it).
    balance_krw = models.BigIntegerField()
    single_use = models.BooleanField()
    min_order_krw = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=VoucherStatus.choices)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # Copied from its component at issue; NULL: usable from issue.
    valid_from = models.DateTimeField(null=True, blank=True)
    issuance_run_id = models.UUIDField(null=True, blank=True)

    objects = VoucherQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "registry_customer_id", "component"],
                name="voucher_one_per_customer_component",
            ),
            models.CheckConstraint(
                condition=Q(balance_krw__gte=0) & Q(balance_krw__lte=F("amount_krw")),
                name="voucher_balance_within_amount",
            ),
            models.CheckConstraint(condition=Q(amount_krw__gt=0), name="voucher_amount_positive"),
            models.CheckConstraint(
                condition=Q(status__in=VoucherStatus.values), name="voucher_status_valid"
            ),
        ]
        indexes = [
            # The sweeps and the expiry reminders find live vouchers by expiry window. A
            # block-range (BRIN) index, not a B-tree: expiry follows issue order (a fixed
            # date per component, or issue time plus validity), so block ranges summarise
            # well, and an insert changes a range's summary only when its expiry falls
            # outside it. A B-tree put every voucher's equal key on its rightmost leaf,
            # where concurrent issuance chunks queued for the page (bench/RESULTS.md,
            # "Issuance chunks side by side").
            BrinIndex(
                fields=["expires_at"],
                condition=Q(status__in=["active", "unclaimed"]),
                name="voucher_live_expiry_brin",
                autosummarize=True,
            ),
        ]

    def __str__(self) -> str:
        return f"voucher {self.pk}"

    @property
    def current_status(self) -> str:
        """The status as customers and staff see it: a live voucher past its
        ``expires_at`` is ``expired`` (its row keeps its last status)."""
        if self.status in LIVE_STATUSES and self.expires_at <= timezone.now():
            return VoucherStatus.EXPIRED
        return self.status

    @property
    def current_balance_krw(self) -> int:
        """What can still be spent: nothing once expired (the row keeps the leftover it
        froze with, which expiry booked to ``expired``)."""
        return 0 if self.current_status == VoucherStatus.EXPIRED else self.balance_krw
