"""GET /support/customers/{id}: standing per campaign, vouchers held, claims; audited;
support only; never a phone hash."""

from __future__ import annotations

import pytest

from tests.eligibility.conftest import ACTIVE, AMOUNT, CLOSED_A, CLOSED_B, EXCLUDED, PHONE_B
from voucher_service.models import AuditEvent
from vouchers.models import RegistryEntry

pytestmark = pytest.mark.django_db


def url(customer_id: int) -> str:
    return f"/api/v1/support/customers/{customer_id}"


def test_shows_standing_and_vouchers_and_audits_the_lookup(issued, role_client):
    support = role_client("support")
    before = AuditEvent.objects.count()
    response = support.get(url(ACTIVE))
    assert response.status_code == 200
    body = response.json()
    assert body["customer_id"] == ACTIVE
    [standing] = body["campaigns"]
    assert standing["campaign"] == "breach"
    assert (standing["status"], standing["eligible"], standing["account_status"]) == (
        "issued", True, "active")
    assert (standing["vouchers_issued"], standing["amount_krw"], standing["excluded"]) == (
        2, AMOUNT, False)
    assert len(body["vouchers"]) == 2
    event = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1
    assert (event.actor, event.action, event.target_id) == (
        support.principal.audit_name, "support.customer_viewed", str(ACTIVE))


def test_an_excluded_closed_account_and_an_unknown_customer(issued, role_client):
    support = role_client("support")
    excluded = support.get(url(EXCLUDED)).json()["campaigns"][0]
    assert (excluded["status"], excluded["excluded"], excluded["registered"]) == (
        "not_eligible", True, False)
    closed = support.get(url(CLOSED_A)).json()["campaigns"][0]
    assert closed["status"] == "claimable" and closed["account_closed_at"]
    unknown = support.get(url(77)).json()
    assert unknown["campaigns"][0]["status"] == "not_eligible" and unknown["vouchers"] == []


def test_no_phone_hash_in_the_answer(issued, role_client):
    text = role_client("support").get(url(CLOSED_A)).content.decode()
    phone_hash = bytes(RegistryEntry.objects.get(customer_id=CLOSED_A).phone_hash)
    assert "phone" not in text
    assert phone_hash.hex() not in text


@pytest.mark.parametrize("role", ["operations", "finance", "checkout", "identity"])
def test_other_roles_are_refused_and_not_audited(issued, role_client, role):
    client = role_client(role)
    before = AuditEvent.objects.count()
    response = client.get(url(ACTIVE))
    assert response.status_code == 403
    assert AuditEvent.objects.count() == before


def test_customers_and_anonymous_are_refused(issued, customer_client, client):
    assert customer_client(ACTIVE).get(url(ACTIVE)).status_code == 403
    assert client.get(url(ACTIVE)).status_code == 401


def test_an_out_of_range_id_is_404(issued, role_client):
    assert role_client("support").get(url(2**63)).status_code == 404


def test_claims_show_on_both_sides(issued, role_client):
    role_client("identity").post("/api/v1/accounts/rejoined",
                                 {"customer_id": 9001, "phone": PHONE_B}, format="json")
    support = role_client("support")
    closed = support.get(url(CLOSED_B)).json()
    claimant = support.get(url(9001)).json()
    assert closed["campaigns"][0]["status"] == "claimed" and closed["vouchers"] == []
    assert claimant["campaigns"][0]["status"] == "claimed"
    assert len(claimant["vouchers"]) == 2
    for body in (closed, claimant):
        [claim] = body["campaigns"][0]["claims"]
        assert (claim["registry_customer_id"], claim["customer_id"], claim["via"]) == (
            CLOSED_B, 9001, "rejoined")
