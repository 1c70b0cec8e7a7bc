"""A voucher's campaign and component, checked per statement instead of per row.

A foreign key checks each inserted row with a lookup of its own at commit: for the
voucher table's two, half the cost of inserting a voucher (1,000,000 vouchers into the
134.8M-row table: 12.3-13.3 s with them, 6.0-6.2 s without; bench/RESULTS.md,
"Full-scale rehearsal"). The same rules, held by the database, set-based:

* ``voucher_references_exist``: after each INSERT statement, every new voucher's
  (campaign, component) must be a component of that campaign, checked with one join of
  the statement's rows (a transition table) against the components; else the statement
  fails with ``foreign_key_violation``;
* ``voucher_references_fixed``: a voucher's campaign and component never change;
* ``component_keeps_its_vouchers``, ``campaign_keeps_its_vouchers``: a component or a
  campaign with vouchers cannot be deleted (found through the one-per-customer-component
  index, whose first column is the campaign).

The component-id index served only the foreign key's delete check: dropped (about 3 GB at
full size, and a fifth of the index writes per voucher). Safe on a big table: dropping a
constraint and creating triggers change the catalog only, under brief locks that give up
after 2 s; the index is dropped concurrently (the migration is not atomic).
"""

from django.db import migrations, models

REFERENCES = """
SET lock_timeout = '2s';
CREATE FUNCTION voucher_references_exist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    stray bigint;
BEGIN
    SELECT n.id INTO stray FROM new_vouchers n
    WHERE NOT EXISTS (SELECT 1 FROM vouchers_component c
                      WHERE c.id = n.component_id AND c.campaign_id = n.campaign_id)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'voucher %: its component is not one of its campaign''s', stray
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER voucher_references_exist
AFTER INSERT ON vouchers_voucher
REFERENCING NEW TABLE AS new_vouchers
FOR EACH STATEMENT EXECUTE FUNCTION voucher_references_exist();
CREATE FUNCTION voucher_references_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'voucher %: its campaign and component never change', OLD.id
        USING ERRCODE = 'foreign_key_violation';
END
$$;
CREATE TRIGGER voucher_references_fixed
BEFORE UPDATE ON vouchers_voucher
FOR EACH ROW WHEN ((NEW.campaign_id, NEW.component_id)
                   IS DISTINCT FROM (OLD.campaign_id, OLD.component_id))
EXECUTE FUNCTION voucher_references_fixed();
CREATE FUNCTION component_keeps_its_vouchers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM vouchers_voucher
               WHERE campaign_id = OLD.campaign_id AND component_id = OLD.id) THEN
        RAISE EXCEPTION 'component %: it has vouchers', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER component_keeps_its_vouchers
BEFORE DELETE ON vouchers_component
FOR EACH ROW EXECUTE FUNCTION component_keeps_its_vouchers();
CREATE FUNCTION campaign_keeps_its_vouchers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM vouchers_voucher WHERE campaign_id = OLD.id) THEN
        RAISE EXCEPTION 'campaign %: it has vouchers', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER campaign_keeps_its_vouchers
BEFORE DELETE ON vouchers_campaign
FOR EACH ROW EXECUTE FUNCTION campaign_keeps_its_vouchers();
ALTER TABLE vouchers_voucher
    DROP CONSTRAINT IF EXISTS vouchers_voucher_campaign_id_4f9e9293_fk_vouchers_campaign_id,
    DROP CONSTRAINT IF EXISTS vouchers_voucher_component_id_b266d30f_fk_vouchers_component_id;
RESET lock_timeout;
"""

FOREIGN_KEYS = """
SET lock_timeout = '2s';
DROP TRIGGER campaign_keeps_its_vouchers ON vouchers_campaign;
DROP FUNCTION campaign_keeps_its_vouchers();
DROP TRIGGER component_keeps_its_vouchers ON vouchers_component;
DROP FUNCTION component_keeps_its_vouchers();
DROP TRIGGER voucher_references_fixed ON vouchers_voucher;
DROP FUNCTION voucher_references_fixed();
DROP TRIGGER voucher_references_exist ON vouchers_voucher;
DROP FUNCTION voucher_references_exist();
ALTER TABLE vouchers_voucher
    ADD CONSTRAINT vouchers_voucher_campaign_id_4f9e9293_fk_vouchers_campaign_id
        FOREIGN KEY (campaign_id) REFERENCES vouchers_campaign (id)
        DEFERRABLE INITIALLY DEFERRED NOT VALID,
    ADD CONSTRAINT vouchers_voucher_component_id_b266d30f_fk_vouchers_component_id
        FOREIGN KEY (component_id) REFERENCES vouchers_component (id)
        DEFERRABLE INITIALLY DEFERRED NOT VALID;
RESET lock_timeout;
"""


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("vouchers", "0009_expiry_sweep"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="voucher",
                    name="campaign",
                    field=models.ForeignKey(db_constraint=False, db_index=False,
                                            on_delete=models.deletion.PROTECT,
                                            to="vouchers.campaign"),
                ),
                migrations.AlterField(
                    model_name="voucher",
                    name="component",
                    field=models.ForeignKey(db_constraint=False, db_index=False,
                                            on_delete=models.deletion.PROTECT,
                                            to="vouchers.component"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(REFERENCES, FOREIGN_KEYS),
                migrations.RunSQL(
                    "DROP INDEX CONCURRENTLY IF EXISTS vouchers_voucher_component_id_b266d30f",
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS "
                    "vouchers_voucher_component_id_b266d30f ON vouchers_voucher (component_id)",
                ),
            ],
        ),
    ]
