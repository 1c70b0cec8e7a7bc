import datetime as dt

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from voucher_service.audit import record_event
from voucher_service.models import AuditEvent
from voucher_service.sealing import seal_events
from vouchers.issuance.chunk import issue_chunk
from vouchers.models import Exclusion

pytestmark = pytest.mark.django_db

REAL_PROGRAMME = [
    {"category": "all", "amount_krw": 5_000, "single_use": True},
    {"category": "eats", "amount_krw": 5_000, "single_use": True},
    {"category": "travel", "amount_krw": 20_000, "single_use": True, "min_order_krw": 100_000},
    {"category": "luxury", "amount_krw": 20_000, "single_use": True},
]


@pytest.fixture
def finance(role_client):
    return role_client("finance")


@pytest.fixture
def campaign(make_campaign, load_registry):
    campaign = make_campaign(components=REAL_PROGRAMME)
    load_registry(campaign, {1: "active", 2: "dormant", 3: "closed"})
    issue_chunk(campaign_id=campaign.pk, lo=1, hi=10, run_id=None, chunk_id=None)
    return campaign


def _identity_holds(figures: dict) -> bool:
    return figures["issued_krw"] == (
        figures["redeemed_krw"] - figures["refunded_krw"] + figures["authorized_krw"]
        + figures["forfeited_krw"] + figures["expired_krw"] + figures["revoked_krw"]
        + figures["outstanding_krw"]
    )


def test_summary_after_issuance(finance, campaign):
    body = finance.get("/api/v1/finance/summary", {"campaign": campaign.slug}).json()
    assert body["issued_krw"] == 150_000 and body["issued_count"] == 12
    assert body["outstanding_krw"] == 150_000
    assert _identity_holds(body)
    travel = next(c for c in body["by_category"] if c["category"] == "travel")
    assert travel["issued_krw"] == 60_000 and travel["issued_count"] == 3
    assert all(_identity_holds(c) for c in body["by_category"])


def test_summary_needs_a_known_campaign(finance):
    assert finance.get("/api/v1/finance/summary").json()["code"] == "validation_error"
    response = finance.get("/api/v1/finance/summary", {"campaign": "nope"})
    assert response.status_code == 404 and response.json()["code"] == "campaign_not_found"


@pytest.mark.parametrize("path", ["/api/v1/finance/summary", "/api/v1/finance/reconciliation",
                                  "/api/v1/audit-events"])
def test_unknown_query_parameters_are_refused(finance, campaign, path):
    response = finance.get(path, {"campaign": campaign.slug, "campaing": "typo"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "unknown_query_parameter" and "campaing" in body["errors"]


def test_reconciliation_passes_and_reports_expected_and_actual(finance, campaign):
    body = finance.get("/api/v1/finance/reconciliation", {"campaign": campaign.slug}).json()
    assert body["ok"], body
    checks = {c["name"]: c for c in body["checks"]}
    assert checks["registry_vs_issued_vouchers"]["expected"] == 12
    assert checks["voucher_balances_vs_ledger"]["actual"] == 150_000
    assert checks["audit_chain_intact"]["ok"]


def test_reconciliation_fails_on_a_customer_not_yet_issued(finance, campaign, load_registry):
    load_registry(campaign, {50: "active"})
    body = finance.get("/api/v1/finance/reconciliation", {"campaign": campaign.slug}).json()
    check = next(c for c in body["checks"] if c["name"] == "registry_vs_issued_vouchers")
    assert not body["ok"] and (check["expected"], check["actual"]) == (16, 12)


def test_excluded_customers_are_not_owed(finance, campaign, load_registry):
    load_registry(campaign, {50: "active"})
    Exclusion.objects.create(campaign=campaign, customer_id=50, reason="test", created_by="t")
    body = finance.get("/api/v1/finance/reconciliation", {"campaign": campaign.slug}).json()
    assert body["ok"], body


def test_reconcile_command_exits_non_zero_on_a_failed_check(campaign):
    call_command("reconcile", "--campaign", campaign.slug)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE vouchers_voucher SET balance_krw = 0 WHERE customer_id = 1")
    with pytest.raises(Exception, match="reconciliation failed"):
        call_command("reconcile", "--campaign", campaign.slug)


@pytest.fixture
def events():
    """25 events, sealed (with every event before them)."""
    appended = [
        record_event(actor=f"principal:{'ops' if i % 2 else 'fin'}", action=f"a.{i % 3}",
                     target_type="run", target_id=str(i))
        for i in range(25)
    ]
    seal_events()
    return appended


def _all_pages(client, params: dict) -> list[dict]:
    response = client.get("/api/v1/audit-events", params)
    assert response.status_code == 200, response.content
    body = response.json()
    items = body["results"]
    while body["next"]:
        body = client.get(body["next"]).json()
        items += body["results"]
    return items


@pytest.mark.parametrize("page_size", [1, 5, 24, 25, 26])
def test_audit_events_pages_cover_everything_once(finance, events, page_size):
    items = _all_pages(finance, {"page_size": page_size})
    every_id = AuditEvent.objects.order_by("-id").values_list("id", flat=True)
    assert [i["id"] for i in items] == list(every_id)
    assert {e.pk for e in events} <= {i["id"] for i in items}


def test_an_event_is_listed_once_sealed(finance, events):
    late = record_event(actor="principal:ops", action="a.late", target_type="run", target_id="x")
    assert _all_pages(finance, {"action": "a.late"}) == []
    seal_events()
    (listed,) = _all_pages(finance, {"action": "a.late"})
    assert listed["id"] == late.pk and listed["hash"] and listed["prev_hash"]


def test_audit_events_filters(role_client, events):
    ops = role_client("operations")
    assert {i["action"] for i in _all_pages(ops, {"action": "a.1"})} == {"a.1"}
    assert len(_all_pages(ops, {"actor": "principal:ops"})) == 12
    assert [i["target_id"] for i in _all_pages(ops, {"target_type": "run", "target_id": "7"})] \
        == ["7"]
    later = timezone.now() + dt.timedelta(minutes=1)
    assert _all_pages(ops, {"from": later.isoformat()}) == []
    assert len(_all_pages(ops, {"to": later.isoformat()})) >= 25


def test_audit_events_bad_range_is_400(finance):
    now = timezone.now()
    response = finance.get("/api/v1/audit-events", {
        "from": now.isoformat(), "to": (now - dt.timedelta(days=1)).isoformat()})
    assert response.status_code == 400
    assert finance.get("/api/v1/audit-events", {"from": "yesterday"}).status_code == 400


@pytest.mark.parametrize("role", ["support", "checkout", "identity"])
def test_audit_events_are_for_finance_and_operations(role_client, role):
    assert role_client(role).get("/api/v1/audit-events").status_code == 403
