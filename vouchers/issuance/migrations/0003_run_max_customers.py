"""Staged runs: ``max_customers`` on the run table.

Safe while the service runs: a nullable column without a default is a catalogue change (no
rewrite), and the CHECK scans only the run table, a row per run, never the registry or the
vouchers.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('issuance', '0002_issued_notice_per_chunk'),
        ('vouchers', '0005_drop_unused_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='issuancerun',
            name='max_customers',
            field=models.BigIntegerField(blank=True, help_text='A staged run: at most this many customers not yet issued, lowest customer ids first. Null: every eligible customer.', null=True),
        ),
        migrations.AddConstraint(
            model_name='issuancerun',
            constraint=models.CheckConstraint(condition=models.Q(('max_customers__gt', 0)), name='issuance_run_max_customers_positive'),
        ),
    ]
