"""Appending to the audit trail, and verifying its hash chains.

An event is appended unsealed, inside the transaction of the change it records: a plain
insert, no lock, no hash. The sealer (``voucher_service.sealing``), a few seconds later,
links the committed unsealed events in batches into their chains, in id order: each
sealed event stores its predecessor's hash, its position in its chain (``seal``) and a
SHA-256 over its content and that predecessor's hash, so editing or deleting a sealed event
(even with raw SQL, triggers disabled) breaks every later link of its chain. Until sealed,
the database refuses any change to an event but its sealing (``audit_event_seal_only``) and
any delete; the verifier reports an event left unsealed longer than
``AUDIT_SEAL_MAX_LAG_SECONDS``. Tamper evidence comes within seconds of the commit instead
of with it, and the hot paths no longer queue on a chain's lock nor hash.

There are ``AUDIT_CHAINS`` chains, and an event goes to the chain of its target (a hash
of target type and id), so every event about one object stays in one ordered chain. Events
sealed before the sealer existed were linked by their appenders, in id order, and have no
``seal``: a chain is its events with no ``seal`` in id order, then the sealed ones in
``seal`` order.

An append is one statement; a caller on a hot path can send it with a statement of its own
(``append_statement``, ``EventAppend``).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from voucher_service.models import AuditEvent

GENESIS_HASH = "0" * 64
_APPEND_TEXT = """
    INSERT INTO voucher_service_auditevent
        (occurred_at, actor, action, target_type, target_id, payload, chain)
    SELECT %(audit_occurred_at)s, %(audit_actor)s, %(audit_action)s, %(audit_target_type)s,
           %(audit_target_id)s, %(audit_payload)s::jsonb, %(audit_chain)s
    WHERE {when}
"""


def append_statement(*, when: str = "true") -> str:
    """The insert of one unsealed event, with ``EventAppend.params``, to send after a
    statement of the caller's (``statement; append``) or in a routine of its own; ``when``,
    an SQL condition on what that statement did, decides whether the event is appended."""
    return " ".join(_APPEND_TEXT.format(when=when).split())


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
    """One event to append: its fields and its chain, and ``params``, the parameters of
    ``append_statement``. Append inside the transaction of the change recorded."""

    def __init__(self, *, actor: str, action: str, target_type: str, target_id: str,
                 payload: dict[str, Any] | None = None) -> None:
        self.fields = {"occurred_at": timezone.now(), "actor": actor, "action": action,
                       "target_type": target_type, "target_id": str(target_id),
                       "payload": payload or {}}
        self.chain = chain_of(target_type, self.fields["target_id"])
        self.params = {
            "audit_chain": self.chain, "audit_payload": json.dumps(self.fields["payload"]),
            **{f"audit_{name}": value for name, value in self.fields.items()
               if name != "payload"},
        }


def record_event(
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """Appends one event, unsealed; call it inside the transaction of the change it
    records."""
    event = EventAppend(actor=actor, action=action, target_type=target_type,
                        target_id=target_id, payload=payload)
    with connection.cursor() as cursor:
        cursor.execute(f"{append_statement()} RETURNING id", event.params)
        appended = AuditEvent(pk=cursor.fetchone()[0], chain=event.chain, **event.fields)
    appended._state.adding = False
    appended._state.db = connection.alias
    return appended


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    reason: str


@dataclass(frozen=True)
class ChainReport:
    events_checked: int
    first_break: ChainBreak | None
    unsealed: int = 0

    @property
    def ok(self) -> bool:
        return self.first_break is None


# The chains that hold sealed events: a loose scan of ``auditevent_chain_order``, one seek
# per chain.
_CHAINS = """
    WITH RECURSIVE c AS (
        SELECT min(chain) AS chain FROM voucher_service_auditevent WHERE hash IS NOT NULL
        UNION ALL
        SELECT (SELECT min(chain) FROM voucher_service_auditevent
                WHERE hash IS NOT NULL AND chain > c.chain)
        FROM c WHERE c.chain IS NOT NULL
    )
    SELECT chain FROM c WHERE chain IS NOT NULL
"""


def _in_batches(events: QuerySet, order: str, batch: int) -> Iterator[AuditEvent]:
    """``events`` by ``order`` (a column unique among them), a batch per query after the
    last one read: flat memory without a server-side cursor (which a pooler in
    transaction mode would lose); ``auditevent_chain_order`` seeks to each batch."""
    page = list(events.order_by(order)[:batch])
    while page:
        yield from page
        after = {f"{order}__gt": getattr(page[-1], order)}
        page = list(events.filter(**after).order_by(order)[:batch])


def _sealed_events(batch: int = 5000) -> Iterator[AuditEvent]:
    """Every sealed event, each chain in its order: the events linked before the sealer (no
    ``seal``) by id, then the sealed ones by position."""
    with connection.cursor() as cursor:
        cursor.execute(_CHAINS)
        chains = [chain for (chain,) in cursor.fetchall()]
    for chain in chains:
        in_chain = AuditEvent.objects.filter(hash__isnull=False, chain=chain)
        yield from _in_batches(in_chain.filter(seal__isnull=True), "id", batch)
        yield from _in_batches(in_chain.filter(seal__isnull=False), "seal", batch)


def _unsealed(now: datetime) -> tuple[int, ChainBreak | None]:
    """How many events await the sealer, and the first left longer than the bound."""
    unsealed = AuditEvent.objects.filter(hash__isnull=True)
    bound = now - timedelta(seconds=settings.AUDIT_SEAL_MAX_LAG_SECONDS)
    stale = unsealed.filter(occurred_at__lt=bound).order_by("id").values_list("id", flat=True)
    first = stale.first()
    if first is None:
        return unsealed.count(), None
    return unsealed.count(), ChainBreak(
        first, f"unsealed for more than {settings.AUDIT_SEAL_MAX_LAG_SECONDS} s")


def verify_audit_chain(*, now: datetime | None = None) -> ChainReport:
    """Walks each chain in its order and names the first event whose link does not hold;
    then the first event left unsealed longer than ``AUDIT_SEAL_MAX_LAG_SECONDS``."""
    expected_prev = GENESIS_HASH
    chain = None
    checked = 0
    for event in _sealed_events():
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
    unsealed, stale = _unsealed(now or timezone.now())
    return ChainReport(checked, stale, unsealed)
