"""Enable pgcrypto: the registry import computes phone hashes in SQL with hmac()."""

from django.contrib.postgres.operations import CryptoExtension
from django.db import migrations


class Migration(migrations.Migration):
    initial = True

    dependencies: list = []

    operations = [CryptoExtension()]
