"""What a database error was: which constraint an ``IntegrityError`` broke (services turn
a violation of a rule the database holds into the matching problem instead of a 500), and
whether a lock wait ran out (``lock_timeout``); and the plain-INSERT-first pattern of the
bulk writers that rests on the first."""

from __future__ import annotations

from django.db import DatabaseError, IntegrityError, transaction

_LOCK_NOT_AVAILABLE = "55P03"


def violated_constraint(exc: IntegrityError) -> str | None:
    """The constraint's name as PostgreSQL reports it (psycopg's diagnostics), or None."""
    return getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)


def lock_not_available(exc: DatabaseError) -> bool:
    """Whether the statement gave up waiting for a lock (``lock_timeout``, or ``NOWAIT``)."""
    return getattr(exc.__cause__, "sqlstate", None) == _LOCK_NOT_AVAILABLE


def ran_unless_violated(cursor, statement, params: dict, constraint: str) -> bool:
    """Runs ``statement`` in a savepoint: True, its results on ``cursor``; False if it
    broke ``constraint`` (its work rolled back). The bulk writers insert rows nobody else
    should have written yet with a plain INSERT, since ``ON CONFLICT`` costs a speculative
    insertion per row; should another transaction have written one of them meanwhile, the
    caller runs its ``ON CONFLICT`` form instead."""
    try:
        with transaction.atomic():
            cursor.execute(statement, params)
            return True
    except IntegrityError as exc:
        if violated_constraint(exc) != constraint:
            raise
        return False
