"""Revocations: unspent vouchers withdrawn through the ledger, once; later runs skip them."""

from __future__ import annotations

import pytest

from tests.issuance.conftest import drive
from voucher_service.models import AuditEvent
from vouchers.issuance import services
from vouchers.ledger.posting import move, post_transaction
from vouchers.ledger.verification import verify_ledger
from vouchers.models import Account, Exclusion, LedgerPosting, Reason, Voucher
from vouchers.redemption import services as redemptions

pytestmark = pytest.mark.django_db
URL = "/api/v1/campaigns/breach/revocations"


def _spend(voucher: Voucher) -> None:
    """Spent whole at checkout (what redemption records)."""
    post_transaction(campaign_id=voucher.campaign_id, reason=Reason.CAPTURE,
                     voucher_id=voucher.pk,
                     moves=[move(debit=Account.LIABILITY, credit=Account.REDEEMED,
                                 amount_krw=voucher.amount_krw, category=voucher.category,
                                 voucher_id=voucher.pk)])
    Voucher.objects.filter(pk=voucher.pk).update(balance_krw=0, status="exhausted")


@pytest.fixture
def issued(campaign, approved_run):
    drive(approved_run)
    return campaign


def test_revocation_withdraws_unspent_vouchers(issued, ops):
    _spend(Voucher.objects.get(registry_customer_id=1, category="eats"))
    response = ops.post(URL, {"customer_id": 1, "reason": "duplicate account"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["customer_id"], body["vouchers_revoked"], body["revoked_krw"]) == (1, 3, 45_000)
    statuses = dict(Voucher.objects.filter(registry_customer_id=1)
                    .values_list("category", "status"))
    # The spent one too: a later refund of its checkout must not put value back on it.
    assert statuses == {"all": "revoked", "eats": "revoked", "travel": "revoked",
                        "luxury": "revoked"}
    assert not Voucher.objects.filter(registry_customer_id=1, status="revoked",
                                      balance_krw__gt=0).exists()
    revoked = LedgerPosting.objects.filter(account="revoked")
    assert sum(p.amount_krw for p in revoked) == -45_000
    exclusion = Exclusion.objects.get(customer_id=1, lifted_at__isnull=True)
    assert AuditEvent.objects.filter(action="revocation.created", target_id=str(body["id"])
                                     ).exists()
    # The exclusion is made by the exclusion service, so it has its own audit event.
    assert AuditEvent.objects.filter(action="exclusion.created",
                                     target_id=str(exclusion.pk)).exists()
    assert verify_ledger(campaign_id=issued.pk).ok


def test_unclaimed_vouchers_are_revoked_from_unclaimed(issued, ops):
    assert ops.post(URL, {"customer_id": 3, "reason": "x"}, format="json").status_code == 201
    accounts = set(LedgerPosting.objects.filter(transaction__reason="revocation")
                   .values_list("account", flat=True))
    assert accounts == {"unclaimed", "revoked"}
    assert verify_ledger(campaign_id=issued.pk).ok


def test_revoking_twice_returns_the_first(issued, ops):
    first = ops.post(URL, {"customer_id": 2, "reason": "x"}, format="json")
    second = ops.post(URL, {"customer_id": 2, "reason": "other"}, format="json")
    assert second.status_code == 200
    assert second.json() == first.json()
    assert LedgerPosting.objects.filter(account="revoked").count() == 4
    listed = ops.get(URL).json()
    assert [r["customer_id"] for r in listed["results"]] == [2]


def test_later_runs_never_issue_to_revoked_customers(campaign, ops):
    assert ops.post(URL, {"customer_id": 4, "reason": "x"}, format="json").status_code == 201
    run = services.create_run(campaign=campaign, actor="alice", dry_run_only=False)
    services.approve_run(run_id=run.pk, actor="bob")
    drive(run.pk)
    assert not Voucher.objects.filter(registry_customer_id=4).exists()
    assert Voucher.objects.filter(registry_customer_id=5).count() == 4


@pytest.mark.parametrize("body", [{}, {"customer_id": -1, "reason": "x"},
                                  {"customer_id": "abc", "reason": "x"}, {"customer_id": 1}])
def test_bad_bodies_are_refused(issued, ops, body):
    response = ops.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_only_operations_may_revoke(issued, role_client):
    assert role_client("support").post(URL, {"customer_id": 1, "reason": "x"},
                                       format="json").status_code == 403


def test_a_hold_voided_after_revocation_puts_nothing_back(issued, ops):
    voucher = Voucher.objects.get(registry_customer_id=1, category="eats")
    hold = redemptions.create_redemption(
        voucher_id=voucher.pk, customer_id=1, order_id="o-1", amount_krw=5_000,
        order_total_krw=5_000, merchant_category="eats", capture=False, actor="checkout")
    assert ops.post(URL, {"customer_id": 1, "reason": "invalid"}, format="json"
                    ).status_code == 201
    redemptions.void_redemption(redemption_id=hold.pk, actor="checkout")
    voucher.refresh_from_db()
    assert (voucher.status, voucher.balance_krw) == ("revoked", 0)
    held_back = LedgerPosting.objects.filter(account="revoked", voucher_id=voucher.pk)
    assert sum(p.amount_krw for p in held_back) == -5_000
    assert verify_ledger(campaign_id=issued.pk).ok
