"""The redemption's statements: checkout, and the later movements of a redemption.

Every movement of a redemption writes the same three things, each spelt once here: the
voucher's new balance (``_BALANCE_SET``), the redemption's event (``_EVENT``) and the
ledger's moves (the ledger's ``posted``).

``CHECKOUT`` is the hot path of ``services.create_redemption``, one statement. The voucher
row is locked first; ``refusal`` names the first rule of ``rules.RULES`` the locked row
breaks. Only when it breaks none are the voucher spent, the redemption and its event
written and the ledger posted: the spending, and a single-use voucher's leftover as a
forfeit transaction of its own. Data-modifying WITH parts run to the end although nothing
reads them; each sees the locked row through ``spendable``. The answer is one row: the
new balance and the campaign's slug (for the eligibility fence), then the locked
voucher's columns (every one: a rule may read any), its refusal (or NULL) and forfeit;
no row when there is no such voucher. ``SPENT`` is true in a later statement of the same
transaction once the checkout has spent.

``movement(moves)`` is capture, void and refund: the rows are locked and the rules checked
by the service, which passes the moves it decided (a ``moves`` WITH part from the ledger),
what goes back on the voucher and the redemption's new state.
"""

from vouchers.ledger.posting import literal, posted
from vouchers.models import Account, Reason
from vouchers.redemption.rules import REFUSAL_SQL

# The voucher of each row of ``{source}`` (its ``id``) takes the row's ``balance_after``.
_BALANCE_SET = """
    UPDATE vouchers_voucher v
    SET balance_krw = b.balance_after,
        status = CASE WHEN b.balance_after = 0 THEN 'exhausted' ELSE 'active' END
    FROM {source} b WHERE v.id = b.id
"""
# The event of the redemption of each row of ``{source}`` (its ``id``).
_EVENT = """
    INSERT INTO redemption_redemptionevent
        (redemption_id, kind, amount_krw, restored_krw, created_at, actor)
    SELECT id, %(kind)s, %(amount_krw)s, %(restored_krw)s, %(now)s, %(actor)s FROM {source}
"""

# On one line: psycopg caches the parsing of a query's placeholders only up to 4,096 bytes,
# and this statement with the audit append that follows it is longer when indented
# (about 0.2 ms of parsing per checkout).
_CHECKOUT = """
WITH voucher AS (
    SELECT * FROM vouchers_voucher WHERE id = %(voucher_id)s
    FOR UPDATE
), checked AS (
    SELECT voucher.*,
           {refusal} AS refusal,
           CASE WHEN single_use THEN balance_krw - %(amount_krw)s ELSE 0 END AS forfeited
    FROM voucher
), spendable AS (
    SELECT *, balance_krw - %(amount_krw)s - forfeited AS balance_after
    FROM checked WHERE refusal IS NULL
), spent AS ({spent}), redemption AS (
    INSERT INTO redemption_redemption
        (id, campaign_id, voucher_id, customer_id, order_id, amount_krw, forfeited_krw,
         order_total_krw, merchant_category, status, refunded_krw, created_at, updated_at,
         authorized_until, created_by)
    SELECT %(id)s, campaign_id, id, customer_id, %(order_id)s, %(amount_krw)s, forfeited,
           %(order_total_krw)s, %(merchant_category)s, %(status)s, 0, %(now)s, %(now)s,
           %(authorized_until)s::timestamptz, %(actor)s
    FROM spendable
    RETURNING id
), event AS ({event}), moves AS (
    SELECT s.campaign_id, m.reason, s.id AS tx_voucher_id, %(id)s::uuid AS redemption_id,
           NULL::uuid AS run_id, NULL::bigint AS chunk_id, s.category,
           {liability} AS debit, m.credit, m.amount_krw, s.id AS voucher_id, 0 AS voucher_count
    FROM spendable s,
         LATERAL (VALUES (%(reason)s, %(account)s, %(amount_krw)s::bigint),
                         ({forfeit}, {forfeited}, s.forfeited)) AS m(reason, credit, amount_krw)
), {posted}
SELECT s.balance_after,
       (SELECT slug FROM vouchers_campaign WHERE id = c.campaign_id) AS campaign_slug, c.*
FROM checked c LEFT JOIN spendable s ON true
"""
CHECKOUT = " ".join(_CHECKOUT.format(
    refusal=REFUSAL_SQL, spent=_BALANCE_SET.format(source="spendable"),
    event=_EVENT.format(source="redemption"), posted=posted("moves"),
    liability=literal(Account.LIABILITY), forfeit=literal(Reason.FORFEIT),
    forfeited=literal(Account.FORFEITED)).split())

SPENT = "EXISTS (SELECT 1 FROM redemption_redemption WHERE id = %(id)s)"

_MOVEMENT = """
WITH {moves}, restored AS ({restored}), advanced AS (
    UPDATE redemption_redemption
    SET status = %(status)s, refunded_krw = %(refunded_krw)s, updated_at = %(now)s
    WHERE id = %(id)s
    RETURNING id
), event AS ({event}), {posted}
SELECT 1
"""
_RESTORED = """(
    SELECT %(voucher_id)s::bigint AS id, %(balance_after)s::bigint AS balance_after
    WHERE %(restored_krw)s > 0
)"""


def movement(moves: str) -> str:
    """Capture, void or refund: ``moves`` (a WITH part named ``moves``) posted, the
    voucher's balance set to ``balance_after`` when ``restored_krw`` goes back on it, the
    redemption's state advanced and its event written."""
    return _MOVEMENT.format(moves=moves, restored=_BALANCE_SET.format(source=_RESTORED),
                            event=_EVENT.format(source="advanced"), posted=posted("moves"))
