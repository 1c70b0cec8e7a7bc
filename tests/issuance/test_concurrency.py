"""Chunk transactions side by side: two workers' chunks of one run do not wait for each
other, and a chunk whose fresh range another transaction issues into meanwhile falls back
to the idempotent statement and issues nothing twice."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.db import connection
from django.db.models import Count, Sum

from tests.issuance.conftest import EXCLUDED
from tests.processes import database_url
from vouchers.issuance import processing
from vouchers.issuance.chunk import issue_chunk
from vouchers.models import Component, LedgerPosting, Voucher

pytestmark = pytest.mark.django_db(transaction=True)


def _other_connection() -> psycopg.Connection:
    return psycopg.connect(database_url(connection.settings_dict))


def test_a_chunk_does_not_lock_its_run(campaign, approved_run):
    """Another transaction holding the run row (as a second worker's chunk did) does not
    hold this chunk back."""
    [chunk_id, _] = processing.dispatch(run_id=approved_run)
    with _other_connection() as other:
        other.execute("SELECT 1 FROM issuance_issuancerun WHERE id = %s FOR SHARE",
                      [approved_run])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")
        try:
            assert processing.process_chunk(chunk_id=chunk_id, claim="w1") is not None
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")


def test_a_fresh_range_issued_into_meanwhile_falls_back_to_on_conflict(campaign):
    component = Component.objects.get(campaign=campaign, category="all")
    issued = {}

    def chunk() -> None:
        try:
            issued["result"] = issue_chunk(campaign_id=campaign.pk, lo=1, hi=21, run_id=None,
                                           chunk_id=None)
        finally:
            connection.close()

    with _other_connection() as other:
        other.execute(
            "INSERT INTO vouchers_voucher (campaign_id, component_id, registry_customer_id,"
            " customer_id, category, amount_krw, balance_krw, single_use, min_order_krw,"
            " status, issued_at, expires_at) SELECT campaign_id, id, 5, 5, category,"
            " amount_krw, amount_krw, single_use, min_order_krw, 'active', now(), expires_at"
            " FROM vouchers_component WHERE id = %s", [component.pk])
        worker = threading.Thread(target=chunk)
        worker.start()
        time.sleep(1)  # the chunk's plain INSERT now waits on customer 5's uncommitted row
        other.commit()
        worker.join(timeout=30)
    customers = 20 - len(EXCLUDED)
    assert issued["result"] == customers * 4 - 1
    counts = Voucher.objects.filter(campaign=campaign).values(
        "registry_customer_id", "component_id").annotate(n=Count("pk"))
    assert len(counts) == customers * 4 and {c["n"] for c in counts} == {1}
    expensed = LedgerPosting.objects.filter(campaign_id=campaign.pk, account="expense")
    assert expensed.aggregate(n=Sum("voucher_count"))["n"] == customers * 4 - 1
