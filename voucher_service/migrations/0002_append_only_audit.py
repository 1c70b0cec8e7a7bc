"""Append-only by trigger: refuse UPDATE and DELETE on the audit trail.

``refuse_change()`` is shared with the ledger and the redemption tables.
"""

from django.db import migrations

REFUSE_CHANGE = """
CREATE OR REPLACE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""

TRIGGER = """
CREATE TRIGGER audit_event_append_only
BEFORE UPDATE OR DELETE ON voucher_service_auditevent
FOR EACH ROW EXECUTE FUNCTION refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("voucher_service", "0001_initial")]

    operations = [
        migrations.RunSQL(REFUSE_CHANGE, "DROP FUNCTION refuse_change();"),
        migrations.RunSQL(
            TRIGGER, "DROP TRIGGER audit_event_append_only ON voucher_service_auditevent;"
        ),
    ]
