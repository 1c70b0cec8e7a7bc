"""Planning a run: eligible customers counted and cut into customer-id ranges, set-based.

One statement numbers the eligible registry rows in customer-id order (an index-only walk
of the registry's primary key, no OFFSET, no sort), buckets them by row number and inserts
one chunk per bucket: ``[first id of the bucket, first id of the next bucket)``. At 33.7M
rows that is one sequential pass of the index with a 3,370-group aggregate on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db import connection

_PLAN_CHUNKS = """
WITH numbered AS (
    SELECT customer_id, (row_number() OVER (ORDER BY customer_id) - 1) / %(size)s AS bucket
    FROM vouchers_registryentry r
    WHERE r.campaign_id = %(campaign_id)s AND NOT EXISTS (
        SELECT 1 FROM vouchers_exclusion e
        WHERE e.campaign_id = r.campaign_id AND e.customer_id = r.customer_id
          AND e.lifted_at IS NULL
    )
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
WITH eligible AS (
    SELECT r.customer_id FROM vouchers_registryentry r
    WHERE r.campaign_id = %(campaign_id)s AND NOT EXISTS (
        SELECT 1 FROM vouchers_exclusion e
        WHERE e.campaign_id = r.campaign_id AND e.customer_id = r.customer_id
          AND e.lifted_at IS NULL
    )
)
SELECT (SELECT count(*) FROM eligible), count(*), coalesce(sum(c.amount_krw), 0)
FROM eligible r
JOIN vouchers_component c ON c.campaign_id = %(campaign_id)s
WHERE NOT EXISTS (
    SELECT 1 FROM vouchers_voucher v
    WHERE v.campaign_id = %(campaign_id)s AND v.registry_customer_id = r.customer_id
      AND v.component_id = c.id
)
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


def plan_chunks(*, run_id: UUID, campaign_id: int, chunk_size: int) -> Plan:
    with connection.cursor() as cursor:
        cursor.execute(_PLAN_CHUNKS,
                       {"run_id": run_id, "campaign_id": campaign_id, "size": chunk_size})
        chunks, customers = cursor.fetchone()
    return Plan(chunks=int(chunks), eligible_customers=int(customers))


def dry_run(*, campaign_id: int) -> DryRun:
    with connection.cursor() as cursor:
        cursor.execute(_DRY_RUN, {"campaign_id": campaign_id})
        customers, vouchers, total = cursor.fetchone()
    return DryRun(eligible_customers=int(customers), vouchers=int(vouchers),
                  total_krw=int(total))
