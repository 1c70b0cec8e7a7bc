"""Migration operations that big tables can take while the service runs."""

from __future__ import annotations

from django.db import migrations
from django.db.models import Field


def drop_field_index(*, model_name: str, field_name: str, field: Field, table: str,
                     column: str, index: str, pattern_ops: bool = False
                     ) -> migrations.SeparateDatabaseAndState:
    """Django's own index of a field (``db_index``), dropped without locking its table.

    The state takes ``field`` (the field with ``db_index=False``), as ``AlterField`` would;
    the database drops the index with ``DROP INDEX CONCURRENTLY`` (and its
    ``varchar_pattern_ops`` twin ``<index>_like`` with ``pattern_ops``, as Django makes for
    a character field), which does not block writes as a plain ``DROP INDEX`` does. The
    migration must be ``atomic = False``; reversed, the indexes are built concurrently.
    """
    indexes = [(index, column)]
    if pattern_ops:
        indexes.append((f"{index}_like", f"{column} varchar_pattern_ops"))
    return migrations.SeparateDatabaseAndState(
        state_operations=[
            migrations.AlterField(model_name=model_name, name=field_name, field=field),
        ],
        database_operations=[
            migrations.RunSQL(
                sql=f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
                reverse_sql=f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({cols})",
            )
            for name, cols in indexes
        ],
    )
