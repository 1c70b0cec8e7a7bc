"""A registry entry's campaign, checked per statement instead of per row.

The foreign key queued a deferred check for every row an import wrote and ran them at the
batch's COMMIT, one lookup each: about half of an import batch's time (bench/RESULTS.md,
"Registry import"). The same rules, held by the database, set-based, as migration 0010
does for vouchers:

* ``registry_campaign_exists``: after each INSERT statement, every new entry's campaign
  must exist, checked once per distinct campaign of the statement's rows (a transition
  table); else the statement fails with ``foreign_key_violation``;
* ``registry_campaign_fixed``: an entry's campaign never changes;
* ``campaign_keeps_its_registry``: a campaign with registry entries cannot be deleted
  (found through the primary key, whose first column is the campaign).

Safe on a big table: dropping a constraint and creating triggers change the catalog only,
under brief locks that give up after 2 s.
"""

from django.db import migrations, models

CHECKS = """
SET lock_timeout = '2s';
CREATE FUNCTION registry_campaign_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    stray bigint;
BEGIN
    SELECT n.campaign_id INTO stray FROM (SELECT DISTINCT campaign_id FROM new_entries) n
    WHERE NOT EXISTS (SELECT 1 FROM vouchers_campaign c WHERE c.id = n.campaign_id)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'registry entry of campaign %: no such campaign', stray
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER registry_campaign_exists
AFTER INSERT ON vouchers_registryentry
REFERENCING NEW TABLE AS new_entries
FOR EACH STATEMENT EXECUTE FUNCTION registry_campaign_exists();
CREATE FUNCTION registry_campaign_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'registry entry %: its campaign never changes', OLD.customer_id
        USING ERRCODE = 'foreign_key_violation';
END
$$;
CREATE TRIGGER registry_campaign_fixed
BEFORE UPDATE ON vouchers_registryentry
FOR EACH ROW WHEN (NEW.campaign_id IS DISTINCT FROM OLD.campaign_id)
EXECUTE FUNCTION registry_campaign_fixed();
CREATE FUNCTION campaign_keeps_its_registry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM vouchers_registryentry WHERE campaign_id = OLD.id) THEN
        RAISE EXCEPTION 'campaign %: it has registry entries', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER campaign_keeps_its_registry
BEFORE DELETE ON vouchers_campaign
FOR EACH ROW EXECUTE FUNCTION campaign_keeps_its_registry();
ALTER TABLE vouchers_registryentry
    DROP CONSTRAINT IF EXISTS vouchers_registryent_campaign_id_361da781_fk_vouchers_;
RESET lock_timeout;
"""

FOREIGN_KEY = """
SET lock_timeout = '2s';
DROP TRIGGER campaign_keeps_its_registry ON vouchers_campaign;
DROP FUNCTION campaign_keeps_its_registry();
DROP TRIGGER registry_campaign_fixed ON vouchers_registryentry;
DROP FUNCTION registry_campaign_fixed();
DROP TRIGGER registry_campaign_exists ON vouchers_registryentry;
DROP FUNCTION registry_campaign_exists();
ALTER TABLE vouchers_registryentry
    ADD CONSTRAINT vouchers_registryent_campaign_id_361da781_fk_vouchers_
        FOREIGN KEY (campaign_id) REFERENCES vouchers_campaign (id)
        DEFERRABLE INITIALLY DEFERRED NOT VALID;
RESET lock_timeout;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("vouchers", "0011_voucher_live_expiry_brin"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="registryentry",
                    name="campaign",
                    field=models.ForeignKey(db_constraint=False, db_index=False,
                                            on_delete=models.deletion.PROTECT,
                                            to="vouchers.campaign"),
                ),
            ],
            database_operations=[migrations.RunSQL(CHECKS, FOREIGN_KEY)],
        ),
    ]
