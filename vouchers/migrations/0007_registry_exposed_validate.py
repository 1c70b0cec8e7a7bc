"""Validates 0006's CHECK on ``exposed`` in a transaction of its own: the scan of every row
runs under SHARE UPDATE EXCLUSIVE, which lets reads and writes of the registry go on (in
0006's transaction it would have held ACCESS EXCLUSIVE through the scan)."""

from django.contrib.postgres.operations import ValidateConstraint
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("vouchers", "0006_registry_exposed"),
    ]

    operations = [
        ValidateConstraint(model_name="registryentry", name="registry_exposed_bits"),
    ]
