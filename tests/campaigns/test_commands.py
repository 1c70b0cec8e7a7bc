"""create_campaign and seed_demo: what they create, what they print last, repeated runs."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from voucher_service.models import AuditEvent
from voucher_service.phones import phone_hash
from vouchers.models import Campaign, Component, ExposedKind, RegistryEntry
from vouchers.models.registry import exposed_kinds

pytestmark = pytest.mark.django_db
UNTIL = dt.datetime(2026, 4, 30, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=9)))


def run(*args: str, capsys) -> list[str]:
    call_command(*args)
    return capsys.readouterr().out.strip().splitlines()


def components(slug: str) -> dict[str, Component]:
    return {c.category: c for c in Component.objects.filter(campaign__slug=slug)}


def test_create_campaign_with_the_real_programmes_components(capsys):
    out = run("create_campaign", "--slug", "breach-2026", "--name", "Breach 2026",
              "--component", "all:5000:single", "--component", "eats:5000:single",
              "--component", "travel:20000:min=40000:single",
              "--component", "luxury:20000:single:days=30",
              "--eligibility-opens-at", "2026-01-15T09:00:00+09:00",
              "--expires-at", UNTIL.isoformat(), capsys=capsys)
    assert out == ["created breach-2026: 4 component(s), 50,000 won per customer",
                   "breach-2026"]
    made = components("breach-2026")
    assert {c: (m.amount_krw, m.single_use) for c, m in made.items()} == {
        "all": (5_000, True), "eats": (5_000, True), "travel": (20_000, True),
        "luxury": (20_000, True)}
    assert made["travel"].min_order_krw == 40_000 and made["all"].min_order_krw == 0
    assert made["travel"].expires_at == UNTIL and made["travel"].valid_days is None
    assert made["luxury"].valid_days == 30 and made["luxury"].expires_at is None
    campaign = Campaign.objects.get()
    assert campaign.eligibility_opens_at == dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
    assert AuditEvent.objects.get(action="campaign.created").actor == "command:create_campaign"


def test_by_default_one_all_50000_component_opening_now(capsys):
    before = timezone.now()
    assert run("create_campaign", "--slug", "simple", "--name", "S", capsys=capsys)[-1] == \
        "simple"
    (only,) = components("simple").values()
    assert (only.category, only.amount_krw, only.valid_days, only.single_use) == \
        ("all", 50_000, 90, False)
    assert before <= Campaign.objects.get().eligibility_opens_at <= timezone.now()


def test_expires_at_applies_to_the_default_component(capsys):
    run("create_campaign", "--slug", "fixed", "--name", "F", "--expires-at", UNTIL.isoformat(),
        capsys=capsys)
    (only,) = components("fixed").values()
    assert (only.amount_krw, only.expires_at, only.valid_days) == (50_000, UNTIL, None)


@pytest.mark.parametrize("args", [
    ["--component", "all"],
    ["--component", "all:abc"],
    ["--component", "all:100:often"],
    ["--component", "all:100:min=x"],
    ["--component", "All:100"],
    ["--expires-at", "2026-04-30"],
    ["--eligibility-opens-at", "tomorrow"],
])
def test_malformed_arguments_are_refused(args):
    with pytest.raises(CommandError):
        call_command("create_campaign", "--slug", "bad", "--name", "B", *args)
    assert not Campaign.objects.exists()


def test_rules_the_database_holds_come_back_as_errors():
    with pytest.raises(CommandError, match=r"components.amount_krw: Must be greater than zero"):
        call_command("create_campaign", "--slug", "zero", "--name", "Z", "--component", "all:0")
    with pytest.raises(CommandError, match="Each category may appear only once"):
        call_command("create_campaign", "--slug", "twice", "--name", "T",
                     "--component", "all:1", "--component", "all:2")
    assert not Campaign.objects.exists()


def test_a_taken_slug_is_refused(capsys):
    run("create_campaign", "--slug", "taken", "--name", "T", capsys=capsys)
    with pytest.raises(CommandError, match="A campaign 'taken' already exists"):
        call_command("create_campaign", "--slug", "taken", "--name", "Other")
    assert Campaign.objects.get().name == "T"


def test_seed_demo_creates_the_demo_campaign_and_registry(capsys):
    out = run("seed_demo", capsys=capsys)
    assert out[-1] == "demo-2026"
    campaign = Campaign.objects.get(slug="demo-2026")
    assert campaign.eligibility_opens_at <= timezone.now()
    made = components("demo-2026")
    assert {c: m.amount_krw for c, m in made.items()} == {
        "all": 5_000, "eats": 5_000, "travel": 20_000, "luxury": 20_000}
    assert all(m.single_use for m in made.values()) and made["travel"].min_order_krw > 0
    (expiry,) = {m.expires_at for m in made.values()}
    assert dt.timedelta(days=80) < expiry - timezone.now() < dt.timedelta(days=100)
    statuses = dict(RegistryEntry.objects.filter(campaign=campaign)
                    .values_list("customer_id", "account_status"))
    assert len(statuses) == 3_000
    counts = {s: list(statuses.values()).count(s) for s in ("active", "dormant", "closed")}
    assert counts["closed"] == 300 and counts["dormant"] > 0 and counts["active"] > 2_000
    closed = RegistryEntry.objects.get(campaign=campaign, customer_id=10)
    assert closed.account_closed_at is not None
    assert bytes(closed.phone_hash) == phone_hash("010-9000-0010", key=settings.PHONE_HASH_KEY)


def test_seed_demo_customers_have_a_mix_of_exposed_kinds(capsys, customer_client):
    run("seed_demo", capsys=capsys)
    kinds = [exposed_kinds(mask) for mask in RegistryEntry.objects.values_list("exposed",
                                                                                flat=True)]
    assert {kind for of_one in kinds for kind in of_one} == set(ExposedKind.values)
    assert 50 < kinds.count(()) < 300 and len(set(kinds)) >= 8
    assert all("shipping_address" in of_one for of_one in kinds if "entrance_code" in of_one)
    body = customer_client(6).get("/api/v1/campaigns/demo-2026/eligibility").json()
    assert body["exposed"] == ["email", "entrance_code", "name", "phone", "shipping_address"]
    assert len(body["advice"]) == 5


def test_seed_demo_twice_changes_nothing(capsys):
    run("seed_demo", capsys=capsys)
    again = run("seed_demo", capsys=capsys)
    assert again[-1] == "demo-2026"
    assert "(0 added now)" in again[-2]
    assert Campaign.objects.count() == 1
    assert RegistryEntry.objects.count() == 3_000
    assert AuditEvent.objects.filter(action="campaign.created").count() == 1
