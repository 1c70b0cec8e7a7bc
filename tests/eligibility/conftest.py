"""Eligibility fixtures: a campaign whose registry has every kind of account, phones of the
closed ones, issuing through the real chunk path, the SMS file outbox."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings

from tests.issuance.conftest import drive
from voucher_service.phones import phone_hash
from vouchers.eligibility import sms
from vouchers.eligibility.models import ClaimChallenge
from vouchers.issuance import services as issuance
from vouchers.models import Campaign, Exclusion, RegistryEntry

ACTIVE, DORMANT, CLOSED_A, CLOSED_B, EXCLUDED, CLOSED_A2 = 101, 102, 103, 104, 105, 106
NEW_ACCOUNT, STRANGER = 9001, 9002
# Two closed accounts (103, 106) share a number: a claim moves both.
PHONE_A = "010-1234-5678"
PHONE_B = "+82 10 9876 5432"
PHONE_UNKNOWN = "010 5555 0000"
COMPONENTS = [
    {"category": "all", "amount_krw": 30_000},
    {"category": "eats", "amount_krw": 20_000, "single_use": True},
]
AMOUNT = 50_000


@pytest.fixture
def campaign(make_campaign, load_registry) -> Campaign:
    campaign = make_campaign(slug="breach", components=COMPONENTS)
    load_registry(campaign, {ACTIVE: "active", DORMANT: "dormant", CLOSED_A: "closed",
                             CLOSED_B: "closed", EXCLUDED: "active", CLOSED_A2: "closed"})
    for customer_id, phone in ((CLOSED_A, PHONE_A), (CLOSED_A2, PHONE_A), (CLOSED_B, PHONE_B)):
        RegistryEntry.objects.filter(campaign=campaign, customer_id=customer_id).update(
            phone_hash=phone_hash(phone, key=settings.PHONE_HASH_KEY))
    Exclusion.objects.create(campaign=campaign, customer_id=EXCLUDED, reason="fraud",
                             created_by="test")
    return campaign


@pytest.fixture
def issue(django_capture_on_commit_callbacks):
    """``issue(campaign)``: an approved run driven chunk by chunk as workers would, with the
    chunks' after-commit hooks (the eligibility cache invalidation) run."""

    def run(campaign: Campaign) -> None:
        created = issuance.create_run(campaign=campaign, actor="ops-a", dry_run_only=False)
        issuance.approve_run(run_id=created.pk, actor="ops-b")
        with django_capture_on_commit_callbacks(execute=True):
            assert drive(created.pk).status == "completed"

    return run


@pytest.fixture
def issued(campaign, issue) -> Campaign:
    issue(campaign)
    return campaign


@pytest.fixture
def sms_dir(settings, tmp_path) -> Path:
    settings.SMS_BACKEND = "file"
    settings.SMS_FILE_PATH = str(tmp_path / "sms")
    return tmp_path / "sms"


def deliver_outbox() -> int:
    """What the delivery task does for every challenge still holding its envelope."""
    pending = ClaimChallenge.objects.filter(outbox__isnull=False).values_list("pk", flat=True)
    return sum(sms.deliver(challenge_id=pk) for pk in list(pending))


def messages(directory: Path) -> list[dict]:
    if not directory.exists():
        return []
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def code_in(message: dict) -> str:
    return re.search(r"\b([0-9]{6})\b", message["body"]).group(1)
