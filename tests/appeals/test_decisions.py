"""Deciding appeals: acceptance makes a late registry addition that the eligibility check
shows at once and the next run issues; rejection gives the customer its reason; an appeal
is decided once."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.cache import cache

from tests.appeals.conftest import APPELLANT, decide_url
from voucher_service.models import AuditEvent
from vouchers.appeals.models import Appeal
from vouchers.eligibility.cache import answer_key
from vouchers.eligibility.importing import import_registry
from vouchers.models import RegistryEntry, Voucher

pytestmark = pytest.mark.django_db
ELIGIBILITY = "/api/v1/campaigns/breach/eligibility"


def accept(client, appeal_id: str, account_status: str = "active", **body):
    return client.post(decide_url(appeal_id, "accept"),
                       {"account_status": account_status, **body}, format="json")


def reject(client, appeal_id: str, reason: str = "Your account was not in the leaked data."):
    return client.post(decide_url(appeal_id, "reject"), {"reason": reason}, format="json")


def test_accepting_adds_the_customer_and_their_answer_changes_at_once(
        campaign, filed, ops, customer_client, issue, django_capture_on_commit_callbacks):
    appellant = customer_client(APPELLANT)
    before = appellant.get(ELIGIBILITY).json()
    assert (before["eligible"], before["status"]) == (False, "not_eligible")
    assert cache.get(answer_key("breach", APPELLANT)) is not None  # the answer is cached
    with django_capture_on_commit_callbacks(execute=True):
        response = accept(ops, filed["id"], note="Order history matches the leak.")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["account_status"], body["customer_id"]) == (
        filed["id"], "accepted", "active", APPELLANT)
    assert (body["decided_by"], body["note"], body["decision_reason"]) == (
        ops.principal.audit_name, "Order history matches the leak.", None)
    entry = RegistryEntry.objects.get(campaign__slug="breach", customer_id=APPELLANT)
    assert (entry.account_status, entry.account_closed_at, entry.phone_hash) == (
        "active", None, None)
    event = AuditEvent.objects.get(action="appeal.accepted")
    assert (event.target_id, event.actor) == (filed["id"], ops.principal.audit_name)

    now = appellant.get(ELIGIBILITY).json()
    assert (now["eligible"], now["status"], now["account_status"], now["amount_krw"]) == (
        True, "pending_issuance", "active", 50_000)
    issue(campaign)
    issued = appellant.get(ELIGIBILITY).json()
    assert issued["status"] == "issued"
    assert sorted((v["category"], v["status"]) for v in issued["vouchers"]) == [
        ("all", "active"), ("eats", "active")]
    assert Voucher.objects.filter(campaign=campaign).values(
        "registry_customer_id").distinct().count() == 3  # the registry's two and the appellant


def test_a_closed_account_is_closed_at_the_decision_and_issued_unclaimed(filed, ops, issue,
                                                                        customer_client):
    body = accept(ops, filed["id"], "closed").json()
    entry = RegistryEntry.objects.get(customer_id=APPELLANT)
    assert entry.account_closed_at is not None
    assert entry.account_closed_at == Appeal.objects.get().decided_at
    assert body["decided_at"] is not None
    issue(entry.campaign)
    assert set(Voucher.objects.filter(registry_customer_id=APPELLANT)
               .values_list("status", flat=True)) == {"unclaimed"}
    answer = customer_client(APPELLANT).get(ELIGIBILITY).json()
    assert (answer["status"], answer["account_status"]) == ("claimable", "closed")


def test_rejecting_gives_the_customer_the_reason(filed, ops, customer_client):
    response = reject(ops, filed["id"], "We found no account of yours in the leaked data.")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["account_status"]) == ("rejected", None)
    mine = customer_client(APPELLANT).get("/api/v1/me/appeals").json()["results"]
    assert mine == [{**filed, "status": "rejected",
                     "decision_reason": "We found no account of yours in the leaked data.",
                     "decided_at": response.json()["decided_at"]}]
    assert not RegistryEntry.objects.filter(customer_id=APPELLANT).exists()
    event = AuditEvent.objects.get(action="appeal.rejected")
    assert event.payload == {"campaign": "breach", "customer_id": APPELLANT,
                             "decision": "rejected"}


@pytest.mark.parametrize(("first", "second"), [("accept", "accept"), ("accept", "reject"),
                                               ("reject", "reject"), ("reject", "accept")])
def test_deciding_twice_is_409_invalid_transition(filed, ops, first, second):
    decide = {"accept": accept, "reject": reject}
    assert decide[first](ops, filed["id"]).status_code == 200
    decided = Appeal.objects.values().get()
    response = decide[second](ops, filed["id"])
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert Appeal.objects.values().get() == decided
    assert AuditEvent.objects.filter(action__in=["appeal.accepted", "appeal.rejected"]).count() \
        == 1
    assert RegistryEntry.objects.filter(customer_id=APPELLANT).count() == (first == "accept")


def test_a_customer_imported_meanwhile_is_409_already_eligible_and_nothing_changes(
        filed, ops, campaign):
    source = io.BytesIO(b"customer_id,account_status,account_closed_at,phone\n"
                        + f"{APPELLANT},dormant,,\n".encode())
    import_registry(campaign=campaign, source=source, actor="ops-import")
    response = accept(ops, filed["id"])
    assert response.status_code == 409 and response.json()["code"] == "already_eligible"
    assert Appeal.objects.get().status == "open"
    assert RegistryEntry.objects.get(customer_id=APPELLANT).account_status == "dormant"
    assert not AuditEvent.objects.filter(action="appeal.accepted").exists()
    assert reject(ops, filed["id"], "You are in the registry now.").status_code == 200


@pytest.mark.parametrize("body", [
    {},
    {"account_status": "suspended"},
    {"account_status": ""},
    {"account_status": None},
    {"account_status": 1},
    {"account_status": ["active"]},
    {"account_status": "active", "note": 7},
    {"account_status": "active", "note": "x" * 2001},
])
def test_invalid_acceptances_are_400_and_change_nothing(filed, ops, body):
    response = ops.post(decide_url(filed["id"], "accept"), body, format="json")
    assert response.status_code == 400 and response.json()["code"] == "validation_error"
    assert Appeal.objects.get().status == "open"
    assert not RegistryEntry.objects.filter(customer_id=APPELLANT).exists()


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "x" * 2001}, {"reason": 3},
                                  {"reason": None}])
def test_invalid_rejections_are_400_and_change_nothing(filed, ops, body):
    response = ops.post(decide_url(filed["id"], "reject"), body, format="json")
    assert response.status_code == 400 and response.json()["code"] == "validation_error"
    assert Appeal.objects.get().status == "open"


def test_an_unknown_appeal_is_404(campaign, ops):
    for decision, body in (("accept", {"account_status": "active"}), ("reject", {"reason": "x"})):
        response = ops.post(decide_url(str(uuid.uuid4()), decision), body, format="json")
        assert response.status_code == 404 and response.json()["code"] == "appeal_not_found"
        malformed = ops.post(decide_url("apl_123", decision), body, format="json")
        assert malformed.status_code == 404
        assert malformed["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("role", ["support", "finance", "checkout", "identity"])
def test_only_operations_decide(filed, role_client, customer_client, role):
    for client in (role_client(role), customer_client(APPELLANT)):
        assert accept(client, filed["id"]).status_code == 403
        assert reject(client, filed["id"]).status_code == 403
    assert Appeal.objects.get().status == "open"
