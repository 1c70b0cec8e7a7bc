"""Reading appeals: a customer their own only; operations and support the queue, with
filters and cursor pages; nobody else."""

from __future__ import annotations

import pytest

from tests.appeals.conftest import APPELLANT, OTHER_APPELLANT, decide_url, file

pytestmark = pytest.mark.django_db
QUEUE, MINE = "/api/v1/appeals", "/api/v1/me/appeals"


@pytest.fixture
def queue(campaign, make_campaign, customer_client, ops) -> dict[str, list[str]]:
    """Appeal ids by (campaign, status), in filing order: in ``breach`` customers 600..604
    open, 605 accepted, 606 rejected; in ``second`` 600 open."""
    make_campaign(slug="second")
    ids: dict[str, list[str]] = {}
    for customer_id in range(600, 607):
        ids.setdefault("breach", []).append(file(customer_client(customer_id)).json()["id"])
    ops.post(decide_url(ids["breach"][5], "accept"), {"account_status": "active"},
             format="json")
    ops.post(decide_url(ids["breach"][6], "reject"), {"reason": "Not affected."},
             format="json")
    ids["second"] = [file(customer_client(600), slug="second").json()["id"]]
    return ids


def pages(client, url: str, **params) -> list[list[dict]]:
    """Every page, following ``next``."""
    found = []
    response = client.get(url, params)
    while True:
        assert response.status_code == 200, response.json()
        body = response.json()
        assert set(body) == {"results", "next"}
        found.append(body["results"])
        if body["next"] is None:
            return found
        response = client.get(body["next"])


def test_the_queue_filters_by_campaign_status_and_customer(queue, ops):
    breach = queue["breach"]
    everything = [a["id"] for page in pages(ops, QUEUE) for a in page]
    assert everything == [*breach, *queue["second"]]  # oldest first
    open_breach = pages(ops, QUEUE, campaign="breach", status="open")
    assert [a["id"] for a in open_breach[0]] == breach[:5]
    assert [a["id"] for a in pages(ops, QUEUE, status="accepted")[0]] == [breach[5]]
    rejected = pages(ops, QUEUE, status="rejected")[0]
    assert [(a["id"], a["decision_reason"]) for a in rejected] == [(breach[6], "Not affected.")]
    assert [a["id"] for a in pages(ops, QUEUE, customer_id=600)[0]] == [
        breach[0], queue["second"][0]]
    first = open_breach[0][0]
    assert set(first) == {"id", "campaign", "status", "reason", "created_at",
                          "decision_reason", "decided_at", "customer_id", "account_status",
                          "note", "decided_by"}
    assert (first["customer_id"], first["account_status"], first["decided_by"]) == (
        600, None, "")


def test_the_queue_pages_with_a_cursor(queue, ops):
    paged = pages(ops, QUEUE, page_size=2)
    assert [len(page) for page in paged] == [2, 2, 2, 2]
    assert [a["id"] for page in paged for a in page] == [*queue["breach"], *queue["second"]]


@pytest.mark.parametrize(("params", "code"), [
    ({"state": "open"}, "unknown_query_parameter"),
    ({"status": "pending"}, "validation_error"),
    ({"status": ""}, None),  # an empty parameter filters nothing, as on every list
    ({"campaign": "not a slug"}, "validation_error"),
    ({"customer_id": "abc"}, "validation_error"),
    ({"customer_id": "0"}, "validation_error"),
    ({"page_size": "x"}, None),  # DRF falls back to the default size
    ({"campaign": "nope"}, "campaign_not_found"),
    ({"cursor": "garbage"}, "not_found"),
])
def test_bad_queue_queries_are_4xx_problems(queue, ops, params, code):
    response = ops.get(QUEUE, params)
    if code is None:
        assert response.status_code == 200
        return
    assert 400 <= response.status_code < 500
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_support_reads_the_queue_finance_and_others_do_not(queue, role_client,
                                                         customer_client, client):
    assert len(role_client("support").get(QUEUE).json()["results"]) == 8
    for role in ("finance", "checkout", "identity"):
        assert role_client(role).get(QUEUE).status_code == 403
    assert customer_client(600).get(QUEUE).status_code == 403
    assert client.get(QUEUE).status_code == 401


def test_a_customer_sees_their_own_appeals_and_nobody_elses(queue, customer_client):
    mine = pages(customer_client(600), MINE)[0]
    assert [a["id"] for a in mine] == [queue["breach"][0], queue["second"][0]]
    assert all("customer_id" not in a and "note" not in a for a in mine)
    accepted = pages(customer_client(605), MINE)[0]
    assert [(a["status"], a["decision_reason"]) for a in accepted] == [("accepted", None)]
    assert pages(customer_client(APPELLANT), MINE) == [[]]
    filtered = pages(customer_client(600), MINE, campaign="second", status="open")[0]
    assert [a["id"] for a in filtered] == queue["second"]
    other = customer_client(OTHER_APPELLANT)
    assert other.get(MINE, {"customer_id": 600}).json()["code"] == "unknown_query_parameter"


@pytest.mark.parametrize("role", ["operations", "support", "finance"])
def test_staff_have_no_own_appeals(campaign, role_client, role):
    assert role_client(role).get(MINE).status_code == 403
