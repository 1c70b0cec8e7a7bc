"""Parallel audit chains. Safe on a big table: the column has a constant default (no table
rewrite on PostgreSQL 11+) and the index is built concurrently (no write lock)."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("voucher_service", "0003_idempotencykey"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="chain",
            field=models.SmallIntegerField(default=0),
        ),
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(fields=["chain", "id"], name="auditevent_chain_id"),
        ),
    ]
