"""Appeals fixtures: a campaign whose registry knows some customers, clients, helpers.

``issue`` (an approved run driven to the end, after-commit hooks run) comes from the
eligibility fixtures."""

from __future__ import annotations

import pytest

from tests.eligibility.conftest import issue  # noqa: F401  (a fixture used here)
from vouchers.models import Campaign

REGISTERED, APPELLANT, OTHER_APPELLANT = 11, 501, 502
REASON = "My account was in the leak but the app says I am not eligible."


def file_url(slug: str = "breach") -> str:
    return f"/api/v1/campaigns/{slug}/appeals"


def decide_url(appeal_id: str, decision: str) -> str:
    return f"/api/v1/appeals/{appeal_id}/{decision}"


def file(client, reason: str = REASON, slug: str = "breach"):
    return client.post(file_url(slug), {"reason": reason}, format="json")


@pytest.fixture
def campaign(make_campaign, load_registry) -> Campaign:
    campaign = make_campaign(slug="breach", components=[
        {"category": "all", "amount_krw": 30_000},
        {"category": "eats", "amount_krw": 20_000, "single_use": True},
    ])
    load_registry(campaign, {REGISTERED: "active", 12: "closed"})
    return campaign


@pytest.fixture
def ops(role_client):
    return role_client("operations")


@pytest.fixture
def filed(campaign, customer_client) -> dict:
    """An open appeal of ``APPELLANT``, as the API answered its filing."""
    response = file(customer_client(APPELLANT))
    assert response.status_code == 201
    return response.json()
