"""The ledger's database rules: append-only tables, balanced inserts, running totals."""

from django.db import migrations

APPEND_ONLY = """
CREATE TRIGGER ledger_transaction_append_only
BEFORE UPDATE OR DELETE ON vouchers_ledgertransaction
FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ledger_posting_append_only
BEFORE UPDATE OR DELETE ON vouchers_ledgerposting
FOR EACH ROW EXECUTE FUNCTION refuse_change();
"""

AFTER_INSERT = """
CREATE FUNCTION ledger_postings_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced bigint;
BEGIN
    SELECT transaction_id INTO unbalanced
    FROM new_postings GROUP BY transaction_id HAVING sum(amount_krw) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance', unbalanced
            USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO vouchers_ledgerbalance
        (campaign_id, category, account, slot, balance_krw, voucher_count)
    SELECT campaign_id, category, account,
           (coalesce(voucher_id, transaction_id) % 16)::smallint,
           sum(amount_krw), sum(voucher_count)
    FROM new_postings
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (campaign_id, category, account, slot) DO UPDATE
    SET balance_krw = vouchers_ledgerbalance.balance_krw + EXCLUDED.balance_krw,
        voucher_count = vouchers_ledgerbalance.voucher_count + EXCLUDED.voucher_count;
    RETURN NULL;
END
$$;
CREATE TRIGGER ledger_postings_after_insert
AFTER INSERT ON vouchers_ledgerposting
REFERENCING NEW TABLE AS new_postings
FOR EACH STATEMENT EXECUTE FUNCTION ledger_postings_after_insert();
"""

REVERSE = """
DROP TRIGGER ledger_postings_after_insert ON vouchers_ledgerposting;
DROP FUNCTION ledger_postings_after_insert();
DROP TRIGGER ledger_posting_append_only ON vouchers_ledgerposting;
DROP TRIGGER ledger_transaction_append_only ON vouchers_ledgertransaction;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("vouchers", "0001_initial"),
        ("voucher_service", "0002_append_only_audit"),
    ]

    operations = [migrations.RunSQL(APPEND_ONLY + AFTER_INSERT, REVERSE)]
