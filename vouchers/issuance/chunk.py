"""Issuing one chunk of a campaign's registry: one set-based statement.

Vouchers for every registry customer in ``[lo, hi)`` without an exclusion in force, one per
component, and the ledger's summary postings for exactly the rows inserted, all in one SQL
statement. The same statement queues one "vouchers issued" notice for the chunk (not one
row per customer): the drain expands it into the chunk's active vouchers, so closed
accounts (issued ``unclaimed``) get nothing; we hold no number to reach them.

The unique (campaign, registry customer, component) makes a re-run, a concurrent duplicate
or a retry after a crash issue nothing twice. A range that holds no voucher of the campaign
yet (every first run) is issued with a plain INSERT: ``ON CONFLICT`` costs a speculative
insertion per row, about half the price of the row itself. Should another transaction
issue into the range meanwhile, the plain INSERT fails on the unique constraint, its
savepoint is rolled back and the ``ON CONFLICT DO NOTHING`` form runs instead; ranges that
already hold vouchers (re-runs, late additions) take that form directly. It inserts only
the pairs still owed (``owed.pairs``), found by one merge of the range's registry rows with
its vouchers, so the speculative insertion is paid per voucher issued: a chunk of a run
after late additions, whose range spans many customers issued long before, costs one
sequential read of the range's two indexes plus what it issues. It returns the customers
it issued to, and the caller records them (``customers_changed``) rather than the range:
fencing the answers of every customer of a wide range would cost more than the chunk.

Before the statement the transaction takes the campaign's issuance lock in shared mode; a
revocation takes it exclusively, so an exclusion it commits is seen by every chunk that
starts later and a chunk in flight finishes before the revocation looks for vouchers.

A chunk of a staged run is given a ``limit``, the customers planned for it: it issues the
lowest ids of its range still owed a voucher (``owed.NOT_YET_ISSUED``) when it runs, at most
that many. So a stage never issues more than its ``max_customers``, whatever joins the
registry between planning and issuing: a customer added inside a chunk's range with an id
below the chunk's last planned one is issued in place of that last one; one added above
it waits for the next run, like the planned customers it displaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db import connection, transaction

from voucher_service.integrity import ran_unless_violated
from vouchers.eligibility.registered import lock_campaign_issuance
from vouchers.issuance.owed import fetch_owed, pairs
from vouchers.ledger.posting import literal, posted
from vouchers.models import Account, Reason
from vouchers.models.expiry import hold_off_sweeps

ONE_PER_CUSTOMER_COMPONENT = "voucher_one_per_customer_component"


_ISSUE_CHUNK = """
WITH issued AS (
    INSERT INTO vouchers_voucher (
        campaign_id, component_id, registry_customer_id, customer_id, category,
        amount_krw, balance_krw, single_use, min_order_krw, status,
        issued_at, expires_at, valid_from, issuance_run_id
    )
    SELECT p.campaign_id, p.component_id, p.customer_id, p.customer_id, p.category,
           p.amount_krw, p.amount_krw, p.single_use, p.min_order_krw,
           CASE WHEN p.account_status = 'closed' THEN 'unclaimed' ELSE 'active' END,
           now(), coalesce(p.expires_at, now() + make_interval(days => p.valid_days)),
           p.valid_from, %(run_id)s
    FROM ({pairs}
    ) p
    ORDER BY p.customer_id, p.component_id
    {on_conflict}
    RETURNING id, registry_customer_id, category, amount_krw, status
),
totals AS (
    SELECT category,
           count(*)::int AS n,
           count(*) FILTER (WHERE status = 'active')::int AS n_active,
           coalesce(sum(amount_krw) FILTER (WHERE status = 'active'), 0)::bigint AS active,
           coalesce(sum(amount_krw) FILTER (WHERE status = 'unclaimed'), 0)::bigint AS unclaimed,
           min(id) FILTER (WHERE status = 'active') AS first_active,
           max(id) FILTER (WHERE status = 'active') AS last_active
    FROM issued GROUP BY category
),
moves AS (
    SELECT %(campaign_id)s::bigint AS campaign_id, {issuance} AS reason,
           NULL::bigint AS tx_voucher_id, NULL::uuid AS redemption_id, %(run_id)s::uuid AS run_id,
           %(chunk_id)s::bigint AS chunk_id, t.category, {expense} AS debit, m.credit,
           m.amount_krw, NULL::bigint AS voucher_id, m.voucher_count
    FROM totals t,
         LATERAL (VALUES ({liability}, t.active, t.n_active),
                         ({unclaimed}, t.unclaimed, t.n - t.n_active))
             AS m(credit, amount_krw, voucher_count)
), {posted},
noticed AS (
    INSERT INTO issuance_issuednotice (
        campaign_id, run_id, chunk_id, lo, hi, first_voucher_id, last_voucher_id,
        next_customer_id, created_at
    )
    SELECT %(campaign_id)s, %(run_id)s, %(chunk_id)s, %(lo)s, %(hi)s,
           min(first_active), max(last_active), %(lo)s, now()
    FROM totals HAVING count(first_active) > 0
)
SELECT coalesce(sum(n), 0), {changed} FROM totals
"""
_ON_CONFLICT = "ON CONFLICT (campaign_id, registry_customer_id, component_id) DO NOTHING"
_LEDGER = {"posted": posted("moves"), "issuance": literal(Reason.ISSUANCE),
           "expense": literal(Account.EXPENSE), "liability": literal(Account.LIABILITY),
           "unclaimed": literal(Account.UNCLAIMED)}
# Whom the idempotent form changed: the customers it issued to, a few among the range's
# many once it holds vouchers (the plain form changed every registered customer of it).
_CHANGED = "(SELECT coalesce(array_agg(DISTINCT registry_customer_id), '{}') FROM issued)"
# (plain, idempotent) forms, by whether the chunk has a limit. The plain form inserts
# every pair of its fresh range; the idempotent form only the pairs still owed, and
# ``ON CONFLICT`` skips those another transaction inserts meanwhile.
_FORMS = {
    staged: tuple(_ISSUE_CHUNK.format(pairs=pairs(owed=owed, stage=staged),
                                      on_conflict=_ON_CONFLICT if owed else "",
                                      changed=_CHANGED if owed else "NULL::bigint[]", **_LEDGER)
                  for owed in (False, True))
    for staged in (False, True)
}

_RANGE_ISSUED = """
SELECT EXISTS (
    SELECT 1 FROM vouchers_voucher
    WHERE campaign_id = %(campaign_id)s
      AND registry_customer_id >= %(lo)s AND registry_customer_id < %(hi)s
)
"""


@dataclass(frozen=True)
class Issued:
    vouchers: int
    # The registry customers issued to; None: every registered customer of the range (it
    # was fresh), which the caller records as the range.
    customers: list[int] | None


def issue(
    *, campaign_id: int, lo: int, hi: int, run_id: UUID | None, chunk_id: int | None,
    limit: int | None = None,
) -> Issued:
    """Issues the chunk in its own short transaction (or the caller's, if one is open);
    with ``limit``, to at most that many customers of the range not yet issued, lowest
    ids first. The caller records whom it changed (``customers_changed``)."""
    params = {"campaign_id": campaign_id, "lo": lo, "hi": hi, "run_id": run_id,
              "chunk_id": chunk_id, "limit": limit}
    plain, idempotent = _FORMS[limit is not None]
    with transaction.atomic(), connection.cursor() as cursor:
        lock_campaign_issuance(campaign_id, shared=True)
        hold_off_sweeps()  # no sweep passes the new vouchers' expiry before they commit
        cursor.execute(_RANGE_ISSUED, params)
        fresh = not cursor.fetchone()[0]
        if fresh and ran_unless_violated(cursor, plain, params, ONE_PER_CUSTOMER_COMPONENT):
            row = cursor.fetchone()
        else:
            row = fetch_owed(cursor, idempotent, params)
    return Issued(vouchers=int(row[0]), customers=row[1])


def issue_chunk(
    *, campaign_id: int, lo: int, hi: int, run_id: UUID | None, chunk_id: int | None,
    limit: int | None = None,
) -> int:
    """``issue``, for callers outside a run (tools, tests, benchmarks): how many vouchers
    it issued."""
    return issue(campaign_id=campaign_id, lo=lo, hi=hi, run_id=run_id, chunk_id=chunk_id,
                 limit=limit).vouchers
