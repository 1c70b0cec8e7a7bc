"""Indexes that nothing reads and every write maintains.

``category`` (a SlugField, indexed by default, with a ``LIKE`` twin) is never a filter on
vouchers, postings or balances (whose unique key holds it); ``campaign_id`` alone is the leading column of the voucher's unique
constraint and of the registry's primary key. Issuance wrote three entries into them per
voucher, an import one per registry row, and a checkout four for its two postings and
three more whenever the voucher's update could not stay on its page.
"""

import django.db.models.deletion
from django.db import migrations, models

from voucher_service.migration_operations import drop_field_index


def _campaign():
    return models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT,
                             to="vouchers.campaign")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("vouchers", "0004_ledger_daily_trigger"),
    ]

    operations = [
        drop_field_index(model_name="ledgerbalance", field_name="category",
                         field=models.SlugField(db_index=False, max_length=32),
                         table="vouchers_ledgerbalance", column="category",
                         index="vouchers_ledgerbalance_category_3810af35", pattern_ops=True),
        drop_field_index(model_name="ledgerposting", field_name="category",
                         field=models.SlugField(db_index=False, max_length=32),
                         table="vouchers_ledgerposting", column="category",
                         index="vouchers_ledgerposting_category_d3ae8f8c", pattern_ops=True),
        drop_field_index(model_name="registryentry", field_name="campaign", field=_campaign(),
                         table="vouchers_registryentry", column="campaign_id",
                         index="vouchers_registryentry_campaign_id_361da781"),
        drop_field_index(model_name="voucher", field_name="campaign", field=_campaign(),
                         table="vouchers_voucher", column="campaign_id",
                         index="vouchers_voucher_campaign_id_4f9e9293"),
        drop_field_index(model_name="voucher", field_name="category",
                         field=models.SlugField(db_index=False, max_length=32),
                         table="vouchers_voucher", column="category",
                         index="vouchers_voucher_category_ecfbb5e8", pattern_ops=True),
    ]
