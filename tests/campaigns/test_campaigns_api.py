"""Campaigns over HTTP: creation by operations (validated, audited), reads by three roles."""

from __future__ import annotations

import datetime as dt

import pytest

from voucher_service.models import AuditEvent
from vouchers.models import Campaign, Component

pytestmark = pytest.mark.django_db
URL = "/api/v1/campaigns"
OPENS = "2026-01-15T09:00:00+09:00"
UNTIL = "2026-04-30T23:59:59+09:00"
FOUR = [
    {"category": "all", "amount_krw": 5_000, "expires_at": UNTIL, "single_use": True},
    {"category": "eats", "amount_krw": 5_000, "expires_at": UNTIL, "single_use": True},
    {"category": "travel", "amount_krw": 20_000, "expires_at": UNTIL, "single_use": True,
     "min_order_krw": 40_000},
    {"category": "luxury", "amount_krw": 20_000, "expires_at": UNTIL, "single_use": True},
]


def body(**overrides) -> dict:
    return {"slug": "breach-2026", "name": "Breach compensation", "eligibility_opens_at": OPENS,
            "components": FOUR, **overrides}


@pytest.fixture
def ops(role_client):
    return role_client("operations")


def test_operations_create_the_four_voucher_programme(ops):
    response = ops.post(URL, body(), format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert response["Location"] == "/api/v1/campaigns/breach-2026"
    assert (created["slug"], created["amount_krw"]) == ("breach-2026", 50_000)
    assert dt.datetime.fromisoformat(created["eligibility_opens_at"]) == \
        dt.datetime.fromisoformat(OPENS)
    travel = next(c for c in created["components"] if c["category"] == "travel")
    assert travel["min_order_krw"] == 40_000 and travel["single_use"] is True
    assert travel["valid_days"] is None
    assert dt.datetime.fromisoformat(travel["expires_at"]) == dt.datetime.fromisoformat(UNTIL)
    assert created["created_by"] == ops.principal.audit_name
    assert Component.objects.filter(campaign__slug="breach-2026").count() == 4
    event = AuditEvent.objects.get(action="campaign.created")
    assert (event.actor, event.target_id) == (ops.principal.audit_name, "breach-2026")
    assert [c["category"] for c in event.payload["components"]] == \
        ["all", "eats", "travel", "luxury"]


def test_without_components_one_all_50000_voucher_is_owed(ops):
    response = ops.post(URL, body(components=None) | {"components": []}, format="json")
    assert response.status_code == 400  # an empty list is a mistake, not "the default"
    payload = body()
    del payload["components"]
    created = ops.post(URL, payload, format="json").json()
    assert created["components"] == [{
        "category": "all", "amount_krw": 50_000, "expires_at": None, "valid_days": 90,
        "valid_from": None, "min_order_krw": 0, "single_use": False}]


def test_valid_days_instead_of_a_fixed_date(ops):
    response = ops.post(URL, body(components=[
        {"category": "all", "amount_krw": 30_000, "valid_days": 60}]), format="json")
    assert response.status_code == 201
    assert response.json()["components"][0]["valid_days"] == 60


def test_a_taken_slug_is_409(ops):
    assert ops.post(URL, body(), format="json").status_code == 201
    response = ops.post(URL, body(name="again"), format="json")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "campaign_exists"
    assert Campaign.objects.get().name == "Breach compensation"
    assert AuditEvent.objects.filter(action="campaign.created").count() == 1


def _component(**overrides) -> list[dict]:
    return [{"category": "all", "amount_krw": 50_000, "valid_days": 90, **overrides}]


@pytest.mark.parametrize(("payload", "field"), [
    (body(slug="Has Spaces"), "slug"),
    (body(slug=""), "slug"),
    (body(slug=12), "slug"),
    (body(name=""), "name"),
    (body(eligibility_opens_at="2026-01-15T09:00:00"), "eligibility_opens_at"),
    (body(eligibility_opens_at="soon"), "eligibility_opens_at"),
    (body(components="all:50000"), "components"),
    (body(components=_component(amount_krw=0)), "components.0.amount_krw"),
    (body(components=_component(amount_krw=-5)), "components.0.amount_krw"),
    (body(components=_component(amount_krw="50000")), "components.0.amount_krw"),
    (body(components=_component(amount_krw=50000.0)), "components.0.amount_krw"),
    (body(components=_component(min_order_krw=-1)), "components.0.min_order_krw"),
    (body(components=_component(single_use="yes")), "components.0.single_use"),
    (body(components=_component(category="Travel!")), "components.0.category"),
    (body(components=_component(valid_days=0)), "components.0.valid_days"),
    (body(components=_component(expires_at=UNTIL)), "components.0.expires_at"),
    (body(components=_component(valid_days=None)), "components.0.expires_at"),
    (body(components=[{"category": "all", "amount_krw": 1, "expires_at": OPENS}]),
     "components.0.expires_at"),
    (body(components=[*FOUR, FOUR[0]]), "components"),
    (body(components=[*FOUR[:1], {"category": "eats"}]), "components.1.amount_krw"),
])
def test_invalid_fields_are_400_and_named(ops, payload, field):
    response = ops.post(URL, payload, format="json")
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert field in problem["errors"], problem["errors"]
    assert all(isinstance(m, str) for msgs in problem["errors"].values() for m in msgs)
    assert not Campaign.objects.exists()


def test_malformed_json_is_400(ops):
    response = ops.post(URL, "{nope", content_type="application/json")
    assert response.status_code == 400
    assert not Campaign.objects.exists()


@pytest.mark.parametrize("role", ["finance", "support", "checkout", "identity"])
def test_only_operations_create(role_client, role):
    response = role_client(role).post(URL, body(), format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert not Campaign.objects.exists()


def test_customers_may_neither_create_nor_list(customer_client, make_campaign):
    make_campaign(slug="breach")
    customer = customer_client(42)
    assert customer.post(URL, body(), format="json").status_code == 403
    assert customer.get(URL).status_code == 403
    assert customer.get(f"{URL}/breach").status_code == 403


def test_no_token_is_401(client):
    assert client.get(URL).status_code == 401


@pytest.mark.parametrize("role", ["operations", "finance", "support"])
def test_readers_list_newest_first_and_get_one(role_client, make_campaign, role):
    for slug in ("first", "second", "third"):
        make_campaign(slug=slug)
    reader = role_client(role)
    page = reader.get(URL, {"page_size": 2}).json()
    assert [c["slug"] for c in page["results"]] == ["third", "second"]
    rest = reader.get(page["next"]).json()
    assert [c["slug"] for c in rest["results"]] == ["first"] and rest["next"] is None
    one = reader.get(f"{URL}/second").json()
    assert (one["slug"], one["amount_krw"], len(one["components"])) == ("second", 50_000, 1)


def test_unknown_campaign_is_404(ops):
    response = ops.get(f"{URL}/nope")
    assert response.status_code == 404
    assert response.json()["code"] == "campaign_not_found"


def test_unknown_query_parameters_are_400(ops, make_campaign):
    make_campaign(slug="breach")
    assert ops.get(URL, {"status": "open"}).json()["code"] == "unknown_query_parameter"
    assert ops.get(f"{URL}/breach", {"x": 1}).status_code == 400


@pytest.mark.parametrize("when", ["0570-05-11T23:40:35Z", "2100-01-01T00:00:00Z"])
def test_times_outside_this_century_are_refused(ops, when):
    response = ops.post(URL, body(eligibility_opens_at=when), format="json")
    assert response.status_code == 400
    assert "eligibility_opens_at" in response.json()["errors"]
