import threading
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from voucher_service.audit import (
    GENESIS_HASH,
    EventAppend,
    append_statement,
    event_hash,
    record_event,
    verify_audit_chain,
)
from voucher_service.models import AuditEvent
from voucher_service.sealing import seal_events


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


def _sealed(events: list[AuditEvent]) -> list[AuditEvent]:
    """The events as stored, once the sealer has run."""
    seal_events()
    stored = AuditEvent.objects.in_bulk([event.pk for event in events])
    return [stored[event.pk] for event in events]


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_events_are_appended_unsealed_and_the_sealer_links_them_in_order():
    appended = _append(3)
    assert all(event.hash is None for event in appended)
    assert AuditEvent.objects.filter(hash__isnull=True).count() == 3
    first, second, third = _sealed(appended)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    assert [first.seal, second.seal, third.seal] == [1, 2, 3]
    report = verify_audit_chain()
    assert report.ok and report.events_checked == 3 and report.unsealed == 0


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_a_later_batch_links_to_the_head_of_the_earlier_one():
    first = _sealed(_append(2))
    assert seal_events() == 0
    later = _sealed(_append(2))
    assert later[0].prev_hash == first[-1].hash and later[0].seal == 3
    assert verify_audit_chain().ok


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_odd_payloads_seal_and_verify():
    """The sealer hashes what the database stored, as the verifier reads it: non-ASCII
    text, quotes, backslashes and nested values."""
    odd = {"이름": "홍길동", "quote": 'say "hi"\\n', "nested": {"b": [1, None, True], "a": 1.5}}
    event = record_event(actor="principal:운영", action="test.odd", target_type="thing",
                         target_id="ü-1", payload=odd)
    (stored,) = _sealed([event])
    assert stored.hash == event_hash(
        prev_hash=GENESIS_HASH, occurred_at=event.occurred_at, actor=event.actor,
        action=event.action, target_type=event.target_type, target_id=event.target_id,
        payload=odd)
    assert stored.payload == odd and stored.occurred_at == event.occurred_at
    assert verify_audit_chain().ok


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_an_append_sent_with_a_statement_runs_only_when_its_condition_holds():
    first = record_event(actor="a", action="x", target_type="t", target_id="1")
    skipped = EventAppend(actor="a", action="y", target_type="t", target_id="2")
    taken = EventAppend(actor="a", action="z", target_type="t", target_id="3")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE new_rows AS SELECT 1 AS n; " + append_statement(
            when="EXISTS (SELECT 1 FROM new_rows WHERE n > %(limit)s)"),
            {"limit": 1, **skipped.params})
        cursor.execute("SELECT 1; " + append_statement(
            when="EXISTS (SELECT 1 FROM new_rows WHERE n > 0)"), taken.params)
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == ["x", "z"]
    first, third = _sealed(list(AuditEvent.objects.order_by("id")))
    assert third.prev_hash == first.hash
    assert verify_audit_chain().ok


@pytest.mark.django_db
@pytest.mark.parametrize("sealed", [False, True], ids=["unsealed", "sealed"])
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE voucher_service_auditevent SET payload = '{}'",
        "UPDATE voucher_service_auditevent SET hash = repeat('f', 64), prev_hash = hash, "
        "seal = 9",
        "DELETE FROM voucher_service_auditevent",
    ],
    ids=["edit", "seal-again", "delete"],
)
def test_update_and_delete_are_refused(sql, sealed):
    events = _append(2)
    if sealed:
        _sealed(events)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute(sql)
    assert AuditEvent.objects.count() == 2
    assert verify_audit_chain().ok


@pytest.mark.django_db
def test_only_sealing_an_unsealed_event_is_let_through():
    """What the sealer does passes the trigger; the same with an edit does not."""
    event = _append(1)[0]
    seal = ("UPDATE voucher_service_auditevent SET prev_hash = %s, hash = %s, seal = 1{edit} "
            "WHERE id = %s")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute(seal.format(edit=", actor = 'mallory'"),
                       [GENESIS_HASH, "e" * 64, event.pk])
    with connection.cursor() as cursor:
        cursor.execute(seal.format(edit=""), [GENESIS_HASH, "e" * 64, event.pk])
    assert AuditEvent.objects.get(pk=event.pk).seal == 1


