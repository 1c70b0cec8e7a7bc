"""The role matrix: every endpoint, called by every kind of principal, answers exactly the
status written here. The endpoint list comes from the OpenAPI document, so an endpoint
added without an entry here fails ``test_every_endpoint_has_an_entry``.

Principals: no token, each staff role, a customer who owns the objects in the URL and
another customer. Within one endpoint the principals call in ``PRINCIPALS`` order, the
refused ones first, so a write by an allowed principal cannot change what the others see.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import pytest
from drf_spectacular.generators import SchemaGenerator

from vouchers.appeals.services import file_appeal
from vouchers.eligibility.selectors import campaign_facts
from vouchers.identifiers import public_voucher_id
from vouchers.issuance import services as issuance
from vouchers.issuance.chunk import issue_chunk
from vouchers.models import Exclusion, Voucher
from vouchers.redemption import services as redemptions

PRINCIPALS = ("anonymous", "other_customer", "operations", "finance", "support", "checkout",
              "identity", "owner")
STAFF = ("operations", "finance", "support", "checkout", "identity")
OWNER_ID, OTHER_ID = 3, 4


def staff(**allowed: int) -> dict[str, int]:
    """A staff endpoint: the given roles get the given status, no token 401, others 403."""
    return {p: 401 if p == "anonymous" else allowed.get(p, 403) for p in PRINCIPALS}


def customer(*, owner: int, other: int) -> dict[str, int]:
    """A customer endpoint: staff 403, no token 401; the owner and another customer as given."""
    expected = {p: 403 for p in STAFF}
    return {**expected, "anonymous": 401, "owner": owner, "other_customer": other}


@dataclass(frozen=True)
class Call:
    url: str  # formatted with the world's ids
    expected: dict[str, int]
    body: dict = field(default_factory=dict)


MATRIX: dict[str, Call] = {
    # Issuance (operations)
    "GET /api/v1/campaigns/{slug}/issuance-runs": Call(
        "/api/v1/campaigns/{slug}/issuance-runs", staff(operations=200)),
    "POST /api/v1/campaigns/{slug}/issuance-runs": Call(
        "/api/v1/campaigns/{slug}/issuance-runs", staff(operations=201), {"dry_run": True}),
    "GET /api/v1/issuance-runs/{run_id}": Call(
        "/api/v1/issuance-runs/{pending_run}", staff(operations=200)),
    "POST /api/v1/issuance-runs/{run_id}/approve": Call(
        "/api/v1/issuance-runs/{pending_run}/approve", staff(operations=200)),
    "POST /api/v1/issuance-runs/{run_id}/pause": Call(
        "/api/v1/issuance-runs/{queued_run}/pause", staff(operations=200)),
    "POST /api/v1/issuance-runs/{run_id}/resume": Call(
        "/api/v1/issuance-runs/{paused_run}/resume", staff(operations=200)),
    "POST /api/v1/issuance-runs/{run_id}/cancel": Call(
        "/api/v1/issuance-runs/{queued_run}/cancel", staff(operations=200)),
    "GET /api/v1/campaigns/{slug}/revocations": Call(
        "/api/v1/campaigns/{slug}/revocations", staff(operations=200)),
    "POST /api/v1/campaigns/{slug}/revocations": Call(
        "/api/v1/campaigns/{slug}/revocations", staff(operations=201),
        {"customer_id": 9, "reason": "invalid account"}),
    # Finance (read-only)
    "GET /api/v1/finance/summary": Call(
        "/api/v1/finance/summary?campaign={slug}", staff(finance=200)),
    "GET /api/v1/finance/reconciliation": Call(
        "/api/v1/finance/reconciliation?campaign={slug}", staff(finance=200)),
    "GET /api/v1/finance/redemptions": Call(
        "/api/v1/finance/redemptions?campaign={slug}", staff(finance=200)),
    "GET /api/v1/finance/redemptions/export": Call(
        "/api/v1/finance/redemptions/export?campaign={slug}", staff(finance=200)),
    "GET /api/v1/audit-events": Call("/api/v1/audit-events", staff(finance=200, operations=200)),
    # Campaigns (operations write; finance and support read)
    "GET /api/v1/campaigns": Call(
        "/api/v1/campaigns", staff(operations=200, finance=200, support=200)),
    "POST /api/v1/campaigns": Call(
        "/api/v1/campaigns", staff(operations=201),
        {"slug": "matrix-2", "name": "Another", "eligibility_opens_at": "2027-01-15T09:00:00+09:00",
         "components": [{"category": "all", "amount_krw": 50_000, "valid_days": 90}]}),
    "GET /api/v1/campaigns/{slug}": Call(
        "/api/v1/campaigns/{slug}", staff(operations=200, finance=200, support=200)),
    "GET /api/v1/campaigns/{slug}/exclusions": Call(
        "/api/v1/campaigns/{slug}/exclusions", staff(operations=200)),
    "POST /api/v1/campaigns/{slug}/exclusions": Call(
        "/api/v1/campaigns/{slug}/exclusions", staff(operations=201),
        {"customer_id": 8, "reason": "duplicate account"}),
    "POST /api/v1/campaigns/{slug}/exclusions/{exclusion_id}/lift": Call(
        "/api/v1/campaigns/{slug}/exclusions/{exclusion}/lift", staff(operations=200)),
    # Customers: their own eligibility, vouchers and claims
    "GET /api/v1/campaigns/{slug}/eligibility": Call(
        "/api/v1/campaigns/{slug}/eligibility", customer(owner=200, other=200)),
    "GET /api/v1/me/vouchers": Call("/api/v1/me/vouchers", customer(owner=200, other=200)),
    "GET /api/v1/me/vouchers/{voucher_id}": Call(
        "/api/v1/me/vouchers/{owner_voucher}", customer(owner=200, other=404)),
    "POST /api/v1/claims/closed-account": Call(
        "/api/v1/claims/closed-account", customer(owner=202, other=202),
        {"campaign": "{slug}", "phone": "010-2222-3333"}),
    "POST /api/v1/claims/closed-account/{challenge_id}/confirm": Call(
        "/api/v1/claims/closed-account/{challenge}/confirm", customer(owner=400, other=404),
        {"code": "000000"}),
    # Appeals: customers file (both are in the registry: 409 already_eligible) and read
    # their own; operations decide; support reads the queue
    "POST /api/v1/campaigns/{slug}/appeals": Call(
        "/api/v1/campaigns/{slug}/appeals", customer(owner=409, other=409),
        {"reason": "My account was in the leak."}),
    "GET /api/v1/me/appeals": Call("/api/v1/me/appeals", customer(owner=200, other=200)),
    "GET /api/v1/appeals": Call("/api/v1/appeals", staff(operations=200, support=200)),
    "POST /api/v1/appeals/{appeal_id}/accept": Call(
        "/api/v1/appeals/{appeal}/accept", staff(operations=200), {"account_status": "active"}),
    "POST /api/v1/appeals/{appeal_id}/reject": Call(
        "/api/v1/appeals/{appeal}/reject", staff(operations=200), {"reason": "Not affected."}),
    # Identity and support
    "POST /api/v1/accounts/rejoined": Call(
        "/api/v1/accounts/rejoined", staff(identity=202),
        {"customer_id": 77, "phone": "010-2222-3333"}),
    "GET /api/v1/support/customers/{customer_id}": Call(
        "/api/v1/support/customers/{owner_id}", staff(support=200)),
    # Redemptions (checkout; finance may read one)
    "POST /api/v1/redemptions": Call(
        "/api/v1/redemptions", staff(checkout=201),
        {"voucher_id": "{voucher}", "customer_id": 2, "order_id": "o-1", "amount_krw": 1_000,
         "order_total_krw": 1_000, "merchant_category": "eats", "capture": True}),
    "GET /api/v1/redemptions/{redemption_id}": Call(
        "/api/v1/redemptions/{captured_redemption}", staff(checkout=200, finance=200)),
    "POST /api/v1/redemptions/{redemption_id}/capture": Call(
        "/api/v1/redemptions/{held_redemption}/capture", staff(checkout=200)),
    "POST /api/v1/redemptions/{redemption_id}/void": Call(
        "/api/v1/redemptions/{held_redemption}/void", staff(checkout=200)),
    "POST /api/v1/redemptions/{redemption_id}/refund": Call(
        "/api/v1/redemptions/{captured_redemption}/refund", staff(checkout=200),
        {"amount_krw": 500}),
}


def schema_operations() -> set[str]:
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}


def test_every_endpoint_has_an_entry():
    operations = schema_operations()
    assert sorted(operations - MATRIX.keys()) == [], "endpoints without a role-matrix entry"
    assert sorted(MATRIX.keys() - operations) == [], "entries for endpoints that do not exist"


@pytest.fixture
def world(make_campaign, load_registry, make_principal, client_for, customer_client):
    """One campaign with issued vouchers and runs in each state, and a client per principal."""
    campaign = make_campaign(slug="matrix")
    load_registry(campaign, {cid: "closed" if cid == 9 else "active" for cid in range(1, 11)})
    issue_chunk(campaign_id=campaign.pk, lo=1, hi=11, run_id=None, chunk_id=None)

    def run(*steps) -> str:
        created = issuance.create_run(campaign=campaign, actor="creator", dry_run_only=False)
        for step in steps:
            step(run_id=created.pk, actor="approver")
        return str(created.pk)

    def redemption(customer_id: int, *, capture: bool) -> str:
        voucher = Voucher.objects.get(campaign=campaign, customer_id=customer_id)
        return str(redemptions.create_redemption(
            voucher_id=voucher.pk, customer_id=customer_id, order_id="o", amount_krw=1_000,
            order_total_krw=1_000, merchant_category="eats", capture=capture,
            actor="checkout").pk)

    ids = {
        "slug": campaign.slug,
        "pending_run": run(),
        "queued_run": run(issuance.approve_run),
        "paused_run": run(issuance.approve_run, issuance.pause_run),
        "voucher": public_voucher_id(Voucher.objects.get(campaign=campaign, customer_id=2).pk),
        "held_redemption": redemption(1, capture=False),
        "captured_redemption": redemption(1, capture=True),
        "owner_voucher": public_voucher_id(
            Voucher.objects.get(campaign=campaign, customer_id=OWNER_ID).pk),
        "owner_id": OWNER_ID,
        "exclusion": Exclusion.objects.create(campaign=campaign, customer_id=7, reason="test",
                                              created_by="test").pk,
        "appeal": file_appeal(campaign=campaign_facts(campaign.slug), customer_id=50,
                              reason="Missing from the registry.", actor="customer:50").pk,
    }
    clients = {"anonymous": client_for(None), "owner": customer_client(OWNER_ID),
               "other_customer": customer_client(OTHER_ID)}
    clients.update({role: client_for(make_principal(role)[1]) for role in STAFF})
    started = clients["owner"].post("/api/v1/claims/closed-account",
                                    {"campaign": campaign.slug, "phone": "010-2222-3333"},
                                    format="json")
    ids["challenge"] = started.json()["challenge_id"]
    return ids, clients


@pytest.mark.django_db
@pytest.mark.parametrize("operation", sorted(MATRIX))
def test_role_matrix(operation, world):
    ids, clients = world
    method, _ = operation.split(" ", 1)
    call = MATRIX[operation]
    url = call.url.format(**ids)
    got = {}
    for principal in PRINCIPALS:
        client = clients[principal]
        if method == "GET":
            response = client.get(url)
        else:
            body = {k: v.format(**ids) if isinstance(v, str) else v for k, v in call.body.items()}
            response = client.generic(method, url, data=json.dumps(body),
                                      content_type="application/json",
                                      HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)
        got[principal] = response.status_code
    assert got == call.expected
