"""A start date for components and their vouchers: nullable columns without a default, so
adding them to the voucher table (134.8 million rows at full size) rewrites nothing."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('vouchers', '0007_registry_exposed_validate'),
    ]

    operations = [
        migrations.AddField(
            model_name='component',
            name='valid_from',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='voucher',
            name='valid_from',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
