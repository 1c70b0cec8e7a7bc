"""Fencing the cached answers a transaction changes: once, after it commits.

Receives ``vouchers.models.changes.answers_changed`` (and the model signals of the
voucher, registry and exclusion rows, for the ORM's saves and deletes) and fences whom
the write changed in an on-commit step (``cache.fence_answers``, one script call per
campaign and 2,000 customers). A rolled-back transaction fences nothing; outside a
transaction the write has already committed and the fence goes out at once.

Answers are cached only once a campaign's eligibility is open, so records of a campaign
that is not open yet are dropped at the commit (issuance and the import write millions
of rows before the opening). A range record (``customer_range``: an issuance chunk of a
range that held no voucher) is resolved to the registry's customers in it at the commit,
and only if the campaign is open.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from vouchers.eligibility.cache import fence_answers
from vouchers.models import Exclusion, RegistryEntry, Voucher
from vouchers.models.changes import answers_changed

_CAMPAIGNS = """
    SELECT id, slug, eligibility_opens_at <= %s FROM vouchers_campaign WHERE id = ANY(%s)
"""
_REGISTERED_IN = """
    SELECT customer_id FROM vouchers_registryentry
    WHERE campaign_id = %s AND customer_id >= %s AND customer_id < %s
"""


class _Changes:
    """Whom one write changed, by campaign id or (checkout's) slug."""

    def __init__(self) -> None:
        self.by_id: dict[int, set[int]] = defaultdict(set)
        self.by_slug: dict[str, set[int]] = defaultdict(set)
        self.ranges: list[tuple[int, int, int]] = []

    def fence(self) -> None:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            ids = sorted({*self.by_id, *(campaign for campaign, _, _ in self.ranges)})
            open_slugs = {}
            if ids:
                cursor.execute(_CAMPAIGNS, [timezone.now(), ids])
                open_slugs = {pk: slug for pk, slug, is_open in cursor.fetchall() if is_open}
            by_slug = defaultdict(set, {s: set(c) for s, c in self.by_slug.items()})
            for campaign_id, customers in self.by_id.items():
                if campaign_id in open_slugs:
                    by_slug[open_slugs[campaign_id]] |= customers
            for campaign_id, lo, hi in self.ranges:
                if campaign_id in open_slugs:
                    cursor.execute(_REGISTERED_IN, [campaign_id, lo, hi])
                    by_slug[open_slugs[campaign_id]].update(row[0] for row in cursor.fetchall())
        for slug, customers in by_slug.items():
            fence_answers(slug, sorted(customers))


def record(*, campaign_id: int | None = None, slug: str | None = None,
           customer_ids: Iterable[int] = (),
           customer_range: tuple[int, int] | None = None, **_signal) -> None:
    """Receives ``answers_changed``: the record is fenced once the transaction commits, at
    once outside a transaction (the write has committed). A record made in a savepoint
    that rolls back is dropped with it, as Django drops on-commit steps registered there."""
    changes = _Changes()
    if customer_range is not None:
        changes.ranges.append((campaign_id, *customer_range))
    elif slug is not None:
        changes.by_slug[slug].update(customer_ids)
    else:
        changes.by_id[campaign_id].update(customer_ids)
    transaction.on_commit(changes.fence, robust=True)


def _row_written(sender, instance, **_signal) -> None:
    customers = {instance.customer_id}
    if sender is Voucher:
        customers.add(instance.registry_customer_id)
    record(campaign_id=instance.campaign_id, customer_ids=customers)


def connect() -> None:
    """Called once, when the app is ready."""
    answers_changed.connect(record, dispatch_uid="eligibility.changes")
    for model in (Voucher, RegistryEntry, Exclusion):
        for signal in (post_save, post_delete):
            signal.connect(_row_written, sender=model,
                           dispatch_uid=f"eligibility.changes.{model.__name__}.{signal}")
