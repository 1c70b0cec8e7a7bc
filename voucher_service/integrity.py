"""Which database constraint an ``IntegrityError`` broke: services turn a violation of a
rule the database holds into the matching problem instead of a 500."""

from __future__ import annotations

from django.db import IntegrityError


def violated_constraint(exc: IntegrityError) -> str | None:
    """The constraint's name as PostgreSQL reports it (psycopg's diagnostics), or None."""
    return getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
