"""Planning a run: eligible customers counted and cut into customer-id ranges, set-based.

One statement numbers the eligible registry rows in customer-id order (an index-only walk
of the registry's primary key, no OFFSET, no sort), buckets them by row number and inserts
one chunk per bucket: ``[first id of the bucket, first id of the next bucket)``, the last
one ending at its last id + 1. At 33.7M rows that is one sequential pass of the index with
a 3,370-group aggregate on top.

A staged run (``max_customers``) takes only customers not yet issued (``NOT_YET_ISSUED``,
the rule the chunk statement inserts by), lowest ids first, with a LIMIT: the same walk,
probing the voucher unique index per row, stops at the N-th customer it keeps, so the
chunks cover exactly the stage. A full run takes every eligible customer, as before: its
chunks skip what is issued themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db import connection

from vouchers.eligibility.registered import REGISTRY_ROW_REGISTERED
from vouchers.issuance.chunk import NOT_YET_ISSUED

# The customers a run takes, in customer-id order: registry rows without an exclusion in
# force; for a stage only those still owed a voucher, the first %(limit)s of them.
_CUSTOMERS = """
    SELECT r.customer_id FROM vouchers_registryentry r
    WHERE r.campaign_id = %(campaign_id)s AND {registered}{stage}
"""
_STAGE = f"""
      AND {NOT_YET_ISSUED}
    ORDER BY r.customer_id LIMIT %(limit)s"""

_PLAN_CHUNKS = """
WITH numbered AS (
    SELECT customer_id, (row_number() OVER (ORDER BY customer_id) - 1) / %(size)s AS bucket
    FROM ({customers}) selected
),
buckets AS (
    SELECT bucket, min(customer_id) AS lo, max(customer_id) AS last, count(*) AS n
    FROM numbered GROUP BY bucket
),
chunks AS (
    INSERT INTO issuance_issuancechunk (
        run_id, lo, hi, customers, status, attempts, claimed_by,
        vouchers_issued, customers_done, last_error
    )
    SELECT %(run_id)s, lo, coalesce(lead(lo) OVER (ORDER BY bucket), last + 1), n,
           'pending', 0, '', 0, 0, ''
    FROM buckets
    RETURNING customers
)
SELECT count(*), coalesce(sum(customers), 0) FROM chunks
"""

# What a real run would issue now: eligible (customer, component) pairs without a voucher.
_DRY_RUN = """
WITH eligible AS ({customers})
SELECT (SELECT count(*) FROM eligible), count(*), coalesce(sum(c.amount_krw), 0)
FROM eligible r
JOIN vouchers_component c ON c.campaign_id = %(campaign_id)s
WHERE NOT EXISTS (
    SELECT 1 FROM vouchers_voucher v
    WHERE v.campaign_id = %(campaign_id)s AND v.registry_customer_id = r.customer_id
      AND v.component_id = c.id
)
"""

# The same for a stage: its customers, each with the components it is still owed, counted
# in the walk that selects them (index probes per customer, never a pass over the
# campaign's vouchers, which a hash anti-join against a few thousand customers would take).
_DRY_RUN_STAGE = """
SELECT count(*), coalesce(sum(owed.n), 0), coalesce(sum(owed.krw), 0)
FROM ({customers}) r
CROSS JOIN LATERAL (
    SELECT count(*) AS n, sum(c.amount_krw) AS krw
    FROM vouchers_component c
    WHERE c.campaign_id = %(campaign_id)s AND NOT EXISTS (
        SELECT 1 FROM vouchers_voucher v
        WHERE v.campaign_id = %(campaign_id)s AND v.registry_customer_id = r.customer_id
          AND v.component_id = c.id
    )
) owed
"""


@dataclass(frozen=True)
class Plan:
    chunks: int
    eligible_customers: int


@dataclass(frozen=True)
class DryRun:
    eligible_customers: int
    vouchers: int
    total_krw: int


def _customers(max_customers: int | None) -> str:
    return _CUSTOMERS.format(registered=REGISTRY_ROW_REGISTERED,
                             stage="" if max_customers is None else _STAGE)


def plan_chunks(
    *, run_id: UUID, campaign_id: int, chunk_size: int, max_customers: int | None = None
) -> Plan:
    sql = _PLAN_CHUNKS.format(customers=_customers(max_customers))
    with connection.cursor() as cursor:
        cursor.execute(sql, {"run_id": run_id, "campaign_id": campaign_id, "size": chunk_size,
                             "limit": max_customers})
        chunks, customers = cursor.fetchone()
    return Plan(chunks=int(chunks), eligible_customers=int(customers))


def dry_run(*, campaign_id: int, max_customers: int | None = None) -> DryRun:
    sql = (_DRY_RUN if max_customers is None else _DRY_RUN_STAGE).format(
        customers=_customers(max_customers))
    with connection.cursor() as cursor:
        cursor.execute(sql, {"campaign_id": campaign_id, "limit": max_customers})
        customers, vouchers, total = cursor.fetchone()
    return DryRun(eligible_customers=int(customers), vouchers=int(vouchers),
                  total_krw=int(total))