def _tamper(sql: str, params: list) -> None:
    """Edits with the trigger disabled, as a superuser with raw SQL could."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE voucher_service_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE voucher_service_auditevent ENABLE TRIGGER USER")


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_verifier_names_an_edited_sealed_event():
    events = _sealed(_append(5))
    _tamper("UPDATE voucher_service_auditevent SET payload = %s WHERE id = %s",
            ['{"i": 999}', events[2].pk])
    report = verify_audit_chain()
    assert not report.ok
    assert report.first_break.event_id == events[2].pk
    assert "content" in report.first_break.reason


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_verifier_names_the_event_after_a_deleted_one():
    events = _sealed(_append(5))
    _tamper("DELETE FROM voucher_service_auditevent WHERE id = %s", [events[1].pk])
    report = verify_audit_chain()
    assert report.first_break.event_id == events[2].pk
    assert "prev_hash" in report.first_break.reason


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_verifier_catches_a_rehashed_edit():
    """Recomputing the edited event's own hash still breaks the next event's link."""
    events = _sealed(_append(4))
    _tamper(
        "UPDATE voucher_service_auditevent SET actor = 'principal:mallory', hash = %s "
        "WHERE id = %s",
        ["f" * 64, events[1].pk],
    )
    report = verify_audit_chain()
    assert report.first_break.event_id == events[1].pk


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_verifier_catches_sealed_events_swapped_in_their_chain():
    events = _sealed(_append(4))
    _tamper("UPDATE voucher_service_auditevent SET seal = 5 - seal WHERE id IN (%s, %s)",
            [events[1].pk, events[2].pk])
    assert verify_audit_chain().first_break.event_id == events[2].pk


@pytest.mark.django_db
def test_verifier_names_an_event_left_unsealed_longer_than_the_bound(settings):
    settings.AUDIT_SEAL_MAX_LAG_SECONDS = 60
    sealed = _sealed(_append(2))
    late, recent = _append(2)
    _tamper("UPDATE voucher_service_auditevent SET occurred_at = occurred_at - interval '61 s' "
            "WHERE id = %s", [late.pk])
    report = verify_audit_chain()
    assert not report.ok and report.unsealed == 2
    assert report.first_break.event_id == late.pk
    assert "unsealed" in report.first_break.reason
    # Within the bound an unsealed event is no failure, and sealed none is.
    assert verify_audit_chain(now=timezone.now() - timedelta(seconds=30)).ok
    _sealed([late, recent])
    report = verify_audit_chain()
    assert report.ok and report.unsealed == 0 and report.events_checked == len(sealed) + 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_appenders_and_sealers_leave_every_event_sealed_once_in_order(settings):
    """Appenders commit in any order while two sealers run over and over: every event ends
    up sealed once, no chain forks, positions run 1, 2, 3, ... per chain, and each
    target's events, appended one after another, are sealed in that order."""
    settings.AUDIT_CHAINS = 4
    appenders, per_appender = 12, 30
    barrier = threading.Barrier(appenders + 2)
    appending = threading.Event()
    errors: list[BaseException] = []

    def append(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_appender):
                with transaction.atomic():
                    record_event(actor=f"principal:t{n}", action="test.concurrent",
                                 target_type="thing", target_id=f"{n}", payload={"i": i})
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def seal() -> None:
        try:
            barrier.wait()
            while appending.is_set():
                seal_events(batch_size=7)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    appending.set()
    pool = [threading.Thread(target=append, args=(n,)) for n in range(appenders)]
    sealers = [threading.Thread(target=seal) for _ in range(2)]
    for t in pool + sealers:
        t.start()
    for t in pool:
        t.join()
    appending.clear()
    for t in sealers:
        t.join()
    seal_events()
    assert not errors
    report = verify_audit_chain()
    assert report.ok and report.unsealed == 0
    assert report.events_checked == appenders * per_appender
    rows = list(AuditEvent.objects.order_by("chain", "seal")
                .values_list("chain", "seal", "prev_hash", "target_id", "payload"))
    assert len({(chain, prev) for chain, _, prev, _, _ in rows}) == len(rows), "a fork"
    for chain in {row[0] for row in rows}:
        seals = [seal for c, seal, _, _, _ in rows if c == chain]
        assert seals == list(range(1, len(seals) + 1))
    for n in range(appenders):
        order = [payload["i"] for _, _, _, target, payload in rows if target == str(n)]
        assert order == list(range(per_appender))
    assert len({row[0] for row in rows}) > 1, "the appends all went to one chain"


