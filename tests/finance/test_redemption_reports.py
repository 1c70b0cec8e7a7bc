"""Finance's redemption list (filters, cursor pages) and its streamed CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.processes import database_url
from vouchers.finance.selectors import EXPORT_COLUMNS
from vouchers.issuance.chunk import issue_chunk

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2027, 1, 15, 0, 0, tzinfo=dt.UTC)

# Redemptions 1..count of the campaign, spread over its vouchers: n created at
# T0 + n minutes, every third one voided.
SEED_REDEMPTIONS_SQL = """
INSERT INTO redemption_redemption
    (id, campaign_id, voucher_id, customer_id, order_id, amount_krw, forfeited_krw,
     order_total_krw, merchant_category, status, refunded_krw, created_at, updated_at,
     created_by)
SELECT gen_random_uuid(), v.campaign_id, v.id, v.customer_id, 'order-' || n,
       1000 + n %% 1000, 0, 100000, 'eats',
       CASE WHEN n %% 3 = 0 THEN 'voided' ELSE 'captured' END, 0,
       %(t0)s + n * interval '1 minute', %(t0)s + n * interval '1 minute', 'test'
FROM generate_series(1, %(count)s) n
JOIN (SELECT v.*, row_number() OVER (ORDER BY v.id) - 1 AS k, count(*) OVER () AS total
      FROM vouchers_voucher v WHERE v.campaign_id = %(campaign)s) v
  ON v.k = (n - 1) %% v.total
WHERE n >= %(first)s
"""


def seed(make_campaign, load_registry, *, slug: str, customers: int, redemptions: int):
    campaign = make_campaign(slug=slug)
    load_registry(campaign, dict.fromkeys(range(1, customers + 1), "active"))
    issue_chunk(campaign_id=campaign.pk, lo=1, hi=customers + 1, run_id=None, chunk_id=None)
    with connection.cursor() as cursor:
        cursor.execute(SEED_REDEMPTIONS_SQL, {"t0": T0, "campaign": campaign.pk,
                                              "count": redemptions, "first": 1})
    return campaign


@pytest.fixture
def finance(role_client):
    return role_client("finance")


@pytest.fixture
def two_campaigns(make_campaign, load_registry):
    return (seed(make_campaign, load_registry, slug="north", customers=30, redemptions=25),
            seed(make_campaign, load_registry, slug="south", customers=10, redemptions=10))


def pages(client, url, params):
    """Every page's rows, following ``next`` links."""
    response = client.get(url, params)
    assert response.status_code == 200, response.content
    collected = [response.json()["results"]]
    while (link := response.json()["next"]) is not None:
        response = client.get(link)
        collected.append(response.json()["results"])
    return collected


def all_rows(client, params) -> list[dict]:
    return [row for page in pages(client, "/api/v1/finance/redemptions", params) for row in page]


def test_filters_by_campaign_status_and_time(finance, two_campaigns):
    rows = all_rows(finance, {"campaign": "north"})
    assert len(rows) == 25 and {r["campaign"] for r in rows} == {"north"}
    assert [r["order_id"] for r in rows] == [f"order-{n}" for n in range(1, 26)]
    assert rows[0]["voucher_id"].startswith("vch_")

    voided = all_rows(finance, {"campaign": "north", "status": "voided"})
    assert [r["order_id"] for r in voided] == [f"order-{n}" for n in (3, 6, 9, 12, 15, 18, 21, 24)]

    # [from, to): minute 5 included, minute 9 excluded.
    window = {"from": (T0 + dt.timedelta(minutes=5)).isoformat(),
              "to": (T0 + dt.timedelta(minutes=9)).isoformat()}
    both = all_rows(finance, window)
    assert sorted((r["campaign"], r["order_id"]) for r in both) == sorted(
        (c, f"order-{n}") for c in ("north", "south") for n in range(5, 9))


@pytest.mark.parametrize(("page_size", "sizes"), [
    (5, [5, 5, 5, 5, 5]),   # the last page is exactly full: no empty page after it
    (24, [24, 1]),          # one row over a page edge
    (25, [25]),
    (26, [25]),
])
def test_pages_at_their_edges(finance, two_campaigns, page_size, sizes):
    got = pages(finance, "/api/v1/finance/redemptions",
                {"campaign": "north", "page_size": page_size})
    assert [len(page) for page in got] == sizes
    ids = [row["id"] for page in got for row in page]
    assert len(set(ids)) == 25


