"""What a database error was: which constraint an ``IntegrityError`` broke (services turn
a violation of a rule the database holds into the matching problem instead of a 500), and
whether a lock wait ran out (``lock_timeout``)."""

from __future__ import annotations

from django.db import DatabaseError, IntegrityError

_LOCK_NOT_AVAILABLE = "55P03"


def violated_constraint(exc: IntegrityError) -> str | None:
    """The constraint's name as PostgreSQL reports it (psycopg's diagnostics), or None."""
    return getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)


def lock_not_available(exc: DatabaseError) -> bool:
    """Whether the statement gave up waiting for a lock (``lock_timeout``, or ``NOWAIT``)."""
    return getattr(exc.__cause__, "sqlstate", None) == _LOCK_NOT_AVAILABLE
