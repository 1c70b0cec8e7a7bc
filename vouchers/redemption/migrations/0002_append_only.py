"""The database keeps redemptions append-only (docs/ARCHITECTURE.md, invariant 4).

Events refuse UPDATE and DELETE (``refuse_change()``, as the ledger). A redemption refuses
DELETE, any change to its facts, and any change of state but a forward step: authorized to
captured or voided; captured or partially refunded to partially refunded or refunded, with
refunded_krw only going up. The tables are new and empty here: creating the triggers
takes no long lock.
"""

from django.db import migrations

GUARD = """
CREATE FUNCTION redemption_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.campaign_id, NEW.voucher_id, NEW.customer_id, NEW.order_id,
        NEW.amount_krw, NEW.forfeited_krw, NEW.order_total_krw, NEW.merchant_category,
        NEW.created_at, NEW.authorized_until, NEW.created_by)
       IS DISTINCT FROM
       (OLD.id, OLD.campaign_id, OLD.voucher_id, OLD.customer_id, OLD.order_id,
        OLD.amount_krw, OLD.forfeited_krw, OLD.order_total_krw, OLD.merchant_category,
        OLD.created_at, OLD.authorized_until, OLD.created_by) THEN
        RAISE EXCEPTION 'redemption %: its facts are append-only', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT ((OLD.status, NEW.status) IN (
                ('authorized', 'captured'), ('authorized', 'voided'),
                ('captured', 'partially_refunded'), ('captured', 'refunded'),
                ('partially_refunded', 'partially_refunded'),
                ('partially_refunded', 'refunded'))
            AND NEW.refunded_krw >= OLD.refunded_krw) THEN
        RAISE EXCEPTION 'redemption %: % to % is not a forward step', OLD.id, OLD.status,
            NEW.status USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER redemption_forward_only
BEFORE UPDATE ON redemption_redemption
FOR EACH ROW EXECUTE FUNCTION redemption_forward_only();
CREATE TRIGGER redemption_no_delete
BEFORE DELETE ON redemption_redemption
FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER redemption_event_append_only
BEFORE UPDATE OR DELETE ON redemption_redemptionevent
FOR EACH ROW EXECUTE FUNCTION refuse_change();
"""

REVERSE = """
DROP TRIGGER redemption_event_append_only ON redemption_redemptionevent;
DROP TRIGGER redemption_no_delete ON redemption_redemption;
DROP TRIGGER redemption_forward_only ON redemption_redemption;
DROP FUNCTION redemption_forward_only();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("redemption", "0001_initial"),
        ("voucher_service", "0002_append_only_audit"),
    ]

    operations = [migrations.RunSQL(GUARD, REVERSE)]
