"""The audit trail sealed by the sealer: events appended unsealed, linked a few seconds later.

Safe on a big table, without a rewrite and without blocking writes: the new column is
nullable, ``DROP NOT NULL`` only changes the catalog, ``hash``'s unique constraint goes
with a brief lock (no scan), and indexes are built and dropped concurrently (the migration
is not atomic). The index of a chain's order is built before the one it replaces is dropped;
the audit API's indexes are rebuilt over sealed events only (an append then writes only the
primary key and ``auditevent_unsealed``), each before its predecessor goes.

The append-only trigger now refuses every DELETE, and ``audit_event_seal_only`` every UPDATE
but the sealing of an unsealed event. A check refuses any new event that carries a
hash without a position: one linked by code from before the sealer. Deploy with the
appenders' code: an event such old code appended after this migration would be refused
rather than fork its chain. It is ``NOT VALID``: the events linked before the sealer have a
hash and no position, and stay as they are.
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models

# refuse_change() (0002) raises; the condition, checked without a function call, lets
# through only the sealing of an unsealed event: its hash, link and position set, nothing
# else changed.
SEAL_ONLY = """
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
ALTER TABLE voucher_service_auditevent ADD CONSTRAINT auditevent_sealed_by_the_sealer
    CHECK (hash IS NULL OR seal IS NOT NULL) NOT VALID;
"""

APPEND_ONLY = """
ALTER TABLE voucher_service_auditevent DROP CONSTRAINT auditevent_sealed_by_the_sealer;
DROP TRIGGER audit_event_seal_only ON voucher_service_auditevent;
DROP TRIGGER audit_event_append_only ON voucher_service_auditevent;
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
                migrations.RunSQL(
                    sql="DROP INDEX CONCURRENTLY IF EXISTS "
                        "voucher_service_auditevent_hash_6c31c780_like",
                    reverse_sql="CREATE INDEX CONCURRENTLY IF NOT EXISTS "
                                "voucher_service_auditevent_hash_6c31c780_like "
                                "ON voucher_service_auditevent (hash varchar_pattern_ops)",
                ),
            ],
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
