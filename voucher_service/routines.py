"""Hot statements kept in PostgreSQL as PL/pgSQL functions ("routines"): parsed and planned
once per server connection instead of on every execution.

A statement sent as text is parsed, analysed and planned on every execution: for the
checkout's, about as much backend CPU as running it. A protocol-level prepared statement
keeps its plan only for its session, which PgBouncer's transaction pooling does not give a
client (1.18 loses it between transactions). A PL/pgSQL function's statements are parsed
once per server connection and their plans cached there, whichever client calls: the same
saving behind a transaction pooler, and no state of the client's.

A ``Routine`` is statements written as for the rest of the code (``%(name)s``
placeholders): its guards, conditions each checked in a statement of its own (when one
fails, the routine does nothing and returns no row), then its statements, the first of
which returns the routine's rows. ``call`` runs it with the same parameters
(``arguments``); ``run_alone`` runs it in a transaction of its own in one round trip.
Nothing is declared twice: installing asks PostgreSQL for the types of the parameters (as
it infers them for ``PREPARE``; a parameter takes the type its first statement gives it)
and of the first statement's columns. The function's name carries a hash of the
statements, so a changed statement is a new function: code and function cannot disagree,
and old and new code can run side by side during a deploy.

An app installs its routines after every ``migrate`` (``install``, from its
``post_migrate`` handler); ``missing`` names those a database lacks.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from django.db import DatabaseError, connection, connections, transaction
from django.db.transaction import TransactionManagementError

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_PROBE = "routine_probe"
_UNDEFINED_FUNCTION = "42883"


class RoutineMissing(DatabaseError):
    """The database lacks the routine's function: ``migrate`` has not run with this code."""


def _names(statement: str) -> list[str]:
    return list(dict.fromkeys(_PLACEHOLDER.findall(statement)))


def _probe_of_guard(guard: str) -> str:
    """A statement with the guard where PostgreSQL reads it: a condition."""
    return f"SELECT WHERE {guard}"


def _positional(statement: str, order: list[str]) -> str:
    """The statement with ``$n`` for the placeholder named ``order[n - 1]``."""
    return _PLACEHOLDER.sub(lambda m: f"${order.index(m.group(1)) + 1}",
                            statement).replace("%%", "%")


class Routine:
    def __init__(self, name: str, *statements: str, guards: tuple[str, ...] = ()) -> None:
        self.guards = guards
        self.statements = statements
        texts = [_probe_of_guard(guard) for guard in guards] + list(statements)
        self.parameters = list(dict.fromkeys(name for text in texts for name in _names(text)))
        digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:12]
        self.function = f"{name}_{digest}"
        placeholders = ", ".join(f"%({name})s" for name in self.parameters)
        # The routine's own name and placeholders: no value is written into the text.
        self.call = f"SELECT * FROM {self.function}({placeholders})"  # noqa: S608  # nosec B608

    def arguments(self, params: dict[str, Any]) -> dict[str, str | None]:
        """The parameters of ``call``: each value as text, which PostgreSQL reads with the
        function's own types (so the call needs no cast, and Python no types)."""
        return {name: None if params[name] is None else str(params[name])
                for name in self.parameters}

    def run_alone(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """Runs the routine in a transaction of its own, in one round trip (``BEGIN``, the
        call, ``COMMIT``), outside Django's transaction management; returns its first row,
        or None. Only where no transaction is open; on an error it rolls back (and raises
        ``RoutineMissing`` when the function is not installed)."""
        if connection.in_atomic_block or not connection.get_autocommit():
            raise TransactionManagementError("run_alone opens a transaction of its own")
        with connection.cursor() as cursor:
            try:
                cursor.execute(f"BEGIN; {self.call}; COMMIT", self.arguments(params))
            except DatabaseError as exc:
                _roll_back(cursor)
                if getattr(exc.__cause__, "sqlstate", None) == _UNDEFINED_FUNCTION:
                    raise RoutineMissing(self.function) from exc
                raise
            cursor.nextset()
            row = cursor.fetchone()
            names = [column.name for column in cursor.description]
        return None if row is None else dict(zip(names, row, strict=True))

    def _signature(self, cursor) -> tuple[list[str], list[str]]:
        """(each parameter's type, each column of the first statement as "name type"),
        as PostgreSQL infers them."""
        types: dict[str, str] = {}
        columns: list[str] = []
        probes = [*self.statements, *(_probe_of_guard(guard) for guard in self.guards)]
        for i, statement in enumerate(probes):
            names = _names(statement)
            cursor.execute(f"PREPARE {_PROBE} AS {_positional(statement, names)}")
            try:
                cursor.execute("SELECT parameter_types::text[] FROM pg_prepared_statements "
                               "WHERE name = %s", [_PROBE])
                for name, type_ in zip(names, cursor.fetchone()[0], strict=True):
                    types.setdefault(name, type_)
                if i == 0:
                    columns = _columns(cursor)
            finally:
                cursor.execute(f"DEALLOCATE {_PROBE}")
        return [types[name] for name in self.parameters], columns

    def definition(self, cursor) -> str:
        """The ``CREATE FUNCTION`` statement, its types asked of the database."""
        parameter_types, columns = self._signature(cursor)
        guards = "".join(f"    IF NOT ({_positional(guard, self.parameters)}) THEN RETURN; "
                         f"END IF;\n" for guard in self.guards)
        first, *rest = (_positional(s, self.parameters) for s in self.statements)
        body = "".join(f"    {statement};\n" for statement in rest)
        return (f"CREATE FUNCTION {self.function}({', '.join(parameter_types)})\n"
                f"RETURNS TABLE ({', '.join(columns)}) LANGUAGE plpgsql AS $routine$\n"
                f"#variable_conflict use_column\nBEGIN\n{guards}    RETURN QUERY {first};\n"
                f"{body}END\n$routine$")


def _roll_back(cursor) -> None:
    """Ends the transaction a failed ``run_alone`` left open, if the connection still can."""
    try:
        cursor.execute("ROLLBACK")
    except DatabaseError:
        connection.close()


def _columns(cursor) -> list[str]:
    """The columns of the prepared probe, as "name type"."""
    described = cursor.db.connection.pgconn.describe_prepared(_PROBE.encode())
    fields = [(described.fname(i).decode(), described.ftype(i), described.fmod(i))
              for i in range(described.nfields)]
    cursor.execute("SELECT format_type(oid, mod) FROM unnest(%s::oid[], %s::int[]) "
                   "WITH ORDINALITY AS f(oid, mod, n) ORDER BY n",
                   [[oid for _, oid, _ in fields], [mod for _, _, mod in fields]])
    return [f'"{name}" {type_}' for (name, _, _), (type_,) in zip(fields, cursor.fetchall(),
                                                                  strict=True)]


def missing(routines: Iterable[Routine], *, using: str) -> list[str]:
    """The functions of ``routines`` that the database lacks."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT name FROM unnest(%s::text[]) AS name "
                       "WHERE to_regproc(name) IS NULL",
                       [[routine.function for routine in routines]])
        return [name for (name,) in cursor.fetchall()]


def install(routines: Iterable[Routine], *, using: str) -> None:
    """Creates the functions of ``routines`` that the database lacks."""
    routines = list(routines)
    absent = set(missing(routines, using=using))
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        for routine in routines:
            if routine.function in absent:
                cursor.execute(routine.definition(cursor))
