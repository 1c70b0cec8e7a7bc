"""Who is still owed vouchers: registered customers' (registry row, component) pairs
without a voucher, found set-based in one sequential pass.

``NOT_YET_ISSUED`` is the rule, written once: planning (the customers a run takes), dry
runs (what a run would issue) and the chunk statement (what it inserts into a range that
already holds vouchers) select through ``pairs``, which composes it with
``REGISTRY_ROW_REGISTERED``.

How it runs: the registry's rows come from its primary key (campaign, customer) and the
campaign's vouchers from their unique index (campaign, customer, component), both in
customer order, and PostgreSQL anti-joins them as a merge: one pass over each index (over
``[lo, hi)`` in a chunk), whatever is already issued, where probing the voucher index
once per registry row and component cost a whole issuance at 33.7M customers for a run
that issues 0.49 % of it. Two things keep it a merge:

* the vouchers are a subquery behind ``OFFSET 0``, sorted: pulled up into the anti join,
  their index's order is not offered to a merge (PostgreSQL 15 on the nullable side of an
  anti join), leaving a probe per row and component or a hash of every voucher; fenced,
  the subquery cannot be probed per row at all;
* ``fetch_owed`` runs the statement with hash joins off: the cost model finds hash and
  merge close, and a hash would write every voucher of the campaign (of the range) to disk
  in batches.
"""

from __future__ import annotations

from django.db import transaction

from vouchers.eligibility.registered import REGISTRY_ROW_REGISTERED
from vouchers.models.expiry import past_expiry

# The registry row ``r`` is still owed the voucher of component ``c``: it holds none of
# that component, whatever became of one since. What the chunk's ``ON CONFLICT`` would
# leave to insert. ``{held}``: the campaign's vouchers, ``_HELD``.
NOT_YET_ISSUED = """NOT EXISTS (
          SELECT 1 FROM {held} held
          WHERE held.registry_customer_id = r.customer_id AND held.component_id = c.id
      )"""
# In the order of their unique index; ``{within}``: empty, or bounds to the chunk's range
# (the merge would otherwise read the index from the campaign's first customer on).
_HELD = """(
              SELECT registry_customer_id, component_id FROM vouchers_voucher
              WHERE campaign_id = %(campaign_id)s{within}
              ORDER BY registry_customer_id, component_id OFFSET 0
          )"""
_HELD_WITHIN = ("\n                AND registry_customer_id >= %(lo)s"
                " AND registry_customer_id < %(hi)s")

_PAIRS = """
        SELECT r.campaign_id, r.customer_id, r.account_status, c.id AS component_id,
               c.category, c.amount_krw, c.single_use, c.min_order_krw, c.expires_at,
               c.valid_days, c.valid_from{numbered}
        FROM vouchers_registryentry r
        JOIN vouchers_component c ON c.campaign_id = r.campaign_id
        WHERE r.campaign_id = %(campaign_id)s{within}
          AND (c.expires_at IS NULL OR NOT {expired})
          AND {registered}{owed}"""
_WITHIN = "\n          AND r.customer_id >= %(lo)s AND r.customer_id < %(hi)s"
_NUMBERED = ",\n               dense_rank() OVER (ORDER BY r.customer_id) AS nth"
# A stage's customers: the first %(limit)s by id. The rank is monotonic, so PostgreSQL
# stops the walk at the first pair past the limit (a window "run condition").
_FIRST = """
        SELECT * FROM ({pairs}
        ) numbered
        WHERE nth <= %(limit)s"""


def pairs(*, owed: bool, stage: bool = False, within: bool = True) -> str:
    """SQL, a relation in customer-id order: one row per registry customer of campaign
    ``%(campaign_id)s`` without an exclusion in force and per component of the campaign
    not past its fixed expiry (a voucher issued expired would hold value nobody can use),
    with the customer's and the component's columns. ``owed``: only the pairs still owed
    a voucher (``NOT_YET_ISSUED``). ``within``: only customers of ``[%(lo)s, %(hi)s)``,
    else the whole registry. ``stage``: only the pairs of the first ``%(limit)s``
    customers."""
    held = _HELD.format(within=_HELD_WITHIN if within else "")
    sql = _PAIRS.format(
        numbered=_NUMBERED if stage else "", within=_WITHIN if within else "",
        registered=REGISTRY_ROW_REGISTERED, expired=past_expiry("now()", alias="c."),
        owed="\n          AND " + NOT_YET_ISSUED.format(held=held) if owed else "")
    return _FIRST.format(pairs=sql) if stage else sql


def fetch_owed(cursor, sql: str, params: dict) -> tuple:
    """Runs a statement built on ``pairs(owed=True)`` and returns its one row, with hash
    joins off for it alone (see the module's docstring)."""
    with transaction.atomic(savepoint=False):
        cursor.execute("SELECT set_config('enable_hashjoin', 'off', true)")
        cursor.execute(sql, params)
        row = cursor.fetchone()
        cursor.execute("SET LOCAL enable_hashjoin TO DEFAULT")
    return row
