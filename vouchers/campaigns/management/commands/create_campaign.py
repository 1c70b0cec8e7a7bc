"""``create_campaign --slug SLUG --name NAME [--component SPEC ...]``: prints the slug last."""

from __future__ import annotations

import argparse
import re
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from voucher_service.fields import AwareDateTimeField
from voucher_service.problems import ProblemError
from vouchers.campaigns.services import (
    DEFAULT_COMPONENT,
    DEFAULT_VALID_DAYS,
    SLUG_PATTERN,
    ComponentSpec,
    create_campaign,
)

ACTOR = "command:create_campaign"
COMPONENT_HELP = """\
one voucher per customer, repeatable: CATEGORY:AMOUNT_KRW[:OPTION...] with options
min=KRW (minimum order), single (spent whole by one redemption), days=N (valid N days from
issue instead of --expires-at). Example: --component all:5000:single
--component travel:20000:min=40000:single. Default: one all:50000 component."""


def slug(value: str) -> str:
    if not re.fullmatch(SLUG_PATTERN, value) or len(value) > 64:
        raise argparse.ArgumentTypeError(
            f"{value!r}: up to 64 lower-case letters, digits, '-' or '_'")
    return value


def aware_datetime(value: str) -> datetime:
    """The API's rule: ISO 8601 with an offset, in this century."""
    try:
        return AwareDateTimeField().to_internal_value(value)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {' '.join(exc.detail)}") from None


def component(value: str) -> dict:
    """One --component, parsed; the expiry is settled in ``handle`` (it needs the others)."""
    category, _, rest = value.partition(":")
    amount, *options = rest.split(":") if rest else [""]
    if not re.fullmatch(SLUG_PATTERN, category) or not amount.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not CATEGORY:AMOUNT_KRW[:OPTION...]")
    spec = {"category": category, "amount_krw": int(amount)}
    for option in options:
        name, _, number = option.partition("=")
        if name == "single" and not number:
            spec["single_use"] = True
        elif name in ("min", "days") and number.isdigit():
            spec["min_order_krw" if name == "min" else "valid_days"] = int(number)
        else:
            raise argparse.ArgumentTypeError(
                f"unknown option {option!r} in {value!r} (min=KRW, single, days=N)")
    return spec


def _with_expiry(spec: dict, expires_at: datetime | None) -> ComponentSpec:
    """days=N wins; else --expires-at; else valid ``DEFAULT_VALID_DAYS`` days from issue."""
    if "valid_days" in spec or expires_at is None:
        return ComponentSpec(**{"valid_days": DEFAULT_VALID_DAYS, **spec})
    return ComponentSpec(expires_at=expires_at, **spec)


class Command(BaseCommand):
    help = "Create a campaign and its components; print its slug."

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True, type=slug)
        parser.add_argument("--name", required=True)
        parser.add_argument("--component", action="append", type=component, default=[],
                            dest="components", metavar="SPEC", help=COMPONENT_HELP)
        parser.add_argument("--eligibility-opens-at", type=aware_datetime,
                            help="when customers may check (ISO 8601 with offset; default now)")
        parser.add_argument("--expires-at", type=aware_datetime,
                            help="the fixed expiry of every component without days=N "
                                 f"(default: valid {DEFAULT_VALID_DAYS} days from issue)")

    def handle(self, *args, slug: str, name: str, components: list[dict],
               eligibility_opens_at: datetime | None, expires_at: datetime | None, **options):
        specs = [_with_expiry(spec, expires_at) for spec in components or [DEFAULT_COMPONENT]]
        try:
            campaign = create_campaign(
                slug=slug, name=name, eligibility_opens_at=eligibility_opens_at or timezone.now(),
                components=specs, actor=ACTOR,
            )
        except ProblemError as exc:
            details = "; ".join(f"{field}: {' '.join(messages)}"
                                for field, messages in (exc.errors or {}).items())
            raise CommandError(f"{exc.detail} {details}".strip()) from None
        self.stdout.write(f"created {campaign.slug}: {len(specs)} component(s), "
                          f"{sum(spec.amount_krw for spec in specs):,} won per customer")
        self.stdout.write(campaign.slug)
