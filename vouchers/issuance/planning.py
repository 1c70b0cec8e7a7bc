"""Planning a run: the customers it takes counted and cut into customer-id ranges, set-based.

One statement numbers those customers in customer-id order, buckets them by row number and
inserts one chunk per bucket: ``[first id of the bucket, first id of the next bucket)``,
the last one ending at its last id + 1.

While the campaign holds no voucher (every first run) a run takes every registered
customer, straight from an index-only walk of the registry's primary key (no OFFSET, no
sort): at 33.7M rows one sequential pass of the index with a 3,370-group aggregate on top.
Once it holds vouchers a run takes only the customers still owed one (``owed``): the same
walk merged with the voucher unique index, one pass of each. A run after 165,000 late
additions spread over the registry so plans 165,000 customers in 17 chunks, not all 33.86M
eligible in 3,386; its chunks' ranges are as wide as the additions are spread apart, and
each chunk merges only its own range (``chunk``).

A staged run (``max_customers``) takes the first N of them, lowest ids first: the walk
stops at the N-th customer it keeps, so the chunks cover exactly the stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db import connection

from vouchers.eligibility.registered import REGISTRY_ROW_REGISTERED
from vouchers.issuance.owed import fetch_owed, pairs

# A campaign holding no voucher yet owes every registered customer every component.
_HOLDS_VOUCHERS = """
SELECT EXISTS (SELECT 1 FROM vouchers_voucher WHERE campaign_id = %(campaign_id)s)
"""

# The customers a run takes, in customer-id order: every registered one, or those still
# owed a voucher; for a stage the first %(limit)s of them.
_REGISTERED = """
    SELECT r.customer_id FROM vouchers_registryentry r
    WHERE r.campaign_id = %(campaign_id)s AND {registered}{stage}
"""
_REGISTERED_STAGE = "\n    ORDER BY r.customer_id LIMIT %(limit)s"
_OWED = """
    SELECT p.customer_id FROM ({pairs}
    ) p
    GROUP BY p.customer_id
"""

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

# What a real run would issue now: the pairs still owed, counted per customer (a group
# per customer over pairs that come in customer-id order: no sort, no hash of the rest).
_DRY_RUN = """
SELECT count(*), coalesce(sum(n), 0), coalesce(sum(krw), 0)
FROM (
    SELECT count(*) AS n, sum(p.amount_krw) AS krw
    FROM ({pairs}
    ) p
    GROUP BY p.customer_id
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


def plan_chunks(
    *, run_id: UUID, campaign_id: int, chunk_size: int, max_customers: int | None = None
) -> Plan:
    staged = max_customers is not None
    params = {"run_id": run_id, "campaign_id": campaign_id, "size": chunk_size,
              "limit": max_customers}
    with connection.cursor() as cursor:
        cursor.execute(_HOLDS_VOUCHERS, params)
        if cursor.fetchone()[0]:
            owed = _OWED.format(pairs=pairs(owed=True, stage=staged, within=False))
            chunks, customers = fetch_owed(cursor, _PLAN_CHUNKS.format(customers=owed), params)
        else:
            registered = _REGISTERED.format(registered=REGISTRY_ROW_REGISTERED,
                                            stage=_REGISTERED_STAGE if staged else "")
            cursor.execute(_PLAN_CHUNKS.format(customers=registered), params)
            chunks, customers = cursor.fetchone()
    return Plan(chunks=int(chunks), eligible_customers=int(customers))


def dry_run(*, campaign_id: int, max_customers: int | None = None) -> DryRun:
    sql = _DRY_RUN.format(pairs=pairs(owed=True, stage=max_customers is not None,
                                      within=False))
    with connection.cursor() as cursor:
        customers, vouchers, total = fetch_owed(
            cursor, sql, {"campaign_id": campaign_id, "limit": max_customers})
    return DryRun(eligible_customers=int(customers), vouchers=int(vouchers),
                  total_krw=int(total))
