"""What the hot paths write: no index that nothing reads, and a leading index for every
foreign key (a referenced row's delete or PROTECT check must not scan the table). The
voucher's two references are checked per statement instead
(tests/issuance/test_voucher_references.py)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection, models

pytestmark = pytest.mark.django_db

# Dropped by vouchers.0005 and redemption.0003: nothing filters on them alone.
UNREAD = {
    "vouchers_voucher": ["category", "campaign_id"],
    "vouchers_ledgerposting": ["category"],
    "vouchers_ledgerbalance": ["category"],
    "vouchers_registryentry": ["campaign_id"],
    "redemption_redemption": ["merchant_category"],
}


def _leading_columns(table: str) -> list[tuple[str, int]]:
    """(first column, number of columns) of each index of the table."""
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT a.attname, i.indnatts
            FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE i.indrelid = %s::regclass
        """, [table])
        return cursor.fetchall()


@pytest.mark.parametrize("table", sorted(UNREAD))
def test_no_single_column_index_on_columns_nothing_reads(table):
    single = {column for column, width in _leading_columns(table) if width == 1}
    assert single.isdisjoint(UNREAD[table])


def test_every_foreign_key_leads_an_index():
    missing = []
    for model in apps.get_models():
        table = model._meta.db_table
        leading = {column for column, _ in _leading_columns(table)}
        missing += [f"{table}.{field.column}" for field in model._meta.concrete_fields
                    if isinstance(field, models.ForeignKey) and field.db_constraint
                    and field.column not in leading]
    assert missing == []