@pytest.mark.django_db
def test_events_of_one_target_share_a_chain_and_others_spread(settings):
    settings.AUDIT_CHAINS = 8
    same = _sealed([record_event(actor="a", action="x", target_type="redemption",
                                 target_id="r-1") for _ in range(3)])
    assert len({e.chain for e in same}) == 1
    assert same[1].prev_hash == same[0].hash and same[2].prev_hash == same[1].hash
    spread = {record_event(actor="a", action="x", target_type="redemption",
                           target_id=f"r-{n}").chain for n in range(2, 60)}
    assert len(spread) == 8
    seal_events()
    assert verify_audit_chain().ok


@pytest.mark.django_db
def test_verifier_names_an_edited_event_in_any_chain(settings):
    settings.AUDIT_CHAINS = 4
    events = _sealed([record_event(actor="a", action="x", target_type="t", target_id=str(n))
                      for n in range(20)])
    victim = events[13]
    _tamper("UPDATE voucher_service_auditevent SET actor = 'mallory' WHERE id = %s",
            [victim.pk])
    assert verify_audit_chain().first_break.event_id == victim.pk


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_events_linked_before_the_sealer_stay_verified_and_the_sealer_continues_them():
    """Events an appender linked itself (hash, no position), as before the sealer: the
    verifier walks them by id, and the sealer links the next event to the last of them."""
    head = GENESIS_HASH
    for event in _append(3):
        hash_ = event_hash(prev_hash=head, occurred_at=event.occurred_at, actor=event.actor,
                           action=event.action, target_type=event.target_type,
                           target_id=event.target_id, payload=event.payload)
        _tamper("UPDATE voucher_service_auditevent SET prev_hash = %s, hash = %s WHERE id = %s",
                [head, hash_, event.pk])
        head = hash_
    next_event = _sealed(_append(1))[0]
    assert next_event.prev_hash == head and next_event.seal == 1
    report = verify_audit_chain()
    assert report.ok and report.events_checked == 4


@pytest.mark.django_db
@pytest.mark.usefixtures("one_chain")
def test_an_event_inserted_with_a_link_enters_unsealed_and_the_sealer_links_it():
    """As the code from before the sealer inserts during a release: linked to its chain's
    last event by id, which may be unsealed. It must not fork the chain."""
    first = _sealed(_append(1))[0]
    _append(1)  # unsealed, the last by id
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO voucher_service_auditevent (occurred_at, actor, action, "
                       "target_type, target_id, payload, chain, prev_hash, hash) VALUES "
                       "(now(), 'old', 'old.code', 't', 'x', '{}', 0, %s, %s) RETURNING id",
                       [GENESIS_HASH, "a" * 64])
        old = AuditEvent.objects.get(pk=cursor.fetchone()[0])
    assert (old.prev_hash, old.hash, old.seal) == (None, None, None)
    assert seal_events() == 2
    assert AuditEvent.objects.get(pk=old.pk).seal == 3 and first.seal == 1
    assert verify_audit_chain().ok
