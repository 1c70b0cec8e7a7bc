"""The finance identity after every kind of operation, read through the summary endpoint.

Each test reads ``GET /api/v1/finance/summary`` before and after one operation done the
way its client does it (checkout, operations, the customer app, the periodic jobs). Every
read asserts ``issued == redeemed - refunded + authorized + forfeited + expired + revoked
+ outstanding`` for the campaign and for each category; each test then asserts exactly
which figures the operation moved, in which category and by how many won: a figure it
should not touch that moves fails the test as surely as one that does not move.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.utils import timezone

from tests.eligibility.conftest import code_in, deliver_outbox, messages
from tests.issuance.conftest import drive
from tests.redemption.conftest import redeem, step, voucher
from voucher_service.phones import phone_hash
from vouchers.models import RegistryEntry, Voucher
from vouchers.redemption import services
from vouchers.redemption.tasks import expire_due_vouchers

pytestmark = pytest.mark.django_db

COMPONENTS = [
    {"category": "all", "amount_krw": 30_000},
    {"category": "eats", "amount_krw": 5_000, "single_use": True},
    {"category": "travel", "amount_krw": 20_000, "single_use": True, "min_order_krw": 40_000},
]
ACTIVE, DORMANT, CLOSED, CLAIMANT = 1, 2, 3, 9001
CLOSED_PHONE = "010-4444-0003"
FIGURES = ("issued_krw", "issued_count", "redeemed_krw", "refunded_krw", "authorized_krw",
           "forfeited_krw", "expired_krw", "revoked_krw", "outstanding_krw")
CAMPAIGN = "campaign"  # the key of the campaign's own figures beside its categories


def identity_holds(figures: dict) -> bool:
    return figures["issued_krw"] == (
        figures["redeemed_krw"] - figures["refunded_krw"] + figures["authorized_krw"]
        + figures["forfeited_krw"] + figures["expired_krw"] + figures["revoked_krw"]
        + figures["outstanding_krw"])


@pytest.fixture
def finance(role_client):
    return role_client("finance")


@pytest.fixture
def ops(role_client):
    return role_client("operations")


@pytest.fixture
def checkout(role_client):
    return role_client("checkout")


@pytest.fixture
def campaign(make_campaign, load_registry):
    campaign = make_campaign(slug="identity", components=COMPONENTS)
    load_registry(campaign, {ACTIVE: "active", DORMANT: "dormant", CLOSED: "closed"})
    RegistryEntry.objects.filter(campaign=campaign, customer_id=CLOSED).update(
        phone_hash=phone_hash(CLOSED_PHONE, key=settings.PHONE_HASH_KEY))
    return campaign


def issue(campaign, ops, role_client) -> None:
    """A run created by one operator and approved by another, driven as workers would."""
    run = ops.post(f"/api/v1/campaigns/{campaign.slug}/issuance-runs", {"dry_run": False},
                   format="json")
    assert run.status_code == 201, run.content
    run_id = run.json()["id"]
    assert role_client("operations").post(
        f"/api/v1/issuance-runs/{run_id}/approve").status_code == 200
    assert drive(run_id).status == "completed"


@pytest.fixture
def issued(campaign, ops, role_client):
    issue(campaign, ops, role_client)
    return campaign


@pytest.fixture
def read(finance):
    """``read(campaign)``: the summary as {"campaign": figures, category: figures, ...},
    after asserting the identity on every one of them."""

    def summary(campaign) -> dict[str, dict[str, int]]:
        response = finance.get("/api/v1/finance/summary", {"campaign": campaign.slug})
        assert response.status_code == 200, response.content
        body = response.json()
        table = {CAMPAIGN: body, **{c["category"]: c for c in body["by_category"]}}
        broken = [name for name, figures in table.items() if not identity_holds(figures)]
        assert not broken, (broken, body)
        return {name: {f: figures[f] for f in FIGURES} for name, figures in table.items()}

    return summary


def moved(before: dict, after: dict) -> dict[str, dict[str, int]]:
    """The figures that changed, by how much, per category and for the campaign."""
    zero = dict.fromkeys(FIGURES, 0)
    changes = {}
    for name in before.keys() | after.keys():
        old, new = before.get(name, zero), after.get(name, zero)
        delta = {f: new[f] - old[f] for f in FIGURES if new[f] != old[f]}
        if delta:
            changes[name] = delta
    return changes


def only(category: str, **delta: int) -> dict[str, dict[str, int]]:
    """One category's figures moved, and the campaign's by the same."""
    return {category: delta, CAMPAIGN: delta}


def test_issuance_books_every_component_as_issued_and_outstanding(campaign, ops, role_client,
                                                                  read):
    before = read(campaign)
    issue(campaign, ops, role_client)
    per = {"all": 30_000, "eats": 5_000, "travel": 20_000}
    expected = {c: {"issued_krw": 3 * amount, "issued_count": 3, "outstanding_krw": 3 * amount}
                for c, amount in per.items()}
    expected[CAMPAIGN] = {"issued_krw": 165_000, "issued_count": 9, "outstanding_krw": 165_000}
    assert moved(before, read(campaign)) == expected


def test_claim_transfer_moves_no_figure(issued, read, customer_client, settings, tmp_path):
    settings.SMS_BACKEND, settings.SMS_FILE_PATH = "file", str(tmp_path)
    client = customer_client(CLAIMANT)
    before = read(issued)
    started = client.post("/api/v1/claims/closed-account",
                          {"campaign": issued.slug, "phone": "+82 10 4444 0003"}, format="json")
    assert started.status_code == 202
    assert deliver_outbox() == 1
    challenge = started.json()["challenge_id"]
    confirmed = client.post(f"/api/v1/claims/closed-account/{challenge}/confirm",
                            {"code": code_in(messages(tmp_path)[0])}, format="json")
    assert confirmed.status_code == 200, confirmed.content
    # Unclaimed to liability: both are outstanding, so the summary does not move.
    assert moved(before, read(issued)) == {}
    holders = Voucher.objects.filter(registry_customer_id=CLOSED).values_list(
        "customer_id", "status")
    assert set(holders) == {(CLAIMANT, "active")}


@pytest.mark.parametrize(("category", "amount", "delta"), [
    ("all", 1_000, {"authorized_krw": 1_000, "outstanding_krw": -1_000}),
    # Single-use: what the order does not use is forfeited at once.
    ("eats", 3_000, {"authorized_krw": 3_000, "forfeited_krw": 2_000,
                     "outstanding_krw": -5_000}),
])
def test_authorize_holds_the_amount(issued, read, checkout, category, amount, delta):
    before = read(issued)
    response = redeem(checkout, voucher(ACTIVE, category), amount_krw=amount, capture=False)
    assert response.json()["status"] == "authorized"
    assert moved(before, read(issued)) == only(category, **delta)


def test_capture_of_a_hold_moves_it_to_redeemed(issued, read, checkout):
    hold = redeem(checkout, voucher(ACTIVE, "all"), amount_krw=1_000, capture=False).json()
    before = read(issued)
    assert step(checkout, hold["id"], "capture").json()["status"] == "captured"
    assert moved(before, read(issued)) == only("all", authorized_krw=-1_000,
                                              redeemed_krw=1_000)


def test_capture_at_once_redeems_from_outstanding(issued, read, checkout):
    before = read(issued)
    redeem(checkout, voucher(ACTIVE, "all"), amount_krw=1_000)
    assert moved(before, read(issued)) == only("all", redeemed_krw=1_000,
                                              outstanding_krw=-1_000)


def test_void_gives_the_hold_and_its_forfeit_back(issued, read, checkout):
    hold = redeem(checkout, voucher(ACTIVE, "eats"), amount_krw=3_000, capture=False).json()
    before = read(issued)
    assert step(checkout, hold["id"], "void").json()["status"] == "voided"
    assert moved(before, read(issued)) == only("eats", authorized_krw=-3_000,
                                               forfeited_krw=-2_000, outstanding_krw=5_000)


def test_partial_refund_of_multi_use_goes_back_to_outstanding(issued, read, checkout):
    spent = redeem(checkout, voucher(ACTIVE, "all"), amount_krw=10_000).json()
    before = read(issued)
    body = step(checkout, spent["id"], "refund", {"amount_krw": 4_000}).json()
    assert (body["status"], body["voucher_restored"]) == ("partially_refunded", True)
    assert moved(before, read(issued)) == only("all", refunded_krw=4_000,
                                              outstanding_krw=4_000)


def test_full_refund_of_single_use_restores_the_forfeit(issued, read, checkout):
    spent = redeem(checkout, voucher(ACTIVE, "travel"), amount_krw=12_000,
                   order_total_krw=50_000).json()
    assert spent["forfeited_krw"] == 8_000
    before = read(issued)
    body = step(checkout, spent["id"], "refund").json()
    assert (body["status"], body["voucher_restored"], body["voucher_balance_krw"]) == (
        "refunded", True, 20_000)
    assert moved(before, read(issued)) == only("travel", refunded_krw=12_000,
                                               forfeited_krw=-8_000, outstanding_krw=20_000)


def test_partial_refund_of_single_use_is_forfeited_until_the_refund_completes(issued, read,
                                                                              checkout):
    spent = redeem(checkout, voucher(ACTIVE, "eats"), amount_krw=3_000).json()
    before = read(issued)
    body = step(checkout, spent["id"], "refund", {"amount_krw": 1_000}).json()
    assert (body["status"], body["voucher_restored"]) == ("partially_refunded", False)
    partly = read(issued)
    assert moved(before, partly) == only("eats", refunded_krw=1_000, forfeited_krw=1_000)
    # The refund that completes it brings back the checkout's forfeit and the earlier part.
    body = step(checkout, spent["id"], "refund").json()
    assert (body["status"], body["voucher_restored"]) == ("refunded", True)
    assert moved(partly, read(issued)) == only("eats", refunded_krw=2_000,
                                               forfeited_krw=-3_000, outstanding_krw=5_000)


def test_expiry_moves_every_leftover_to_expired(issued, read, checkout):
    redeem(checkout, voucher(ACTIVE, "all"), amount_krw=10_000)
    redeem(checkout, voucher(ACTIVE, "eats"), amount_krw=5_000)  # exhausted: nothing left
    Voucher.objects.filter(campaign=issued).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1))
    before = read(issued)
    assert expire_due_vouchers.apply().get() == 8
    left = {"all": 80_000, "eats": 10_000, "travel": 60_000}
    expected = {c: {"expired_krw": won, "outstanding_krw": -won} for c, won in left.items()}
    expected[CAMPAIGN] = {"expired_krw": 150_000, "outstanding_krw": -150_000}
    assert moved(before, read(issued)) == expected


def test_revocation_moves_the_unspent_vouchers_to_revoked(issued, read, ops, checkout):
    redeem(checkout, voucher(DORMANT, "all"), amount_krw=7_000)
    before = read(issued)
    response = ops.post(f"/api/v1/campaigns/{issued.slug}/revocations",
                        {"customer_id": DORMANT, "reason": "invalid account"}, format="json")
    assert response.status_code == 201, response.content
    left = {"all": 23_000, "eats": 5_000, "travel": 20_000}
    expected = {c: {"revoked_krw": won, "outstanding_krw": -won} for c, won in left.items()}
    expected[CAMPAIGN] = {"revoked_krw": 48_000, "outstanding_krw": -48_000}
    assert moved(before, read(issued)) == expected


def later() -> dt.datetime:
    return timezone.now() + dt.timedelta(seconds=settings.AUTHORIZATION_TTL_SECONDS + 60)


def test_hold_timeout_gives_the_hold_back(issued, read, checkout):
    redeem(checkout, voucher(ACTIVE, "all"), amount_krw=1_000, capture=False)
    before = read(issued)
    assert services.void_timed_out_holds(now=later()) == 1
    assert moved(before, read(issued)) == only("all", authorized_krw=-1_000,
                                              outstanding_krw=1_000)


def test_hold_timeout_after_expiry_lapses_to_expired_and_keeps_the_forfeit(issued, read,
                                                                          checkout):
    eats = voucher(ACTIVE, "eats")
    redeem(checkout, eats, amount_krw=3_000, capture=False)
    Voucher.objects.filter(pk=eats.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1))
    before = read(issued)
    assert services.void_timed_out_holds(now=later()) == 1
    assert moved(before, read(issued)) == only("eats", authorized_krw=-3_000,
                                               expired_krw=3_000)
