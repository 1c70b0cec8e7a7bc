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
from django.utils import timezone

from voucher_service.models import AuditEvent

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock(int, int) key space: (this constant, chain number).
_AUDIT_LOCK_CLASS = 0x41756474  # "Audt"


def chain_of(target_type: str, target_id: str) -> int:
    return zlib.crc32(f"{target_type}:{target_id}".encode()) % settings.AUDIT_CHAINS


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
    content = json.dumps(
        [
            prev_hash,
            occurred_at.isoformat(timespec="microseconds"),
            actor,
            action,
            target_type,
            target_id,
            payload,
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(content.encode()).hexdigest()


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
    payload = payload or {}
    # No savepoint: two round trips fewer, one of them under the lock.
    chain = chain_of(target_type, str(target_id))
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_AUDIT_LOCK_CLASS, chain])
        prev_hash = (
            AuditEvent.objects.filter(chain=chain).order_by("-id")
            .values_list("hash", flat=True).first()
            or GENESIS_HASH
        )
        occurred_at = timezone.now()
        fields = {
            "occurred_at": occurred_at,
            "actor": actor,
            "action": action,
            "target_type": target_type,
            "target_id": str(target_id),
            "payload": payload,
        }
        return AuditEvent.objects.create(
            chain=chain, prev_hash=prev_hash, hash=event_hash(prev_hash=prev_hash, **fields),
            **fields,
        )


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


def _events() -> Iterator[AuditEvent]:
    return AuditEvent.objects.order_by("chain", "id").iterator(chunk_size=5000)


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
