"""Who is owed compensation: a registry row with no exclusion in force.

The one place that rule is written. Set-based SQL composes ``exclusion_in_force`` (the
planner, the chunk statement, the eligibility read, reconciliation); ORM code filters with
``in_force`` and ``excluded``. An exclusion is in force until it is lifted (``lifted_at``),
the same condition as its partial unique index (``exclusion_one_in_force``).

Who is registered changes under the campaign's issuance lock: an exclusion (or a
revocation, which excludes) takes it exclusively, a chunk shared, so a chunk in flight
finishes before an exclusion commits and every chunk that starts later sees it.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Exists, OuterRef, Q

from vouchers.models import Exclusion

in_force = Q(lifted_at__isnull=True)
_IN_FORCE = ("EXISTS (SELECT 1 FROM vouchers_exclusion e WHERE e.campaign_id = {campaign}"
             " AND e.customer_id = {customer} AND e.lifted_at IS NULL)")


def exclusion_in_force(*, campaign: str, customer: str) -> str:
    """SQL, true when the customer has an exclusion in force in the campaign: ``campaign``
    and ``customer`` are SQL expressions (columns of the caller's rows, or placeholders).
    Prefix ``NOT`` for "registered"."""
    return _IN_FORCE.format(campaign=campaign, customer=customer)


REGISTRY_ROW_REGISTERED = "NOT " + exclusion_in_force(campaign="r.campaign_id",
                                                       customer="r.customer_id")
"""SQL, for a registry row aliased ``r``: it has no exclusion in force."""


def excluded(*, campaign=None, customer=None) -> Exists:
    """ORM: an exclusion in force exists for the outer row's campaign and customer (by
    default its ``campaign_id`` and ``customer_id``)."""
    return Exists(Exclusion.objects.filter(
        in_force, campaign_id=campaign or OuterRef("campaign_id"),
        customer_id=customer or OuterRef("customer_id")))


# pg_advisory_xact_lock(int, int) key space: (this constant, campaign id).
_ISSUANCE_LOCK_CLASS = 0x4953  # "IS"


def lock_campaign_issuance(campaign_id: int, *, shared: bool) -> None:
    """Chunks take this shared, exclusions exclusively; held until the transaction ends."""
    sql = ("SELECT pg_advisory_xact_lock_shared(%s, %s)" if shared
           else "SELECT pg_advisory_xact_lock(%s, %s)")
    with connection.cursor() as cursor:
        cursor.execute(sql, [_ISSUANCE_LOCK_CLASS, campaign_id])
