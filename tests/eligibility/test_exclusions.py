"""Exclusions by operations: audited, one in force per customer, reversible, seen by issuance."""

from __future__ import annotations

import threading

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from voucher_service.models import AuditEvent
from vouchers.eligibility.cache import FENCE, answer_key
from vouchers.issuance.chunk import issue_chunk
from vouchers.models import Campaign, Exclusion, Voucher

pytestmark = pytest.mark.django_db
URL = "/api/v1/campaigns/breach/exclusions"


@pytest.fixture
def campaign(make_campaign, load_registry) -> Campaign:
    campaign = make_campaign(slug="breach")
    load_registry(campaign, {1: "active", 2: "dormant", 3: "closed"})
    return campaign


@pytest.fixture
def ops(role_client):
    return role_client("operations")


def exclude(client, customer_id: int = 1, reason: str = "duplicate account"):
    return client.post(URL, {"customer_id": customer_id, "reason": reason}, format="json")


def lift(client, exclusion_id: int, **body):
    return client.post(f"{URL}/{exclusion_id}/lift", body, format="json")


def test_excluding_a_customer_is_audited_and_fences_their_cached_answer(
        campaign, ops, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = exclude(ops)
    assert response.status_code == 201
    body = response.json()
    assert (body["campaign"], body["customer_id"], body["reason"], body["in_force"]) == \
        ("breach", 1, "duplicate account", True)
    assert body["created_by"] == ops.principal.audit_name and body["lifted_at"] is None
    event = AuditEvent.objects.get(action="exclusion.created")
    assert (event.target_id, event.actor) == (str(body["id"]), ops.principal.audit_name)
    assert event.payload == {"campaign": "breach", "customer_id": 1,
                             "reason": "duplicate account"}
    assert cache.get(answer_key("breach", 1)) == FENCE


def test_excluding_again_returns_the_exclusion_in_force(campaign, ops):
    first = exclude(ops).json()
    again = exclude(ops, reason="another reason")
    assert again.status_code == 200
    assert again.json() == first
    assert Exclusion.objects.count() == 1
    assert AuditEvent.objects.filter(action="exclusion.created").count() == 1


def test_lifting_ends_it_and_keeps_it_as_history(campaign, ops):
    created = exclude(ops).json()
    response = lift(ops, created["id"], reason="verified by phone")
    assert response.status_code == 200
    lifted = response.json()
    assert lifted["in_force"] is False and lifted["lifted_by"] == ops.principal.audit_name
    assert lifted["lifted_at"] is not None
    event = AuditEvent.objects.get(action="exclusion.lifted")
    assert event.payload["reason"] == "verified by phone"
    again = lift(ops, created["id"])
    assert again.status_code == 409 and again.json()["code"] == "exclusion_lifted"
    renewed = exclude(ops)
    assert renewed.status_code == 201 and renewed.json()["id"] != created["id"]
    listed = ops.get(URL).json()["results"]
    assert [(e["id"], e["in_force"]) for e in listed] == \
        [(renewed.json()["id"], True), (created["id"], False)]
    in_force = ops.get(URL, {"in_force": "true"}).json()["results"]
    assert [e["id"] for e in in_force] == [renewed.json()["id"]]
    assert ops.get(URL, {"in_force": "false", "customer_id": 1}).json()["results"][0]["id"] \
        == created["id"]


def test_issuance_skips_an_excluded_customer_until_lifted(campaign, ops):
    exclusion = exclude(ops, customer_id=2).json()
    issue_chunk(campaign_id=campaign.pk, lo=1, hi=10, run_id=None, chunk_id=None)
    assert set(Voucher.objects.values_list("registry_customer_id", flat=True)) == {1, 3}
    lift(ops, exclusion["id"])
    issue_chunk(campaign_id=campaign.pk, lo=1, hi=10, run_id=None, chunk_id=None)
    assert set(Voucher.objects.values_list("registry_customer_id", flat=True)) == {1, 2, 3}


def test_excluding_leaves_issued_vouchers_alone(campaign, ops):
    issue_chunk(campaign_id=campaign.pk, lo=1, hi=10, run_id=None, chunk_id=None)
    before = list(Voucher.objects.filter(registry_customer_id=1).values())
    assert exclude(ops).status_code == 201
    assert list(Voucher.objects.filter(registry_customer_id=1).values()) == before


@pytest.mark.parametrize("payload", [
    {"customer_id": 0, "reason": "x"},
    {"customer_id": -1, "reason": "x"},
    {"customer_id": "1", "reason": "x"},
    {"customer_id": 1.0, "reason": "x"},
    {"customer_id": 2**63, "reason": "x"},
    {"customer_id": 1, "reason": ""},
    {"customer_id": 1, "reason": 5},
    {"customer_id": 1, "reason": "x" * 501},
    {"customer_id": 1},
    {"reason": "x"},
])
def test_invalid_requests_are_400_and_change_nothing(campaign, ops, payload):
    response = ops.post(URL, payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert not Exclusion.objects.exists()


def test_unknown_campaign_and_exclusion_are_404(campaign, ops, make_campaign):
    assert ops.post("/api/v1/campaigns/nope/exclusions", {"customer_id": 1, "reason": "x"},
                    format="json").json()["code"] == "campaign_not_found"
    assert lift(ops, 999).json()["code"] == "exclusion_not_found"
    other = make_campaign(slug="other")
    foreign = Exclusion.objects.create(campaign=other, customer_id=1, reason="x",
                                       created_by="t")
    response = lift(ops, foreign.pk)
    assert response.status_code == 404
    assert Exclusion.objects.get(pk=foreign.pk).lifted_at is None


def test_unknown_query_parameters_are_400(campaign, ops):
    assert ops.get(URL, {"reason": "x"}).json()["code"] == "unknown_query_parameter"
    assert ops.get(URL, {"customer_id": "abc"}).status_code == 400


@pytest.mark.parametrize("role", ["finance", "support", "checkout", "identity"])
def test_only_operations_exclude_list_or_lift(campaign, role_client, role):
    exclusion = Exclusion.objects.create(campaign=campaign, customer_id=1, reason="x",
                                         created_by="t")
    client = role_client(role)
    assert exclude(client, customer_id=2).status_code == 403
    assert client.get(URL).status_code == 403
    assert lift(client, exclusion.pk).status_code == 403
    assert Exclusion.objects.get().lifted_at is None


def test_customers_get_403_and_no_token_401(campaign, customer_client, client):
    assert exclude(customer_client(1)).status_code == 403
    assert customer_client(1).get(URL).status_code == 403
    assert exclude(client).status_code == 401
    assert not Exclusion.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_exclusions_of_one_customer_make_one(make_campaign, make_principal):
    campaign = make_campaign(slug="breach")
    _, token = make_principal("operations")
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def post() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            barrier.wait()
            statuses.append(exclude(client, customer_id=7).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 5 + [201]
    assert Exclusion.objects.filter(campaign=campaign, customer_id=7).count() == 1
    assert AuditEvent.objects.filter(action="exclusion.created").count() == 1
