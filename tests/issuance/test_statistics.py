"""A completed run leaves the planner's statistics of the voucher table right: analysed,
and the holder columns' distinct count a fraction of the rows (registry customers per
voucher) rather than ``ANALYZE``'s guess from a sample of side-by-side rows."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.issuance.conftest import drive
from vouchers.models import RegistryEntry, Voucher

# Committed for real: the refresh runs in autocommit, as in a worker.
pytestmark = pytest.mark.django_db(transaction=True)


def _holder_statistics() -> dict[str, tuple[list[str] | None, float | None]]:
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT a.attname, a.attoptions, s.n_distinct
            FROM pg_attribute a
            LEFT JOIN pg_stats s ON s.tablename = 'vouchers_voucher' AND s.attname = a.attname
            WHERE a.attrelid = 'vouchers_voucher'::regclass
              AND a.attname IN ('customer_id', 'registry_customer_id')""")
        return {name: (options, n_distinct) for name, options, n_distinct in cursor.fetchall()}


def test_a_completed_run_leaves_the_holder_statistics_right(approved_run):
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE vouchers_voucher ALTER COLUMN customer_id RESET (n_distinct)")
        cursor.execute("ALTER TABLE vouchers_voucher ALTER COLUMN registry_customer_id "
                       "RESET (n_distinct)")
    assert drive(approved_run).status == "completed"
    ratio = round(RegistryEntry.objects.count() / Voucher.objects.count(), 4)
    assert 0 < ratio < 1
    statistics = _holder_statistics()
    assert set(statistics) == {"customer_id", "registry_customer_id"}
    for options, n_distinct in statistics.values():
        assert f"n_distinct={-ratio}" in options and n_distinct == -ratio
