"""Reads of eligibility: one customer's standing in one campaign, their vouchers, support's view.

``eligibility`` is the opening-day hot path on a cache miss: one SQL statement of
single-customer index lookups (registry primary key, the exclusion in force, the voucher
unique index for what was issued to the customer, the voucher ``customer_id`` index for
what the customer holds, the claim unique index). No join runs across more than one
customer's rows, so its cost does not grow with the registry.

Statuses, for customer C in a campaign:

* C is in the registry without an exclusion in force ("registered"):
  ``pending_issuance`` until vouchers are issued for C; ``claimed`` once C's closed
  account's vouchers were claimed (by a new account, or by C itself); ``claimable`` while
  C's account is closed and its vouchers wait unclaimed; else ``issued``.
* C is not registered but holds vouchers claimed from a closed account: ``claimed``.
* Otherwise ``not_eligible`` (``eligible: false``).

What of C's data the leak exposed (``exposed``) comes from C's registry row whether or not
an exclusion is in force: an exclusion withholds compensation, not the truth about the
leak. C not in the registry: nothing known.

A closed account's holder usually signs in with a *new* customer id that the registry
does not know, and we hold no phone number to connect the two: that account sees
``not_eligible`` until it claims (the app offers the claim to everyone, and its start
answers the same whether or not the phone matches). Only the old registry id, should it
still sign in, sees ``claimable``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.db.models import QuerySet

from vouchers.eligibility.advice import advice
from vouchers.eligibility.models import Claim
from vouchers.eligibility.registered import exclusion_in_force
from vouchers.models import AccountStatus, Campaign, RegistryEntry, Voucher
from vouchers.models.expiry import past_expiry
from vouchers.models.registry import exposed_kinds
from vouchers.models.vouchers import LIVE_STATUSES, in_current_status


class Status:
    NOT_ELIGIBLE = "not_eligible"
    PENDING_ISSUANCE = "pending_issuance"
    ISSUED = "issued"
    CLAIMABLE = "claimable"
    CLAIMED = "claimed"


@dataclass(frozen=True)
class CampaignFacts:
    id: int
    slug: str
    name: str
    eligibility_opens_at: datetime
    amount_krw: int


def campaign_facts(slug: str) -> CampaignFacts | None:
    campaign = Campaign.objects.filter(slug=slug).prefetch_related("components").first()
    if campaign is None:
        return None
    return CampaignFacts(campaign.pk, campaign.slug, campaign.name,
                         campaign.eligibility_opens_at, campaign.amount_krw)


@dataclass
class Eligibility:
    customer_id: int
    account_status: str | None
    exposed: tuple[str, ...]  # kinds, sorted
    excluded: bool
    issued: int
    unclaimed: int
    claimed: bool
    vouchers: list[Voucher] = field(default_factory=list)

    @property
    def registered(self) -> bool:
        return self.account_status is not None and not self.excluded

    @property
    def next_expiry(self) -> datetime | None:
        """When the first of the vouchers shown as live expires (the answer changes then,
        with no write to fence it)."""
        return min((v.expires_at for v in self.vouchers if v.current_status in LIVE_STATUSES),
                   default=None)

    @property
    def claimed_in(self) -> list[Voucher]:
        """Held vouchers issued to another (closed) registry account."""
        return [v for v in self.vouchers if v.registry_customer_id != self.customer_id]

    @property
    def status(self) -> str:
        if self.registered:
            if self.issued == 0:
                return Status.PENDING_ISSUANCE
            if self.claimed:
                return Status.CLAIMED
            if self.account_status == AccountStatus.CLOSED and self.unclaimed:
                return Status.CLAIMABLE
            return Status.ISSUED
        return Status.CLAIMED if self.claimed_in else Status.NOT_ELIGIBLE

    @property
    def eligible(self) -> bool:
        return self.status != Status.NOT_ELIGIBLE

    @property
    def advice(self) -> list[str]:
        """What to do, a sentence per exposed kind, in the order of ``exposed``."""
        return advice(self.exposed)

    def amount_krw(self, campaign_amount_krw: int) -> int:
        """What the customer is owed: the campaign's amount if registered, plus the face
        value of vouchers claimed from closed accounts."""
        own = campaign_amount_krw if self.registered else 0
        return own + sum(v.amount_krw for v in self.claimed_in)


_VOUCHER_COLUMNS = ("id", "registry_customer_id", "customer_id", "category", "amount_krw",
                    "balance_krw", "single_use", "min_order_krw", "status", "issued_at",
                    "expires_at")

# The voucher columns, from the seventh on, are in the order of _VOUCHER_COLUMNS.
_ELIGIBILITY_TEMPLATE = """
SELECT r.account_status, coalesce(r.exposed, 0),
       {excluded},
       own.issued, own.unclaimed,
       EXISTS (SELECT 1 FROM eligibility_claim c
               WHERE c.campaign_id = %(campaign)s AND c.registry_customer_id = %(customer)s),
       v.id, v.registry_customer_id, v.customer_id, v.category, v.amount_krw, v.balance_krw,
       v.single_use, v.min_order_krw, v.status, v.issued_at, v.expires_at
