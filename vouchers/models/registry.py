"""The affected-customer registry, per campaign. A closed account's phone only as a keyed hash."""

from django.db import models
from django.db.models import Q


class AccountStatus(models.TextChoices):
    ACTIVE = "active"
    DORMANT = "dormant"
    CLOSED = "closed"


class ExposedKind(models.TextChoices):
    """What of a customer's data the leak exposed (the registry file's ``exposed`` column)."""

    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"
    SHIPPING_ADDRESS = "shipping_address"
    ENTRANCE_CODE = "entrance_code"
    ORDER_HISTORY = "order_history"


# Each kind's bit in ``RegistryEntry.exposed``. These are stored: a kind keeps its bit for
# good, and a new kind takes the next free one (with a migration widening the CHECK).
EXPOSED_BITS = {
    ExposedKind.NAME: 1,
    ExposedKind.EMAIL: 2,
    ExposedKind.PHONE: 4,
    ExposedKind.SHIPPING_ADDRESS: 8,
    ExposedKind.ENTRANCE_CODE: 16,
    ExposedKind.ORDER_HISTORY: 32,
}
EXPOSED_ALL = sum(EXPOSED_BITS.values())

# The kinds of every possible mask, alphabetically (as answers list them).
_KINDS_OF = tuple(
    tuple(sorted(kind.value for kind, bit in EXPOSED_BITS.items() if mask & bit))
    for mask in range(EXPOSED_ALL + 1)
)


def exposed_kinds(mask: int) -> tuple[str, ...]:
    """The kinds of ``RegistryEntry.exposed`` mask, sorted alphabetically."""
    return _KINDS_OF[mask]


class RegistryEntry(models.Model):
    """One affected account of a campaign.

    ``exposed`` is a bitmask (``EXPOSED_BITS``) in a ``smallint``: 2 bytes of data, 8 a
    row on the page once aligned, where an enum array of three kinds would take 40 (a
    20-byte array header, 4 bytes an element): at 33.7M rows a campaign, ~270 MB against
    ~1.3 GB of heap (measured in migration 0006). The CHECK allows exactly the defined
    bits; the database default 0 (nothing known exposed) makes adding the column
    metadata-only and fills rows written without it.
    """

    pk = models.CompositePrimaryKey("campaign_id", "customer_id")
    # Not indexed alone: the leading column of the primary key. Checked per statement, not
    # per row, by the database (migration 0012): the per-row check was about half of an
    # import batch's time.
    campaign = models.ForeignKey("vouchers.Campaign", on_delete=models.PROTECT, db_index=False,
                                 db_constraint=False)
    customer_id = models.BigIntegerField()
    account_status = models.CharField(max_length=8, choices=AccountStatus.choices)
    account_closed_at = models.DateTimeField(null=True, blank=True)
    # A closed account's phone: HMAC-SHA256 of its normal form, keyed by PHONE_HASH_KEY.
    # NULL for the others: a phone finds only closed accounts (claims, re-joined accounts).
    phone_hash = models.BinaryField(max_length=32, null=True)
    imported_at = models.DateTimeField()
    exposed = models.SmallIntegerField(db_default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(account_status__in=AccountStatus.values),
                name="registry_status_valid",
            ),
            models.CheckConstraint(condition=Q(customer_id__gt=0), name="registry_customer_pos"),
            models.CheckConstraint(condition=Q(exposed__gte=0, exposed__lte=EXPOSED_ALL),
                                   name="registry_exposed_bits"),
        ]
        indexes = [
            models.Index(
                fields=["campaign", "phone_hash"],
                condition=Q(account_status="closed"),
                name="registry_closed_phone",
            ),
        ]


# The primary key as a violation names it (a writer that lost a race for a customer).
REGISTRY_KEY = f"{RegistryEntry._meta.db_table}_pkey"


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
