"""``seed_demo``: the demo campaign and its registry; safe to run again. Prints the slug last.

The campaign has the real programme's shape (four single-use vouchers: all 5,000, eats
5,000, travel 20,000 on orders from 40,000, luxury 20,000, all to one date about three
months out), eligibility open since the start of today. Its registry is customers
1..3,000 loaded through the real import (a generated CSV): every tenth account closed,
every seventh other one dormant, the rest active. Customer N's phone is 010-9000-NNNN,
written in a different common format on each line; demo numbers only, never texted
outside development (the SMS backend decides). What leaked is mixed as in the real leak
(``exposed_of``).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator

from django.core.management.base import BaseCommand
from django.utils import timezone

from voucher_service.problems import ProblemError
from vouchers.campaigns.services import ComponentSpec, create_campaign
from vouchers.eligibility.importing import import_registry
from vouchers.models import Campaign

SLUG = "demo-2026"
CUSTOMERS = 3_000
ACTOR = "command:seed_demo"
PHONE_FORMATS = ("010-9000-{:04d}", "0109000{:04d}", "+82 10 9000 {:04d}", "010.9000.{:04d}")


def status_of(customer_id: int) -> str:
    if customer_id % 10 == 0:
        return "closed"
    return "dormant" if customer_id % 7 == 0 else "active"


def exposed_of(customer_id: int) -> str:
    """Name and e-mail of nearly every account; the phone of three in four; the address
    book of one in three, half of them with the building's entrance code (kept with the
    address); the order history of one in five; nothing known of one in 25."""
    if customer_id % 25 == 0:
        return ""
    kinds = ["name", "email"]
    if customer_id % 4:
        kinds.append("phone")
    if customer_id % 3 == 0:
        kinds.append("shipping_address")
        if customer_id % 2 == 0:
            kinds.append("entrance_code")
    if customer_id % 5 == 0:
        kinds.append("order_history")
    return "|".join(kinds)


def registry_lines() -> Iterator[str]:
    yield "customer_id,account_status,account_closed_at,phone,exposed\n"
    for cid in range(1, CUSTOMERS + 1):
        status = status_of(cid)
        closed_at = "2025-12-01T10:00:00+09:00" if status == "closed" else ""
        phone = PHONE_FORMATS[cid % len(PHONE_FORMATS)].format(cid)
        yield f"{cid},{status},{closed_at},{phone},{exposed_of(cid)}\n"


def _demo_campaign() -> Campaign:
    """Creates the campaign, or finds the one an earlier run created."""
    today = timezone.localdate()
    zone = timezone.get_current_timezone()
    expires_at = dt.datetime.combine(today + dt.timedelta(days=90), dt.time(23, 59, 59),
                                     tzinfo=zone)
    try:
        return create_campaign(
            slug=SLUG, name="Demo: breach compensation 2026",
            eligibility_opens_at=dt.datetime.combine(today, dt.time(), tzinfo=zone),
            components=[
                ComponentSpec(category="all", amount_krw=5_000, expires_at=expires_at,
                              single_use=True),
                ComponentSpec(category="eats", amount_krw=5_000, expires_at=expires_at,
                              single_use=True),
                ComponentSpec(category="travel", amount_krw=20_000, expires_at=expires_at,
                              min_order_krw=40_000, single_use=True),
                ComponentSpec(category="luxury", amount_krw=20_000, expires_at=expires_at,
                              single_use=True),
            ],
            actor=ACTOR,
        )
    except ProblemError as exc:
        if exc.code != "campaign_exists":
            raise
        return Campaign.objects.get(slug=SLUG)


class Command(BaseCommand):
    help = "Create (or complete) the demo campaign demo-2026 with 3,000 customers; print it."

    def handle(self, *args, **options):
        campaign = _demo_campaign()
        with tempfile.TemporaryFile() as csv_file:
            csv_file.writelines(line.encode() for line in registry_lines())
            csv_file.seek(0)
            result = import_registry(campaign=campaign, source=csv_file, actor=ACTOR)
        self.stdout.write(f"{SLUG}: {result.registry_rows:,} customers in the registry "
                          f"({result.inserted:,} added now)")
        self.stdout.write(SLUG)
