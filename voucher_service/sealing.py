"""The sealer: links the audit trail's unsealed events into their hash chains, in batches.

Appenders insert events unsealed (``voucher_service.audit``), so no request queues on a
chain's lock nor hashes. Every few seconds (``AUDIT_SEAL_INTERVAL_SECONDS``, a Celery beat
job; ``manage.py seal_audit_events`` by hand) the sealer takes the events committed since,
in id order, and gives each, after its chain's head, the head's hash, the next position
and its own hash (``audit.event_hash``), in one UPDATE per batch.

In order: a batch is the unsealed events one snapshot sees, by id. An event committed
after the snapshot, even with a lower id (its transaction drew the id earlier), is sealed
by a later batch, after the events sealed before it: a chain's order is the order of
sealing, which its positions record. Two events about one object follow in the order they
happened: the second's transaction waited on the first's row lock, so its id is higher and
no snapshot sees it without the first.

One sealer at a time: a batch takes a transaction-scoped advisory lock, without waiting
(another sealer at work is sealing), and reads the heads and the events only once it holds
it, in statements of their own, so their snapshots see what the previous batch committed.
"""

from __future__ import annotations

from django.db import connection, transaction

from voucher_service.audit import GENESIS_HASH, event_hash
from voucher_service.models import AuditEvent

# pg_try_advisory_xact_lock(int, int) key space: (this constant, 0).
_SEAL_LOCK_CLASS = 0x5365616C  # "Seal"
BATCH_SIZE = 5000

_LOCK = "SELECT pg_try_advisory_xact_lock(%s, 0)"
_CONTENT = ("id", "chain", "occurred_at", "actor", "action", "target_type", "target_id",
            "payload")
# Each chain's last sealed event, or none: the backward end of ``auditevent_chain_order``.
_HEADS = """
    SELECT c.chain, head.hash, head.seal
    FROM unnest(%s::smallint[]) AS c(chain)
    LEFT JOIN LATERAL (
        SELECT hash, seal FROM voucher_service_auditevent e
        WHERE e.chain = c.chain AND e.hash IS NOT NULL
        ORDER BY e.seal DESC NULLS LAST, e.id DESC
        LIMIT 1
    ) AS head ON true
"""
_SEAL = """
    UPDATE voucher_service_auditevent e
    SET prev_hash = s.prev_hash, hash = s.hash, seal = s.seal
    FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[])
         AS s(id, prev_hash, hash, seal)
    WHERE e.id = s.id
"""


def seal_events(*, batch_size: int = BATCH_SIZE) -> int:
    """Seals every event committed unsealed so far, a batch per transaction; returns how
    many it sealed (0 when another sealer is at work)."""
    sealed = 0
    while True:
        batch = _seal_batch(batch_size)
        sealed += batch
        if batch < batch_size:
            return sealed


@transaction.atomic
def _seal_batch(limit: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(_LOCK, [_SEAL_LOCK_CLASS])
        if not cursor.fetchone()[0]:
            return 0
        # Through the ORM, which decodes the content as the verifier reads it.
        events = list(AuditEvent.objects.filter(hash__isnull=True).order_by("id")
                      .values_list(*_CONTENT)[:limit])
        if not events:
            return 0
        cursor.execute(_HEADS, [sorted({event[1] for event in events})])
        heads = {chain: (hash_ or GENESIS_HASH, seal or 0)
                 for chain, hash_, seal in cursor.fetchall()}
        links = []
        for id_, chain, occurred_at, actor, action, target_type, target_id, payload in events:
            prev_hash, position = heads[chain]
            hash_ = event_hash(prev_hash=prev_hash, occurred_at=occurred_at, actor=actor,
                               action=action, target_type=target_type, target_id=target_id,
                               payload=payload)
            heads[chain] = (hash_, position + 1)
            links.append((id_, prev_hash, hash_, position + 1))
        cursor.execute(_SEAL, [list(column) for column in zip(*links, strict=True)])
    return len(events)
