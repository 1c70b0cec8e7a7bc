"""``merchant_category`` is never a filter: its two indexes only cost every checkout."""

from django.db import migrations, models

from voucher_service.migration_operations import drop_field_index


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("redemption", "0002_append_only"),
    ]

    operations = [
        drop_field_index(model_name="redemption", field_name="merchant_category",
                         field=models.SlugField(db_index=False, max_length=32),
                         table="redemption_redemption", column="merchant_category",
                         index="redemption_redemption_merchant_category_5c0b455f",
                         pattern_ops=True),
    ]