FROM (SELECT 1) AS one
LEFT JOIN vouchers_registryentry r
       ON r.campaign_id = %(campaign)s AND r.customer_id = %(customer)s
CROSS JOIN LATERAL (
    SELECT count(*) AS issued,
           count(*) FILTER (WHERE o.status = 'unclaimed' AND NOT {unclaimed_expired})
               AS unclaimed
    FROM vouchers_voucher o
    WHERE o.campaign_id = %(campaign)s AND o.registry_customer_id = %(customer)s
) AS own
LEFT JOIN vouchers_voucher v ON v.campaign_id = %(campaign)s AND v.customer_id = %(customer)s
ORDER BY v.id
"""
_ELIGIBILITY = _ELIGIBILITY_TEMPLATE.format(
    excluded=exclusion_in_force(campaign="%(campaign)s", customer="%(customer)s"),
    unclaimed_expired=past_expiry("now()", alias="o."))


def eligibility(campaign: CampaignFacts, customer_id: int) -> Eligibility:
    """One statement; the vouchers come back as unsaved-looking ``Voucher`` instances whose
    ``campaign`` is a stub carrying the slug (all the serializer reads of it)."""
    with connection.cursor() as cursor:
        cursor.execute(_ELIGIBILITY, {"campaign": campaign.id, "customer": customer_id})
        rows = cursor.fetchall()
    account_status, exposed, excluded, issued, unclaimed, claimed = rows[0][:6]
    stub = Campaign(pk=campaign.id, slug=campaign.slug)
    vouchers = [
        Voucher(campaign=stub, **dict(zip(_VOUCHER_COLUMNS, row[6:], strict=True)))
        for row in rows if row[6] is not None
    ]
    return Eligibility(customer_id, account_status, exposed_kinds(exposed), excluded, issued,
                       unclaimed, claimed, vouchers)


def customer_vouchers(customer_id: int, *, campaign_slug: str | None = None,
                      status: str | None = None) -> QuerySet[Voucher]:
    """The vouchers a customer holds (claimed ones included), newest first by the pager."""
    vouchers = Voucher.objects.filter(customer_id=customer_id).select_related("campaign")
    if campaign_slug:
        vouchers = vouchers.filter(campaign__slug=campaign_slug)
    if status:
        vouchers = vouchers.filter(in_current_status(status))
    return vouchers


def customer_voucher(customer_id: int, voucher_id: int) -> Voucher | None:
    return customer_vouchers(customer_id).filter(pk=voucher_id).first()


@dataclass(frozen=True)
class CampaignStanding:
    campaign: CampaignFacts
    eligibility: Eligibility
    account_closed_at: datetime | None
    claims: list[Claim]


def support_overview(customer_id: int) -> list[CampaignStanding]:
    """Per campaign: the customer's standing, registry details and the claims touching them
    (their closed account's, or theirs as claimant). A handful of campaigns, each a few
    single-customer index lookups."""
    standings = []
    for campaign in Campaign.objects.prefetch_related("components").order_by("pk"):
        facts = CampaignFacts(campaign.pk, campaign.slug, campaign.name,
                              campaign.eligibility_opens_at, campaign.amount_krw)
        entry = RegistryEntry.objects.filter(campaign=campaign, customer_id=customer_id).first()
        claims = list(
            Claim.objects.filter(campaign=campaign, registry_customer_id=customer_id)
            .union(Claim.objects.filter(campaign=campaign, customer_id=customer_id))
            .order_by("created_at")
        )
        standings.append(CampaignStanding(facts, eligibility(facts, customer_id),
                                          entry.account_closed_at if entry else None, claims))
    return standings
