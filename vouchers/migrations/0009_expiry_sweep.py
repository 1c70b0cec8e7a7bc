"""Expiry sweeps (``vouchers.models.expiry``): expiry books leftovers without rewriting the
vouchers. A new, empty table. No voucher has reached the programme's expiry date yet, so
no row carries the ``expired`` status the former expiry wrote (with a zero balance)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('vouchers', '0008_valid_from'),
    ]

    operations = [
        migrations.CreateModel(
            name='ExpirySweep',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('cutoff', models.DateTimeField(unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('posted_at', models.DateTimeField(blank=True, null=True)),
                ('vouchers', models.BigIntegerField(default=0)),
                ('expired_krw', models.BigIntegerField(default=0)),
            ],
        ),
    ]
