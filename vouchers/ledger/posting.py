"""How the ledger is written: the one place that inserts transactions and postings.

Every movement of value is a *move*: ``amount_krw`` from the ``credit`` account to the
``debit`` account (debit-positive postings, so a move is one posting of ``+amount`` and
one of ``-amount``: balanced by construction, and refused by the database otherwise).

Writers in SQL (the checkout, issuance's chunk, expiry) describe their moves as a relation
and compose ``posted(relation)`` into their statement; writers in Python call
``post_transaction`` with a list of ``Move``, which sends the same SQL. A moves relation
has these columns (``MOVE_COLUMNS``):

* the transaction a move belongs to, one per distinct combination:
  ``campaign_id, reason, tx_voucher_id, redemption_id, run_id, chunk_id``
  (the last four may be NULL);
* the move: ``category, debit, credit, amount_krw``, ``voucher_id`` (NULL on a summary
  move of many vouchers) and ``voucher_count`` (how many vouchers a summary move covers;
  it is kept on the debit posting).

Moves of ``amount_krw`` 0 post nothing. Call inside the transaction of the business change
the moves record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from django.db import connection

from vouchers.models import Account, Reason

MOVE_COLUMNS = ("campaign_id", "reason", "tx_voucher_id", "redemption_id", "run_id",
                "chunk_id", "category", "debit", "credit", "amount_krw", "voucher_id",
                "voucher_count")

_POSTED = """
ledger_tx AS (
    INSERT INTO vouchers_ledgertransaction
        (campaign_id, reason, voucher_id, redemption_id, run_id, chunk_id, created_at)
    SELECT DISTINCT campaign_id, reason, tx_voucher_id, redemption_id, run_id, chunk_id, now()
    FROM {moves} WHERE amount_krw <> 0
    RETURNING id, campaign_id, reason, voucher_id, redemption_id, run_id, chunk_id
), ledger_postings AS (
    INSERT INTO vouchers_ledgerposting
        (transaction_id, campaign_id, category, account, voucher_id, amount_krw, voucher_count)
    SELECT t.id, m.campaign_id, m.category, p.account, m.voucher_id, p.amount_krw,
           p.voucher_count
    FROM {moves} m
    JOIN ledger_tx t
      ON (t.campaign_id, t.reason, t.voucher_id, t.redemption_id, t.run_id, t.chunk_id)
         IS NOT DISTINCT FROM
         (m.campaign_id, m.reason, m.tx_voucher_id, m.redemption_id, m.run_id, m.chunk_id),
    LATERAL (VALUES (m.debit, m.amount_krw, m.voucher_count),
                    (m.credit, -m.amount_krw, 0)) AS p(account, amount_krw, voucher_count)
    WHERE m.amount_krw <> 0
)"""


def literal(value: Account | Reason) -> str:
    """An account or a reason as a SQL literal, for moves spelt in a statement."""
    return f"'{value.value}'"


def posted(moves: str) -> str:
    """``WITH`` parts (``ledger_tx``, ``ledger_postings``; they follow a comma) posting the
    moves of the relation named ``moves``. They run to the end whether or not the
    statement reads them."""
    return _POSTED.replace("{moves}", moves)


@dataclass(frozen=True)
class Move:
    """``amount_krw`` (positive) from ``credit`` to ``debit``."""

    debit: Account
    credit: Account
    amount_krw: int
    category: str
    voucher_id: int | None = None
    voucher_count: int = 0


def move(*, debit: Account, credit: Account, amount_krw: int, category: str,
         voucher_id: int | None = None) -> Move:
    return Move(debit, credit, amount_krw, category, voucher_id)


_VALUE = ("(%(campaign_id)s::bigint, %({n}reason)s::text, %(tx_voucher_id)s::bigint,"
          " %(redemption_id)s::uuid, %(run_id)s::uuid, NULL::bigint, %({n}category)s::text,"
          " %({n}debit)s::text, %({n}credit)s::text, %({n}amount_krw)s::bigint,"
          " %({n}voucher_id)s::bigint, %({n}voucher_count)s::int)")


def moves_part(
    transactions: Sequence[tuple[Reason, Sequence[Move]]],
    *,
    campaign_id: int,
    voucher_id: int | None = None,
    redemption_id: UUID | None = None,
    run_id: UUID | None = None,
) -> tuple[str, dict[str, object]]:
    """A ``moves`` WITH part holding these moves, one ledger transaction per reason, and
    its named parameters (``campaign_id``, ``tx_voucher_id``, ``redemption_id``,
    ``run_id`` and ``move<i>_...``), for a statement that composes ``posted("moves")``.
    Moves of 0 won are left out; a negative one is refused."""
    params: dict[str, object] = {"campaign_id": campaign_id, "tx_voucher_id": voucher_id,
                                 "redemption_id": redemption_id, "run_id": run_id}
    rows = []
    for reason, moves in transactions:
        for m in moves:
            if m.amount_krw < 0:
                raise ValueError(f"a move's amount cannot be negative: {m!r}")
            if m.amount_krw == 0:
                continue
            n = f"move{len(rows)}_"
            params.update({f"{n}reason": reason.value, f"{n}category": m.category,
                           f"{n}debit": m.debit.value, f"{n}credit": m.credit.value,
                           f"{n}amount_krw": m.amount_krw, f"{n}voucher_id": m.voucher_id,
                           f"{n}voucher_count": m.voucher_count})
            rows.append(_VALUE.replace("{n}", n))
    if not rows:
        raise ValueError("a ledger transaction needs at least one move of more than 0 won")
    return f"moves ({', '.join(MOVE_COLUMNS)}) AS (VALUES {', '.join(rows)})", params


def post_transaction(
    *,
    campaign_id: int,
    reason: Reason,
    moves: Sequence[Move],
    voucher_id: int | None = None,
    redemption_id: UUID | None = None,
    run_id: UUID | None = None,
) -> None:
    """Records the moves as one ledger transaction."""
    part, params = moves_part([(reason, moves)], campaign_id=campaign_id, voucher_id=voucher_id,
                              redemption_id=redemption_id, run_id=run_id)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {part}, {posted('moves')} SELECT 1", params)  # nosec B608
