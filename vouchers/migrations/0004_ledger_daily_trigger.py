"""The posting trigger also keeps per-day totals (Asia/Seoul days) for the dashboard."""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_postings_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
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
    INSERT INTO vouchers_ledgerdaily (campaign_id, account, day, slot, amount_krw)
    SELECT campaign_id, account, (now() AT TIME ZONE 'Asia/Seoul')::date,
           (coalesce(voucher_id, transaction_id) % 16)::smallint, sum(amount_krw)
    FROM new_postings
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (campaign_id, account, day, slot) DO UPDATE
    SET amount_krw = vouchers_ledgerdaily.amount_krw + EXCLUDED.amount_krw;
    RETURN NULL;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("vouchers", "0003_ledger_daily")]

    operations = [migrations.RunSQL(FUNCTION, migrations.RunSQL.noop)]
