"""GET /me/vouchers and /me/vouchers/{id}: own vouchers only, cursor pages, 404s."""

from __future__ import annotations

import pytest

from tests.eligibility.conftest import ACTIVE, DORMANT
from vouchers.identifiers import public_voucher_id
from vouchers.models import Voucher

pytestmark = pytest.mark.django_db
URL = "/api/v1/me/vouchers"


def _ids(customer_id: int) -> list[str]:
    return [public_voucher_id(pk) for pk in
            Voucher.objects.filter(customer_id=customer_id).order_by("-pk")
            .values_list("pk", flat=True)]


def test_pages_through_own_vouchers_newest_first(issued, customer_client):
    client = customer_client(ACTIVE)
    first = client.get(URL, {"page_size": 1})
    assert first.status_code == 200
    body = first.json()
    assert len(body["results"]) == 1 and body["next"]
    second = client.get(body["next"]).json()
    assert second["next"] is None
    assert [v["id"] for v in body["results"] + second["results"]] == _ids(ACTIVE)
    assert set(second["results"][0]) == {
        "id", "campaign", "category", "amount_krw", "balance_krw", "single_use",
        "min_order_krw", "status", "issued_at", "expires_at", "code_last4"}


def test_filters_and_unknown_parameters(issued, customer_client):
    client = customer_client(ACTIVE)
    assert len(client.get(URL, {"status": "active", "campaign": "breach"}).json()["results"]) == 2
    assert client.get(URL, {"status": "expired"}).json()["results"] == []
    assert client.get(URL, {"status": "bogus"}).status_code == 400
    unknown = client.get(URL, {"customer_id": DORMANT})
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_query_parameter"


def test_a_customer_without_vouchers_gets_an_empty_page(issued, customer_client):
    assert customer_client(424242).get(URL).json() == {"results": [], "next": None}


def test_one_voucher_is_shown_to_its_holder_only(issued, customer_client):
    voucher_id = _ids(ACTIVE)[0]
    mine = customer_client(ACTIVE).get(f"{URL}/{voucher_id}")
    assert mine.status_code == 200 and mine.json()["id"] == voucher_id
    theirs = customer_client(DORMANT).get(f"{URL}/{voucher_id}")
    assert theirs.status_code == 404
    assert theirs.json()["code"] == "voucher_not_found"


@pytest.mark.parametrize("bad_id", ["nope", "vch_", "vch_0000000000000", "vch_ZZZZZZZZZZZZZZ",
                                    "123"])
def test_a_malformed_id_is_404(issued, customer_client, bad_id):
    response = customer_client(ACTIVE).get(f"{URL}/{bad_id}")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_customers_only(issued, role_client, client):
    assert client.get(URL).status_code == 401
    assert role_client("checkout").get(URL).status_code == 403
