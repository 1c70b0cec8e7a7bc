"""Leaving the planner's statistics of the voucher table right after a run.

A run writes up to a hundred million voucher rows; autovacuum (off on some machines,
slow to start on big tables elsewhere) may not analyse them before the first customer
arrives, and an unanalysed table sent the first eligibility checks of the full-scale
rehearsal through a scan of a 134.8M-entry index (11 s a check). ``ANALYZE`` alone is not
enough: from its sample it guessed 542,476 distinct holders for 33.7 million (the
vouchers of one customer sit side by side, so a sample meets few customers many times),
which keeps plans fragile. The holder columns' distinct count is therefore set from what
the tables say, as a fraction of the rows (registry customers per voucher), before the
columns are analysed again.
"""

from __future__ import annotations

from django.db import connection

_REL_TUPLES = "SELECT reltuples FROM pg_class WHERE oid = %s::regclass"
_HOLDER_COLUMNS = ("customer_id", "registry_customer_id")


def _rows(cursor, table: str) -> float:
    cursor.execute(_REL_TUPLES, [table])
    return max(cursor.fetchone()[0], 0.0)


def refresh_voucher_statistics() -> float | None:
    """Analyses the registry and the vouchers, sets the holder columns' distinct ratio and
    analyses them again; returns that ratio (0 when there are no vouchers). It takes only
    ``SHARE UPDATE EXCLUSIVE`` (reads and writes go on), each statement in its own
    transaction. Inside a caller's transaction (a shell, a test) it does nothing and
    returns None: the locks would last until that caller commits, and PostgreSQL refuses
    the ``ALTER TABLE`` while the caller's deferred checks are pending."""
    if connection.in_atomic_block:
        return None
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE vouchers_registryentry")
        cursor.execute("ANALYZE vouchers_voucher")
        vouchers = _rows(cursor, "vouchers_voucher")
        if vouchers < 1:
            return 0.0
        ratio = round(min(1.0, _rows(cursor, "vouchers_registryentry") / vouchers), 4)
        for column in _HOLDER_COLUMNS:
            # A float and a fixed column name: nothing from outside reaches the statement.
            cursor.execute(f"ALTER TABLE vouchers_voucher ALTER COLUMN {column} "  # nosec B608
                           f"SET (n_distinct = {-ratio})")
        cursor.execute(f"ANALYZE vouchers_voucher ({', '.join(_HOLDER_COLUMNS)})")
    return ratio
