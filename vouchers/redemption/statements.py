"""The checkout in one statement: the hot path of ``services.create_redemption``.

The voucher row is locked first; ``refusal`` names the first rule of ``rules.RULES`` the
locked row breaks. Only when it breaks none are the voucher spent,
the redemption and its event written and the ledger posted: the spending, and a
single-use voucher's leftover as a forfeit transaction of its own. Data-modifying WITH
parts run to the end although nothing reads them; each sees the locked row through
``spendable``. The answer is one row, the refusal (or NULL), the forfeit, the new
balance and the campaign's slug (for the eligibility fence) followed by the locked
voucher's columns; no row when there is no such voucher. ``SPENT`` is true in a later
statement of the same transaction once the checkout has spent.
"""

from vouchers.redemption.rules import REFUSAL_SQL

# On one line: psycopg caches the parsing of a query's placeholders only up to 4,096 bytes,
# and this statement with the audit append that follows it is longer when indented
# (about 0.2 ms of parsing per checkout).
_CHECKOUT = """
WITH voucher AS (
    SELECT id, campaign_id, customer_id, category, balance_krw, single_use, min_order_krw,
           status, expires_at
    FROM vouchers_voucher WHERE id = %(voucher_id)s
    FOR UPDATE
), checked AS (
    SELECT voucher.*,
           {refusal} AS refusal,
           CASE WHEN single_use THEN balance_krw - %(amount_krw)s ELSE 0 END AS forfeited
    FROM voucher
), spendable AS (
    SELECT *, balance_krw - %(amount_krw)s - forfeited AS balance_after
    FROM checked WHERE refusal IS NULL
), spent AS (
    UPDATE vouchers_voucher v
    SET balance_krw = s.balance_after,
        status = CASE WHEN s.balance_after = 0 THEN 'exhausted' ELSE 'active' END
    FROM spendable s WHERE v.id = s.id
), redemption AS (
    INSERT INTO redemption_redemption
        (id, campaign_id, voucher_id, customer_id, order_id, amount_krw, forfeited_krw,
         order_total_krw, merchant_category, status, refunded_krw, created_at, updated_at,
         authorized_until, created_by)
    SELECT %(id)s, campaign_id, id, customer_id, %(order_id)s, %(amount_krw)s, forfeited,
           %(order_total_krw)s, %(merchant_category)s, %(status)s, 0, %(now)s, %(now)s,
           %(authorized_until)s::timestamptz, %(actor)s
    FROM spendable
    RETURNING id
), event AS (
    INSERT INTO redemption_redemptionevent
        (redemption_id, kind, amount_krw, restored_krw, created_at, actor)
    SELECT id, %(kind)s, %(amount_krw)s, 0, %(now)s, %(actor)s FROM redemption
), moves AS (
    SELECT s.campaign_id, s.id AS voucher_id, s.category, m.reason, m.account, m.amount_krw
    FROM spendable s,
         LATERAL (VALUES (%(reason)s, %(account)s, %(amount_krw)s::bigint),
                         ('forfeit', 'forfeited', s.forfeited)) AS m(reason, account, amount_krw)
    WHERE m.amount_krw > 0
), tx AS (
    INSERT INTO vouchers_ledgertransaction
        (campaign_id, reason, created_at, voucher_id, redemption_id)
    SELECT campaign_id, reason, now(), voucher_id, %(id)s FROM moves
    RETURNING id, reason
), posted AS (
    INSERT INTO vouchers_ledgerposting
        (transaction_id, campaign_id, category, account, voucher_id, amount_krw, voucher_count)
    SELECT tx.id, m.campaign_id, m.category, p.account, m.voucher_id, p.amount_krw, 0
    FROM tx JOIN moves m USING (reason),
         LATERAL (VALUES ('liability', m.amount_krw), (m.account, -m.amount_krw))
             AS p(account, amount_krw)
)
SELECT c.refusal, c.forfeited, s.balance_after,
       (SELECT slug FROM vouchers_campaign WHERE id = c.campaign_id) AS campaign_slug,
       c.id, c.campaign_id, c.customer_id, c.category, c.balance_krw, c.single_use,
       c.min_order_krw, c.status, c.expires_at
FROM checked c LEFT JOIN spendable s ON true
"""
CHECKOUT = " ".join(_CHECKOUT.split()).replace("{refusal}", REFUSAL_SQL)

SPENT = "EXISTS (SELECT 1 FROM redemption_redemption WHERE id = %(id)s)"
