"""The live vouchers' expiry index becomes a block-range (BRIN) index.

Built before the B-tree is dropped, both without blocking writes (``CONCURRENTLY``): at no
moment is there no index for the sweeps and reminders to use. See ``Voucher.Meta``.
"""

from django.contrib.postgres.indexes import BrinIndex
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations
from django.db.models import Q


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("vouchers", "0010_voucher_references_per_statement"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="voucher",
            index=BrinIndex(autosummarize=True, condition=Q(status__in=["active", "unclaimed"]),
                            fields=["expires_at"], name="voucher_live_expiry_brin"),
        ),
        RemoveIndexConcurrently(model_name="voucher", name="voucher_live_by_expiry"),
    ]
