"""Appending to and verifying the hash-chained audit trail.

Each event stores the previous event's hash and a SHA-256 over its own content and that
previous hash, so editing or deleting any event (even with raw SQL, triggers disabled)
breaks every later link of its chain. Appends to a chain take a transaction-scoped
advisory lock of that chain, so concurrent writers line up and no chain forks; the lock is
held until the caller commits, WAL flush included.

There are ``AUDIT_CHAINS`` chains, and an event goes to the chain of its target (a hash
of target type and id), so every event about one object stays in one ordered chain while
unrelated writers (checkouts of different orders, say) do not queue on one lock: with a
single chain every checkout in the country waited for the previous one's commit.

An append is raw SQL in one round trip (the chain's lock, then the insert that links to
the head and computes the hash in PostgreSQL); a caller on a hot path can send it with a
statement of its own (``EventAppend``).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from voucher_service.models import AuditEvent

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock(int, int) key space: (this constant, chain number).
_AUDIT_LOCK_CLASS = 0x41756474  # "Audt"
# Two statements in one round trip (simple query protocol, which client-side binding
# uses): the insert takes its snapshot once the lock statement holds the chain's lock, so
# the head it links to is the one the previous holder committed. The event's hash is
# computed there too: the SHA-256 of the same JSON text ``event_hash`` builds, its first
# element (the head's hash) spliced in before the rest, which Python has rendered. The
# leading ';' lets them follow a caller's statement; ``{when}`` is the caller's condition.
# On one line, as short as the checkout needs (see ``vouchers.redemption.statements``).
_APPEND_TEXT = """;
    SELECT pg_advisory_xact_lock(%(audit_lock_class)s, %(audit_chain)s) WHERE {when};
    INSERT INTO voucher_service_auditevent
        (occurred_at, actor, action, target_type, target_id, payload, chain, prev_hash, hash)
    SELECT %(audit_occurred_at)s, %(audit_actor)s, %(audit_action)s, %(audit_target_type)s,
           %(audit_target_id)s, %(audit_payload)s::jsonb, %(audit_chain)s, head.hash,
           encode(sha256(convert_to('["' || head.hash || '",' || %(audit_rest)s, 'UTF8')),
                  'hex')
    FROM (SELECT coalesce((SELECT hash FROM voucher_service_auditevent
                           WHERE chain = %(audit_chain)s ORDER BY id DESC LIMIT 1),
                          %(audit_genesis)s) AS hash) AS head
    WHERE {when}
    RETURNING id, prev_hash, hash
"""
_APPEND = " ".join(_APPEND_TEXT.split())


def chain_of(target_type: str, target_id: str) -> int:
    return zlib.crc32(f"{target_type}:{target_id}".encode()) % settings.AUDIT_CHAINS


def _hashed_json(values: list[Any]) -> str:
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(
    *,
    prev_hash: str,
    occurred_at: datetime,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    payload: dict[str, Any],
) -> str:
    content = _hashed_json([prev_hash, occurred_at.isoformat(timespec="microseconds"), actor,
                            action, target_type, target_id, payload])
    return hashlib.sha256(content.encode()).hexdigest()


class EventAppend:
    """One event to append in one round trip, which a caller may share.

    ``sql`` (with ``params``) takes the chain's lock, then inserts the event linked to the
    chain's head; ``appended(cursor)`` reads the event back from the cursor's last result.
    A caller that writes in a statement of its own can send ``sql`` after it in the same
    execute (``statement + event.sql``), with ``when``, an SQL condition on what that
    statement did, deciding whether the event is appended at all. Call inside the
    transaction of the change recorded, as late as possible: the chain's lock is held from
    ``sql`` until that transaction ends.
    """

    def __init__(self, *, actor: str, action: str, target_type: str, target_id: str,
                 payload: dict[str, Any] | None = None, when: str = "true") -> None:
        self.fields = {"occurred_at": timezone.now(), "actor": actor, "action": action,
                       "target_type": target_type, "target_id": str(target_id),
                       "payload": payload or {}}
        self.chain = chain_of(target_type, self.fields["target_id"])
        self.sql = _APPEND.format(when=when)
        rest = _hashed_json([self.fields["occurred_at"].isoformat(timespec="microseconds"),
                             actor, action, target_type, self.fields["target_id"],
                             self.fields["payload"]])
        self.params = {
            "audit_lock_class": _AUDIT_LOCK_CLASS, "audit_chain": self.chain,
            "audit_genesis": GENESIS_HASH, "audit_rest": rest[1:],
            "audit_payload": json.dumps(self.fields["payload"]),
            **{f"audit_{name}": value for name, value in self.fields.items()
               if name != "payload"},
        }

    def appended(self, cursor: CursorWrapper) -> AuditEvent | None:
        """The event the round trip inserted; None when ``when`` was false."""
        while cursor.nextset():
            pass
        row = cursor.fetchone()
        if row is None:
            return None
        event = AuditEvent(pk=row[0], chain=self.chain, prev_hash=row[1], hash=row[2],
                           **self.fields)
        event._state.adding = False
        event._state.db = connection.alias
        return event


def record_event(
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """Appends one event; call it inside the transaction of the change it records, as late
    as possible: the chain's lock is held from here until that transaction commits."""
    event = EventAppend(actor=actor, action=action, target_type=target_type,
                        target_id=target_id, payload=payload)
    # No savepoint: two round trips fewer, one of them under the lock.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(event.sql, event.params)
        return event.appended(cursor)


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    reason: str


@dataclass(frozen=True)
class ChainReport:
    events_checked: int
    first_break: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.first_break is None


def _events(batch: int = 5000) -> Iterator[AuditEvent]:
    """Every event in (chain, id) order, a batch per query after the last one read: flat
    memory without a server-side cursor (which a pooler in transaction mode would lose)."""
    events = list(AuditEvent.objects.order_by("chain", "id")[:batch])
    while events:
        yield from events
        # A row comparison: the (chain, id) index seeks to it.
        after = RawSQL("(chain, id) > (%s, %s)", [events[-1].chain, events[-1].pk],
                       output_field=BooleanField())
        events = list(AuditEvent.objects.filter(after).order_by("chain", "id")[:batch])


def verify_audit_chain() -> ChainReport:
    """Walks each chain in id order and names the first event whose link does not hold."""
    expected_prev = GENESIS_HASH
    chain = None
    checked = 0
    for event in _events():
        checked += 1
        if event.chain != chain:
            chain, expected_prev = event.chain, GENESIS_HASH
        if event.prev_hash != expected_prev:
            return ChainReport(
                checked, ChainBreak(event.pk, "prev_hash does not match the previous event")
            )
        recomputed = event_hash(
            prev_hash=event.prev_hash,
            occurred_at=event.occurred_at,
            actor=event.actor,
            action=event.action,
            target_type=event.target_type,
            target_id=event.target_id,
            payload=event.payload,
        )
        if recomputed != event.hash:
            return ChainReport(checked, ChainBreak(event.pk, "content does not match its hash"))
        expected_prev = event.hash
    return ChainReport(checked, None)
