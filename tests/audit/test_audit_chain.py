import threading

import pytest
from django.db import DatabaseError, connection, connections, transaction

from voucher_service.audit import (
    GENESIS_HASH,
    EventAppend,
    event_hash,
    record_event,
    verify_audit_chain,
)
from voucher_service.models import AuditEvent


@pytest.fixture
def one_chain(settings):
    """The link mechanics are easiest to see on a single chain."""
    settings.AUDIT_CHAINS = 1


def _append(n: int, actor: str = "principal:ops") -> list[AuditEvent]:
    return [
        record_event(actor=actor, action="test.action", target_type="thing",
                     target_id=str(i), payload={"i": i})
        for i in range(n)
    ]


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_events_link_to_their_predecessor():
    first, second, third = _append(3)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    report = verify_audit_chain()
    assert report.ok and report.events_checked == 3


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_the_hash_postgresql_computes_is_the_one_python_verifies():
    """The append hashes in SQL; the verifier in Python: non-ASCII text, quotes,
    backslashes and nested values must give the same bytes to both."""
    odd = {"이름": "홍길동", "quote": 'say "hi"\\n', "nested": {"b": [1, None, True], "a": 1.5}}
    event = record_event(actor="principal:운영", action="test.odd", target_type="thing",
                         target_id="ü-1", payload=odd)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.hash == event.hash == event_hash(
        prev_hash=GENESIS_HASH, occurred_at=stored.occurred_at, actor=stored.actor,
        action=stored.action, target_type=stored.target_type, target_id=stored.target_id,
        payload=stored.payload)
    assert stored.payload == odd and stored.occurred_at == event.occurred_at
    assert verify_audit_chain().ok


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_an_append_sent_with_a_statement_runs_only_when_its_condition_holds():
    first = record_event(actor="a", action="x", target_type="t", target_id="1")
    skipped = EventAppend(actor="a", action="y", target_type="t", target_id="2",
                          when="EXISTS (SELECT 1 FROM new_rows WHERE n > %(limit)s)")
    taken = EventAppend(actor="a", action="z", target_type="t", target_id="3",
                        when="EXISTS (SELECT 1 FROM new_rows WHERE n > 0)")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE new_rows AS SELECT 1 AS n" + skipped.sql,
                       {"limit": 1, **skipped.params})
        assert skipped.appended(cursor) is None
        cursor.execute("SELECT 1" + taken.sql, taken.params)
        third = taken.appended(cursor)
    assert third.prev_hash == first.hash
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["x", "z"]
    assert verify_audit_chain().ok


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE voucher_service_auditevent SET payload = '{}'",
        "DELETE FROM voucher_service_auditevent",
    ],
)
def test_update_and_delete_are_refused(sql):
    _append(2)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute(sql)
    assert AuditEvent.objects.count() == 2


def _tamper(sql: str, params: list) -> None:
    """Edits with the trigger disabled, as a superuser with raw SQL could."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE voucher_service_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE voucher_service_auditevent ENABLE TRIGGER USER")


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_verifier_names_an_edited_event():
    events = _append(5)
    _tamper("UPDATE voucher_service_auditevent SET payload = %s WHERE id = %s",
            ['{"i": 999}', events[2].pk])
    report = verify_audit_chain()
    assert not report.ok
    assert report.first_break.event_id == events[2].pk
    assert "content" in report.first_break.reason


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_verifier_names_the_event_after_a_deleted_one():
    events = _append(5)
    _tamper("DELETE FROM voucher_service_auditevent WHERE id = %s", [events[1].pk])
    report = verify_audit_chain()
    assert report.first_break.event_id == events[2].pk
    assert "prev_hash" in report.first_break.reason


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_verifier_catches_a_rehashed_edit():
    """Recomputing the edited event's own hash still breaks the next event's link."""
    events = _append(4)
    _tamper(
        "UPDATE voucher_service_auditevent SET actor = 'principal:mallory', hash = %s "
        "WHERE id = %s",
        ["f" * 64, events[1].pk],
    )
    report = verify_audit_chain()
    assert report.first_break.event_id == events[1].pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_leave_unbroken_chains():
    threads, per_thread = 16, 25
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with transaction.atomic():
                    record_event(actor=f"principal:t{n}", action="test.concurrent",
                                 target_type="thing", target_id=f"{n}-{i}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    report = verify_audit_chain()
    assert report.ok and report.events_checked == threads * per_thread
    links = list(AuditEvent.objects.values_list("chain", "prev_hash"))
    assert len(set(links)) == len(links), "two events share a predecessor: a fork"
    assert len({chain for chain, _ in links}) > 1, "the appends all went to one chain"


@pytest.mark.django_db
def test_events_of_one_target_share_a_chain_and_others_spread(settings):
    settings.AUDIT_CHAINS = 8
    same = [record_event(actor="a", action="x", target_type="redemption", target_id="r-1")
            for _ in range(3)]
    assert len({e.chain for e in same}) == 1
    assert same[1].prev_hash == same[0].hash and same[2].prev_hash == same[1].hash
    spread = {record_event(actor="a", action="x", target_type="redemption",
                           target_id=f"r-{n}").chain for n in range(2, 60)}
    assert len(spread) == 8
    assert verify_audit_chain().ok


@pytest.mark.django_db
def test_verifier_names_an_edited_event_in_any_chain(settings):
    settings.AUDIT_CHAINS = 4
    events = [record_event(actor="a", action="x", target_type="t", target_id=str(n))
              for n in range(20)]
    victim = events[13]
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE voucher_service_auditevent DISABLE TRIGGER USER")
        cursor.execute("UPDATE voucher_service_auditevent SET actor = 'mallory' WHERE id = %s",
                       [victim.pk])
        cursor.execute("ALTER TABLE voucher_service_auditevent ENABLE TRIGGER USER")
    assert verify_audit_chain().first_break.event_id == victim.pk
