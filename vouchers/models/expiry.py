"""When a voucher has expired: the one rule, for SQL and for Python.

Expiry never writes a voucher row. A voucher still ``active`` or ``unclaimed`` (*live*)
has expired once its ``expires_at`` has passed, or once an expiry sweep has passed it
(``past_expiry()`` in SQL, ``is_past_expiry()`` in Python; ``Voucher.current_status``
shows it as ``expired``). From then on its balance is
frozen: every writer that could change a live voucher's balance, status or holder
(checkout, a void or refund putting value back, a claim, a revocation, an issuance
chunk) refuses lapsed vouchers, and does so under ``SWEEP_LOCK`` held shared.

A sweep (``ExpirySweep``, run by ``vouchers.redemption.expiry``) moves the frozen
leftovers to the ``expired`` account in summary postings. It first records its
``cutoff`` in a short transaction holding ``SWEEP_LOCK`` exclusively, which waits for
every writer in flight; writers after it read the new cutoff in ``lapsed()``. So when the
sweep adds up the live vouchers with ``expires_at`` in ``(previous cutoff, cutoff]`` no
writer can still change one of them, whatever the clocks of the web nodes say.

134.8 million vouchers lapsing on one day therefore cost one aggregate over them and a
few summary postings, not an update (and a new row version) per voucher.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection, models
from django.db.models import Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Greatest

from vouchers.models.vouchers import LIVE_STATUSES

# pg_advisory_xact_lock's (class, object) pair: writers take it shared, a sweep's cutoff
# exclusively.
SWEEP_LOCK = (0x5EE9, 1)

_LAST_CUTOFF = "(SELECT coalesce(max(cutoff), '-infinity') FROM vouchers_expirysweep{posted})"
SWEPT_THROUGH = _LAST_CUTOFF.format(posted="")
"""SQL: the last sweep's cutoff (every live voucher expiring by then has been swept)."""
_POSTED_THROUGH = _LAST_CUTOFF.format(posted=" WHERE posted_at IS NOT NULL")


_LIVE = ", ".join(f"'{status}'" for status in LIVE_STATUSES)


def live(*, alias: str = "") -> str:
    """SQL: the voucher (``alias``, e.g. ``"v."``) is ``active`` or ``unclaimed``."""
    return f"{alias}status IN ({_LIVE})"


def past_expiry(now: str, *, alias: str = "") -> str:
    """SQL: the voucher has reached its ``expires_at`` by ``now`` (a SQL expression, e.g. a
    ``%(now)s`` placeholder) or by the last sweep's cutoff, whatever its status."""
    return f"{alias}expires_at <= greatest({now}, {SWEPT_THROUGH})"


HOLD_OFF_SWEEPS = "SELECT pg_advisory_xact_lock_shared({}, {})".format(*SWEEP_LOCK)
"""SQL: ``SWEEP_LOCK`` taken shared, as a statement that must come before the one reading
the vouchers (a statement's snapshot is taken when it starts, before it waits)."""
TRY_HOLD_OFF_SWEEPS = "pg_try_advisory_xact_lock_shared({}, {})".format(*SWEEP_LOCK)
"""SQL: the same, tried without waiting (false while a sweep records its cutoff)."""


def past_expiry_q(now: datetime) -> Q:
    """``past_expiry`` for the ORM."""
    swept_through = RawSQL(SWEPT_THROUGH, [])  # noqa: S611  # nosec B611: a constant
    return Q(expires_at__lte=Greatest(Value(now), swept_through))


def swept(*, alias: str = "") -> str:
    """SQL: the voucher is live and a posted sweep has added it up: its balance is booked
    as expired (a sweep recorded but not posted yet, after a crash, books nothing yet)."""
    return f"({live(alias=alias)} AND {alias}expires_at <= {_POSTED_THROUGH})"


def hold_off_sweeps() -> None:
    """Takes ``SWEEP_LOCK`` shared until the transaction ends, so that no sweep records a
    cutoff while this transaction may still change a live voucher. Call before reading
    the vouchers the transaction will change (``past_expiry`` then sees the last cutoff)."""
    with connection.cursor() as cursor:
        cursor.execute(HOLD_OFF_SWEEPS)


class ExpirySweep(models.Model):
    """One sweep: the live vouchers with ``expires_at`` in ``(previous cutoff, cutoff]``.
    Recorded (``posted_at`` NULL) before its postings; posted in a transaction of its
    own, which a crash in between leaves to the next sweep."""

    cutoff = models.DateTimeField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    vouchers = models.BigIntegerField(default=0)
    expired_krw = models.BigIntegerField(default=0)

    class Meta:
        app_label = "vouchers"

    def __str__(self) -> str:
        return f"expiry sweep through {self.cutoff.isoformat()}"
