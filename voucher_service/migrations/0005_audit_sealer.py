"""The audit trail sealed by the sealer: events appended unsealed, linked a few seconds later.

Safe on a big table, without a rewrite and without blocking writes: the new column is
nullable, ``DROP NOT NULL`` only changes the catalog, ``hash``'s unique constraint goes
with a brief lock (no scan; the brief locks give up after 2 s), and indexes are built and
dropped concurrently (the migration is not atomic). The index of a chain's order is built before the one it replaces is dropped;
the audit API's indexes are rebuilt over sealed events only (an append then writes only the
primary key and ``auditevent_unsealed``), each before its predecessor goes.

The append-only trigger now refuses every DELETE, and ``audit_event_seal_only`` every UPDATE
but the sealing of an unsealed event. ``audit_event_enters_unsealed`` clears the link of
an event inserted with one: the code from before the sealer, still running while a
release rolls out, links its events by id under its chain lock, which would fork a chain
the sealer extends; its events enter unsealed instead and the sealer links them (the
code's head look-up finds its chain's last event without ``auditevent_chain_id``, by the
primary key). The events linked before the sealer keep their hashes.
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models

# refuse_change() (0002) raises; the conditions, checked without a function call, let
# through only the sealing of an unsealed event (its hash, link and position set, nothing
# else changed), and leave the function that clears a link to the inserts that bring one.
SEAL_ONLY = """
SET LOCAL lock_timeout = '2s';
CREATE FUNCTION audit_event_unsealed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.prev_hash := NULL;
    NEW.hash := NULL;
    NEW.seal := NULL;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_event_enters_unsealed
BEFORE INSERT ON voucher_service_auditevent
FOR EACH ROW WHEN (NEW.hash IS NOT NULL OR NEW.prev_hash IS NOT NULL OR NEW.seal IS NOT NULL)
EXECUTE FUNCTION audit_event_unsealed();
DROP TRIGGER audit_event_append_only ON voucher_service_auditevent;
CREATE TRIGGER audit_event_append_only
BEFORE DELETE ON voucher_service_auditevent
FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_event_seal_only
BEFORE UPDATE ON voucher_service_auditevent
FOR EACH ROW WHEN (
    OLD.hash IS NOT NULL OR NEW.hash IS NULL OR NEW.prev_hash IS NULL OR NEW.seal IS NULL
    OR (NEW.id, NEW.occurred_at, NEW.actor, NEW.action, NEW.target_type, NEW.target_id,
        NEW.payload, NEW.chain)
       IS DISTINCT FROM
       (OLD.id, OLD.occurred_at, OLD.actor, OLD.action, OLD.target_type, OLD.target_id,
        OLD.payload, OLD.chain))
EXECUTE FUNCTION refuse_change();
"""

APPEND_ONLY = """
DROP TRIGGER audit_event_seal_only ON voucher_service_auditevent;
DROP TRIGGER audit_event_append_only ON voucher_service_auditevent;
DROP TRIGGER audit_event_enters_unsealed ON voucher_service_auditevent;
DROP FUNCTION audit_event_unsealed();
CREATE TRIGGER audit_event_append_only
BEFORE UPDATE OR DELETE ON voucher_service_auditevent
FOR EACH ROW EXECUTE FUNCTION refuse_change();
"""


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("voucher_service", "0004_audit_chains"),
    ]

    operations = [
        # Brief locks of the whole table: given up after 2 s rather than queue every
        # writer behind a long transaction (the concurrent index builds wait without it).
        migrations.RunSQL("SET lock_timeout = '2s'", reverse_sql="RESET lock_timeout"),
        migrations.AddField(
            model_name="auditevent",
            name="seal",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="hash",
                    field=models.CharField(max_length=64, null=True),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql="ALTER TABLE voucher_service_auditevent "
                        "DROP CONSTRAINT voucher_service_auditevent_hash_key, "
                        "ALTER COLUMN hash DROP NOT NULL",
                    reverse_sql="ALTER TABLE voucher_service_auditevent "
                                "ALTER COLUMN hash SET NOT NULL, "
                                "ADD CONSTRAINT voucher_service_auditevent_hash_key UNIQUE (hash)",
                ),
            ],
        ),
        migrations.RunSQL("RESET lock_timeout", reverse_sql="SET lock_timeout = '2s'"),
        migrations.RunSQL(
            sql="DROP INDEX CONCURRENTLY IF EXISTS voucher_service_auditevent_hash_6c31c780_like",
            reverse_sql="CREATE INDEX CONCURRENTLY IF NOT EXISTS "
                        "voucher_service_auditevent_hash_6c31c780_like "
                        "ON voucher_service_auditevent (hash varchar_pattern_ops)",
        ),
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(models.F("chain"),
                               models.OrderBy(models.F("seal"), nulls_first=True),
                               models.F("id"), condition=models.Q(hash__isnull=False),
                               name="auditevent_chain_order"),
        ),
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(fields=["id"], condition=models.Q(hash__isnull=True),
                               name="auditevent_unsealed"),
        ),
        RemoveIndexConcurrently(
            model_name="auditevent",
            name="auditevent_chain_id",
        ),
        *(AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(fields=fields, name=name, condition=models.Q(hash__isnull=False)),
        ) for name, fields in (("auditevent_action", ["action", "id"]),
                               ("auditevent_actor", ["actor", "id"]),
                               ("auditevent_target", ["target_type", "target_id"]),
                               ("auditevent_occurred", ["occurred_at"]))),
        *(RemoveIndexConcurrently(model_name="auditevent", name=name)
          for name in ("voucher_ser_action_725677_idx", "voucher_ser_actor_560f97_idx",
                       "voucher_ser_target__3ca29f_idx", "voucher_ser_occurre_959ba2_idx")),
        migrations.RunSQL(SEAL_ONLY, APPEND_ONLY),
    ]
