"""Redemption fixtures: vouchers issued by issuance's chunk statement, a checkout client.

``shop`` is a campaign with a multi-use ``all`` voucher of 50,000 won and the real
programme's single-use shape (eats 5,000; travel 20,000 from a 40,000 won order), issued
to customers 1 and 2 (active) and 3 (closed: unclaimed).
"""

from __future__ import annotations

import uuid

import pytest

from vouchers.identifiers import public_voucher_id
from vouchers.issuance.chunk import issue_chunk
from vouchers.models import Campaign, Voucher

COMPONENTS = [
    {"category": "all", "amount_krw": 50_000},
    {"category": "eats", "amount_krw": 5_000, "single_use": True},
    {"category": "travel", "amount_krw": 20_000, "single_use": True, "min_order_krw": 40_000},
]
URL = "/api/v1/redemptions"


@pytest.fixture
def shop(make_campaign, load_registry) -> Campaign:
    campaign = make_campaign(slug="shop", components=COMPONENTS)
    load_registry(campaign, {1: "active", 2: "active", 3: "closed"})
    issue_chunk(campaign_id=campaign.pk, lo=1, hi=4, run_id=None, chunk_id=None)
    return campaign


def voucher(customer_id: int, category: str) -> Voucher:
    return Voucher.objects.get(customer_id=customer_id, category=category)


@pytest.fixture
def checkout(role_client):
    return role_client("checkout")


def order(v: Voucher, **overrides) -> dict:
    """A checkout body for voucher ``v``: its whole balance on a matching order."""
    return {
        "voucher_id": public_voucher_id(v.pk), "customer_id": v.customer_id,
        "order_id": f"order-{uuid.uuid4().hex[:8]}", "amount_krw": v.balance_krw,
        "order_total_krw": max(v.balance_krw, v.min_order_krw),
        "merchant_category": "eats" if v.category == "all" else v.category,
        "capture": True, **overrides,
    }


def post(client, url: str, body: dict | None = None, *, key: str | None = None):
    """POSTs JSON with a fresh Idempotency-Key unless one is given."""
    return client.post(url, body or {}, format="json",
                       HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()))


def redeem(client, v: Voucher, *, key: str | None = None, **overrides):
    return post(client, URL, order(v, **overrides), key=key)


def step(client, redemption_id: str, action: str, body: dict | None = None, **kwargs):
    return post(client, f"{URL}/{redemption_id}/{action}", body, **kwargs)
