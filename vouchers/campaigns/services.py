"""Campaign writes: a campaign and its components created together, audited.

The database holds the rules (a unique slug, one component per category, a positive
amount, a non-negative minimum order, exactly one of ``expires_at`` and ``valid_days``);
a violation comes back as the matching problem rather than as a 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from django.db import IntegrityError, transaction

from voucher_service.audit import record_event
from voucher_service.integrity import violated_constraint
from voucher_service.problems import ProblemError
from vouchers.models import Campaign, Component

DEFAULT_VALID_DAYS = 90
# Campaign slugs and component categories: lower-case letters, digits, '-' and '_'.
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


@dataclass(frozen=True)
class ComponentSpec:
    category: str
    amount_krw: int
    expires_at: datetime | None = None
    valid_days: int | None = None
    valid_from: datetime | None = None
    min_order_krw: int = 0
    single_use: bool = False


# Without components a campaign owes one 50,000 won voucher usable on any order, valid
# ``DEFAULT_VALID_DAYS`` from issue.
DEFAULT_COMPONENT = {"category": Component.ALL, "amount_krw": 50_000}
DEFAULT_COMPONENTS = (ComponentSpec(**DEFAULT_COMPONENT, valid_days=DEFAULT_VALID_DAYS),)

# Database constraint -> (field, message) of the 400 it becomes.
_COMPONENT_RULES = {
    "component_category_once": ("category", "Each category may appear only once."),
    "component_amount_positive": ("amount_krw", "Must be greater than zero."),
    "component_min_order_nonneg": ("min_order_krw", "Must not be negative."),
    "component_one_expiry_rule": (
        "expires_at", "Give exactly one of expires_at and valid_days (a positive number)."
    ),
}


@transaction.atomic
def create_campaign(
    *,
    slug: str,
    name: str,
    eligibility_opens_at: datetime,
    components: Sequence[ComponentSpec] = (),
    actor: str,
) -> Campaign:
    """Without components, the campaign owes one ``DEFAULT_COMPONENTS`` voucher."""
    specs = list(components) or list(DEFAULT_COMPONENTS)
    try:
        with transaction.atomic():
            campaign = Campaign.objects.create(
                slug=slug, name=name, eligibility_opens_at=eligibility_opens_at, created_by=actor
            )
    except IntegrityError as exc:
        raise ProblemError(status=409, code="campaign_exists",
                           detail=f"A campaign {slug!r} already exists.") from exc
    try:
        with transaction.atomic():
            Component.objects.bulk_create(
                Component(campaign=campaign, **asdict(spec)) for spec in specs
            )
    except IntegrityError as exc:
        if violated_constraint(exc) not in _COMPONENT_RULES:
            raise
        field, message = _COMPONENT_RULES[violated_constraint(exc)]
        raise ProblemError(status=400, code="validation_error",
                           detail="The request has invalid fields.",
                           errors={f"components.{field}": [message]}) from exc
    record_event(
        actor=actor, action="campaign.created", target_type="campaign", target_id=slug,
        payload={
            "name": name,
            "eligibility_opens_at": eligibility_opens_at.isoformat(),
            "components": [
                {**asdict(spec), "expires_at": spec.expires_at and spec.expires_at.isoformat(),
                 "valid_from": spec.valid_from and spec.valid_from.isoformat()}
                for spec in specs
            ],
        },
    )
    return campaign
