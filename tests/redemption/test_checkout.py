"""Checkout: capture at once or hold, capture, void; the rules; roles; bad input."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from tests.redemption.conftest import URL, order, post, redeem, step, voucher
from voucher_service.models import AuditEvent
from vouchers.identifiers import public_voucher_id
from vouchers.issuance.chunk import issue_chunk
from vouchers.ledger.verification import verify_ledger
from vouchers.models import LedgerPosting, Voucher
from vouchers.redemption.models import Redemption, RedemptionEvent
from vouchers.redemption.rules import RULES, refusal
from vouchers.redemption.statements import CHECKOUT

pytestmark = pytest.mark.django_db

FIELDS = {"id", "voucher_id", "order_id", "amount_krw", "forfeited_krw", "status",
          "refunded_krw", "voucher_balance_krw", "created_at"}


def postings(v: Voucher) -> dict[str, int]:
    rows = (LedgerPosting.objects.filter(voucher_id=v.pk).values("account")
            .annotate(total=Sum("amount_krw")))
    return {r["account"]: r["total"] for r in rows if r["total"]}


def test_capture_at_once_spends_and_posts(shop, checkout):
    v = voucher(1, "all")
    response = redeem(checkout, v, amount_krw=12_000, order_total_krw=30_000)
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= FIELDS
    assert (body["status"], body["amount_krw"], body["forfeited_krw"], body["refunded_krw"],
            body["voucher_balance_krw"]) == ("captured", 12_000, 0, 0, 38_000)
    assert body["voucher_id"] == public_voucher_id(v.pk)
    v.refresh_from_db()
    assert (v.balance_krw, v.status) == (38_000, "active")
    assert postings(v) == {"liability": 12_000, "redeemed": -12_000}
    assert AuditEvent.objects.filter(action="redemption.capture", target_id=body["id"]).exists()
    assert verify_ledger(campaign_id=shop.pk).ok


def test_hold_then_capture(shop, checkout):
    v = voucher(1, "all")
    held = redeem(checkout, v, amount_krw=10_000, capture=False).json()
    assert (held["status"], held["voucher_balance_krw"]) == ("authorized", 40_000)
    assert postings(v) == {"liability": 10_000, "authorized": -10_000}
    captured = step(checkout, held["id"], "capture")
    assert captured.status_code == 200
    assert captured.json()["status"] == "captured"
    assert postings(v) == {"liability": 10_000, "redeemed": -10_000}
    shown = checkout.get(f"{URL}/{held['id']}").json()
    assert (shown["status"], shown["voucher_balance_krw"]) == ("captured", 40_000)
    kinds = list(RedemptionEvent.objects.filter(redemption_id=held["id"])
                 .order_by("id").values_list("kind", flat=True))
    assert kinds == ["authorize", "capture"]
    assert verify_ledger(campaign_id=shop.pk).ok


def test_void_releases_the_hold(shop, checkout):
    v = voucher(1, "all")
    held = redeem(checkout, v, amount_krw=10_000, capture=False).json()
    voided = step(checkout, held["id"], "void")
    assert voided.status_code == 200
    assert (voided.json()["status"], voided.json()["voucher_balance_krw"]) == ("voided", 50_000)
    assert postings(v) == {}
    again = step(checkout, held["id"], "void")
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    capture = step(checkout, held["id"], "capture")
    assert capture.status_code == 409 and capture.json()["code"] == "invalid_transition"
    assert verify_ledger(campaign_id=shop.pk).ok


def test_void_of_a_single_use_hold_reverses_its_forfeit(shop, checkout):
    v = voucher(1, "eats")
    held = redeem(checkout, v, amount_krw=3_000, capture=False).json()
    assert (held["forfeited_krw"], held["voucher_balance_krw"]) == (2_000, 0)
    assert step(checkout, held["id"], "void").json()["voucher_balance_krw"] == 5_000
    v.refresh_from_db()
    assert (v.balance_krw, v.status) == (5_000, "active")
    assert postings(v) == {}
    assert verify_ledger(campaign_id=shop.pk).ok


def test_void_after_capture_is_409(shop, checkout):
    captured = redeem(checkout, voucher(1, "all"), amount_krw=1_000).json()
    response = step(checkout, captured["id"], "void")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_transition"


def test_expired_voucher_is_409(shop, checkout):
    v = voucher(1, "all")
    Voucher.objects.filter(pk=v.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = redeem(checkout, v, amount_krw=1_000)
    assert response.status_code == 409 and response.json()["code"] == "voucher_expired"
    assert not Redemption.objects.exists()


def test_a_voucher_is_refused_before_its_start_date(make_campaign, load_registry, checkout):
    """A component's start date reaches its vouchers at issue; checkout refuses them until
    then."""
    starts = timezone.now() + dt.timedelta(days=30)
    season = make_campaign(slug="season", components=[
        {"category": "all", "amount_krw": 20_000, "valid_from": starts}])
    load_registry(season, {1: "active"})
    issue_chunk(campaign_id=season.pk, lo=1, hi=2, run_id=None, chunk_id=None)
    v = Voucher.objects.get(campaign=season, customer_id=1)
    assert v.valid_from == starts
    response = redeem(checkout, v, amount_krw=1_000)
    assert response.status_code == 409 and response.json()["code"] == "voucher_not_yet_valid"
    assert response.json()["valid_from"] == starts.isoformat()
    assert not Redemption.objects.exists()
    Voucher.objects.filter(pk=v.pk).update(valid_from=timezone.now() - dt.timedelta(seconds=1))
    assert redeem(checkout, v, amount_krw=1_000).status_code == 201


def test_another_customers_voucher_is_404(shop, checkout):
    response = redeem(checkout, voucher(1, "all"), customer_id=2, amount_krw=1_000)
    assert response.status_code == 404 and response.json()["code"] == "voucher_not_found"


@pytest.mark.parametrize("voucher_id", ["vch_0000000000000", "nope", "vch_ZZZZZZZZZZZZZZ"])
def test_unknown_voucher_is_404(shop, checkout, voucher_id):
    response = redeem(checkout, voucher(1, "all"), voucher_id=voucher_id, amount_krw=1_000)
    assert response.status_code == 404 and response.json()["code"] == "voucher_not_found"


def test_category_must_match_unless_all(shop, checkout):
    eats = voucher(1, "eats")
    response = redeem(checkout, eats, merchant_category="travel")
    assert response.status_code == 409 and response.json()["code"] == "category_mismatch"
    assert redeem(checkout, voucher(1, "all"), amount_krw=1_000,
                  merchant_category="luxury").status_code == 201


def test_minimum_order(shop, checkout):
    travel = voucher(1, "travel")
    response = redeem(checkout, travel, order_total_krw=39_999)
    assert response.status_code == 409
    assert response.json()["code"] == "minimum_order_not_met"
    assert response.json()["min_order_krw"] == 40_000
    assert redeem(checkout, travel, order_total_krw=40_000).status_code == 201


def test_insufficient_balance(shop, checkout):
    response = redeem(checkout, voucher(1, "all"), amount_krw=50_001, order_total_krw=60_000)
    assert response.status_code == 409 and response.json()["code"] == "insufficient_balance"


def test_unclaimed_voucher_is_not_active(shop, checkout):
    response = redeem(checkout, voucher(3, "all"), amount_krw=1_000)
    assert response.status_code == 409 and response.json()["code"] == "voucher_not_active"


def test_spent_single_use_voucher_cannot_be_spent_again(shop, checkout):
    eats = voucher(1, "eats")
    assert redeem(checkout, eats, amount_krw=1_000).status_code == 201
    response = redeem(checkout, eats, amount_krw=1_000)
    assert response.status_code == 409 and response.json()["code"] == "insufficient_balance"


def test_capture_after_the_hold_timed_out_is_409(shop, checkout, settings):
    settings.AUTHORIZATION_TTL_SECONDS = 0
    held = redeem(checkout, voucher(1, "all"), amount_krw=1_000, capture=False).json()
    response = step(checkout, held["id"], "capture")
    assert response.status_code == 409 and response.json()["code"] == "authorization_expired"


def test_unknown_redemption_is_404(shop, checkout):
    missing = uuid.uuid4()
    assert checkout.get(f"{URL}/{missing}").json()["code"] == "redemption_not_found"
    response = step(checkout, str(missing), "capture")
    assert response.status_code == 404 and response.json()["code"] == "redemption_not_found"


@pytest.mark.parametrize("role", ["finance", "operations", "support", "identity"])
def test_only_checkout_may_post(shop, role_client, role):
    response = redeem(role_client(role), voucher(1, "all"), amount_krw=1_000)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_customers_and_anonymous_callers_may_not_post(shop, customer_client, client):
    v = voucher(1, "all")
    assert redeem(customer_client(1), v, amount_krw=1_000).status_code == 403
    assert redeem(client, v, amount_krw=1_000).status_code == 401
    assert not Redemption.objects.exists()


def test_finance_may_read_a_redemption(shop, checkout, role_client):
    created = redeem(checkout, voucher(1, "all"), amount_krw=1_000).json()
    assert role_client("finance").get(f"{URL}/{created['id']}").json() == created
    assert role_client("support").get(f"{URL}/{created['id']}").status_code == 403


BAD = [
    ("amount_krw", 0), ("amount_krw", -1), ("amount_krw", "1000"), ("amount_krw", 10.5),
    ("amount_krw", None), ("order_total_krw", 0), ("order_total_krw", -5),
    ("customer_id", "1"), ("customer_id", 0), ("capture", "true"), ("capture", 1),
    ("merchant_category", "Eats!"), ("merchant_category", ""), ("merchant_category", 7),
    ("merchant_category", "x" * 33), ("order_id", ""), ("order_id", "x" * 101),
    ("voucher_id", 12),
]


@pytest.mark.parametrize(("field", "value"), BAD)
def test_bad_input_is_a_400_problem(shop, checkout, field, value):
    response = redeem(checkout, voucher(1, "all"), **{"amount_krw": 1_000, field: value})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["errors"]
    assert not Redemption.objects.exists()


def test_amount_over_the_order_total_is_400(shop, checkout):
    response = redeem(checkout, voucher(1, "all"), amount_krw=2_000, order_total_krw=1_000)
    assert response.status_code == 400 and "amount_krw" in response.json()["errors"]


def test_malformed_json_is_400(shop, checkout):
    response = checkout.post(URL, data="{nope", content_type="application/json",
                             HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 400 and response.json()["code"] == "malformed_request"


def test_refund_body_is_validated(shop, checkout):
    captured = redeem(checkout, voucher(1, "all"), amount_krw=1_000).json()
    for amount in (0, -1, "5", 1.0):
        response = step(checkout, captured["id"], "refund", {"amount_krw": amount})
        assert response.status_code == 400 and response.json()["code"] == "validation_error"


def _sql(sql: str, params: list) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.parametrize("sql", [
    "UPDATE redemption_redemption SET amount_krw = amount_krw + 1 WHERE id = %s",
    "UPDATE redemption_redemption SET status = 'authorized' WHERE id = %s",
    "DELETE FROM redemption_redemption WHERE id = %s",
    "UPDATE redemption_redemptionevent SET amount_krw = 1 WHERE redemption_id = %s",
    "DELETE FROM redemption_redemptionevent WHERE redemption_id = %s",
])
def test_database_keeps_redemptions_append_only(shop, checkout, sql):
    created = redeem(checkout, voucher(1, "all"), amount_krw=1_000).json()
    with pytest.raises(DatabaseError):
        _sql(sql, [created["id"]])


def test_database_refuses_a_refund_over_the_captured_amount(shop, checkout):
    created = redeem(checkout, voucher(1, "all"), amount_krw=1_000).json()
    with pytest.raises(DatabaseError):
        _sql("UPDATE redemption_redemption SET status = 'refunded', refunded_krw = 1001 "
             "WHERE id = %s", [created["id"]])


def test_body_fields_come_back_as_sent(shop, checkout):
    v = voucher(2, "all")
    body = order(v, amount_krw=2_500, order_total_krw=9_000, merchant_category="travel")
    created = post(checkout, URL, body).json()
    assert {k: created[k] for k in ("order_id", "customer_id", "order_total_krw",
                                    "merchant_category")} == {
        k: body[k] for k in ("order_id", "customer_id", "order_total_krw", "merchant_category")}


def test_each_rule_refuses_with_its_own_code():
    """The statement names a rule by its code, the client gets the rule's problem: the two
    must agree for every rule in the table."""
    voucher = Voucher(status="revoked", category="eats", min_order_krw=1, balance_krw=0,
                      valid_from=timezone.now())
    assert len({rule.code for rule in RULES}) == len(RULES)
    for rule in RULES:
        assert f"THEN '{rule.code}'" in CHECKOUT
        assert refusal(rule.code, voucher).code == rule.code