def test_rows_added_while_paging_land_after_the_last_page(finance, two_campaigns):
    first = finance.get("/api/v1/finance/redemptions", {"campaign": "south", "page_size": 4})
    with connection.cursor() as cursor:  # a redemption made later than every seeded one
        cursor.execute(SEED_REDEMPTIONS_SQL, {"campaign": two_campaigns[1].pk, "count": 10,
                                              "first": 10, "t0": T0 + dt.timedelta(days=1)})
    rest = pages(finance, first.json()["next"], {})
    ids = [r["order_id"] for r in first.json()["results"]] + [
        r["order_id"] for page in rest for r in page]
    assert ids == [f"order-{n}" for n in range(1, 11)] + ["order-10"]


@pytest.mark.parametrize(("params", "code"), [
    ({"campaign": "nowhere"}, "campaign_not_found"),
    ({"status": "stolen"}, "validation_error"),
    ({"from": "yesterday"}, "validation_error"),
    ({"from": "2027-01-02T00:00:00Z", "to": "2027-01-01T00:00:00Z"}, "validation_error"),
    ({"campagin": "north"}, "unknown_query_parameter"),
])
def test_bad_queries_are_problems(finance, two_campaigns, params, code):
    for url in ("/api/v1/finance/redemptions", "/api/v1/finance/redemptions/export"):
        response = finance.get(url, params)
        assert response.status_code in (400, 404)
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == code


def test_only_finance_reads_redemptions(role_client, customer_client, two_campaigns):
    for role in ("operations", "support", "checkout", "identity"):
        assert role_client(role).get("/api/v1/finance/redemptions").status_code == 403
        assert role_client(role).get("/api/v1/finance/redemptions/export").status_code == 403
    assert customer_client(1).get("/api/v1/finance/redemptions").status_code == 403


def read_export(client, params) -> list[dict]:
    response = client.get("/api/v1/finance/redemptions/export", params,
                          HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    reader = csv.reader(io.StringIO(text))
    assert tuple(next(reader)) == EXPORT_COLUMNS
    return [dict(zip(EXPORT_COLUMNS, row, strict=True)) for row in reader]


def test_export_has_a_header_and_matches_the_list(finance, two_campaigns):
    exported = read_export(finance, {"campaign": "north", "status": "captured"})
    listed = all_rows(finance, {"campaign": "north", "status": "captured"})
    assert [r["redemption_id"] for r in exported] == [r["id"] for r in listed]
    first = exported[0]
    assert (first["order_id"], first["amount_krw"], first["status"]) == ("order-1", "1001",
                                                                          "captured")
    assert dt.datetime.fromisoformat(first["created_at"]) == T0 + dt.timedelta(minutes=1)
    later = (T0 + dt.timedelta(days=1)).isoformat()
    assert read_export(finance, {"campaign": "north", "from": later}) == []


# Runs in a fresh process, so that its peak RSS is the export's alone: streams a
# campaign's export through the real stack and prints (rows, peak RSS in KiB) after each.
_EXPORT_CHILD = """
import json, os, resource, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from django.test import Client
client = Client(HTTP_AUTHORIZATION="Bearer " + sys.argv[1])
for slug in sys.argv[2:]:
    response = client.get("/api/v1/finance/redemptions/export", {"campaign": slug})
    lines = sum(chunk.count(b"\\n") for chunk in response.streaming_content)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps([slug, lines - 1, peak]))
"""


@pytest.mark.django_db(transaction=True)
def test_export_of_100k_redemptions_streams_in_flat_memory(make_principal, make_campaign,
                                                           load_registry):
    seed(make_campaign, load_registry, slug="small", customers=500, redemptions=10_000)
    seed(make_campaign, load_registry, slug="large", customers=500, redemptions=100_000)
    _, token = make_principal("finance")
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": database_url(connection.settings_dict)}
    done = subprocess.run([sys.executable, "-c", _EXPORT_CHILD, token, "small", "large"],
                          env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2], check=True)
    (_, small_rows, small_peak), (_, large_rows, large_peak) = [
        json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]
    assert (small_rows, large_rows) == (10_000, 100_000)
    # Ten times the rows, and the peak grows by less than 8 MiB: a few cursor batches and
    # one CSV chunk at a time. Holding the 100,000 rows would take far more than that.
    assert large_peak - small_peak < 8 * 1024, (small_peak, large_peak)
