"""Routines: statements kept as PL/pgSQL functions, their types asked of PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from voucher_service.routines import Routine, RoutineMissing, install, missing
from vouchers.redemption.services import CHECKOUT_ROUTINE


@pytest.fixture
def notes_table():
    """A table of the test's own, dropped after it (a transactional test keeps it else)."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE routine_test_notes (n bigint NOT NULL, note text)")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE routine_test_notes")


def _notes() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT n, note FROM routine_test_notes ORDER BY n")
        return cursor.fetchall()


def _noting(name: str, *, guard: str = "%(go)s") -> Routine:
    """Returns its arguments reworked, then notes them down, when ``guard`` holds."""
    return Routine(name,
                   "SELECT %(n)s * 2 AS doubled, upper(%(note)s) AS shout",
                   "INSERT INTO routine_test_notes (n, note) VALUES (%(n)s, %(note)s)",
                   guards=(guard,))


def _call(routine: Routine, **params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(routine.call, routine.arguments(params))
        return cursor.fetchall()


@pytest.mark.django_db
def test_migrate_installs_the_checkout_routine():
    assert missing([CHECKOUT_ROUTINE], using="default") == []


@pytest.mark.django_db
@pytest.mark.usefixtures("notes_table")
def test_a_routine_returns_its_first_statement_and_runs_the_rest_when_its_guards_hold():
    routine = _noting("test_noting")
    assert missing([routine], using="default") == [routine.function]
    install([routine], using="default")
    assert missing([routine], using="default") == []
    assert _call(routine, n=21, note="50% off", go=True) == [(42, "50% OFF")]
    assert _call(routine, n=5, note="no", go=False) == []
    assert _notes() == [(21, "50% off")]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_function_arguments(%s::regproc)", [routine.function])
        # The guard's parameter first, each typed as PostgreSQL reads it there.
        assert cursor.fetchone()[0] == "boolean, integer, text"


def test_a_changed_statement_is_another_function():
    assert _noting("r").function == _noting("r").function
    assert _noting("r").function != _noting("r", guard="NOT %(go)s").function


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("notes_table")
def test_run_alone_commits_in_one_round_trip_and_only_outside_a_transaction():
    routine = _noting("test_noting_alone")
    install([routine], using="default")
    with CaptureQueriesContext(connection) as queries:
        assert routine.run_alone({"n": 1, "note": "a", "go": True}) == {"doubled": 2,
                                                                        "shout": "A"}
        assert routine.run_alone({"n": 2, "note": "b", "go": False}) is None
    assert len(queries) == 2
    assert _notes() == [(1, "a")]
    with pytest.raises(TransactionManagementError), transaction.atomic():
        routine.run_alone({"n": 3, "note": "c", "go": True})
    assert _notes() == [(1, "a")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("notes_table")
def test_run_alone_rolls_back_what_failed_and_leaves_the_connection_usable():
    failing = Routine("test_failing",
                      "INSERT INTO routine_test_notes (n, note) VALUES (%(n)s, 'x') RETURNING n",
                      "SELECT 1 / (%(n)s::bigint - %(n)s)")
    install([failing], using="default")
    with pytest.raises(DatabaseError, match="division by zero"):
        failing.run_alone({"n": 7})
    assert _notes() == []
    assert connection.get_autocommit() and not connection.in_atomic_block


@pytest.mark.django_db(transaction=True)
def test_run_alone_names_a_routine_not_installed():
    with pytest.raises(RoutineMissing, match="test_never_installed_"):
        Routine("test_never_installed", "SELECT 1 AS one").run_alone({})
    assert connection.get_autocommit() and not connection.in_atomic_block
