"""Checkout's use cases: authorize or capture, capture, void, refund; the hold timeout.

Each is one short transaction. The voucher row is locked first (``SELECT ... FOR
UPDATE``), then the redemption row, always in that order; the rules are checked on the
locked rows; then one statement of ``statements`` writes the movement (the voucher's
balance, the redemption and its event, the ledger's moves: each spelt once there, for
checkout and the later movements alike), and the audit event is appended (unsealed: the
sealer links it into its chain after the commit). The holder's cached eligibility answer
is recorded as changed (``vouchers.models.changes``) and fenced after the commit. The
transactions take no savepoint of their own (two round trips fewer per checkout): called
inside a caller's transaction, a refusal dooms it, so a caller that carries on after a
refusal calls inside its own savepoint.

Checkout itself (``create_redemption``, the hot path) does all of that in one statement,
``statements.CHECKOUT``, sent with the audit event's append in one round trip and no ORM,
where the ORM took eight round trips and several times the CPU (profiled in
bench/RESULTS.md "Redemption"). As served, it goes at once (``create_redemption_at_once``):
with its idempotency key's claim and stored answer, in one round trip, a transaction and a
routine of its own.

What checkout refuses, and in which order, is the rule table ``rules.RULES``.

Where the won go (debit-positive postings, ``vouchers.models.ledger``):

=================================  ==================================================
authorize (hold)                   liability -> authorized
capture of a hold                  authorized -> redeemed
capture at once                    liability -> redeemed
single-use leftover (forfeit)      liability -> forfeited, at authorize or capture
void                               authorized -> liability, forfeit reversed
refund given back to the voucher   refunded -> liability (a single-use voucher's
                                   forfeit reversed too)
refund not given back              refunded -> forfeited (single-use), or the voucher's
                                   lapse account (multi-use on an expired or revoked
                                   voucher: expired, revoked)
=================================  ==================================================

A voucher takes value back only while it is active or exhausted and not past its expiry
(``vouchers.models.expiry``: every writer that may change a live voucher holds expiry
sweeps off first, the checkout included).
A hold on a voucher that expired or was revoked meanwhile may still be captured until its
``authorized_until`` (the order was accepted in time); voided, the held amount lapses to
the expired (or revoked) account and a single-use forfeit stays forfeited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models import Model
from django.utils import timezone

from voucher_service.audit import EventAppend, append_statement, record_event
from voucher_service.idempotency import Claim, Filled, store_statement
from voucher_service.problems import ProblemError
from voucher_service.routines import Routine, RoutineMissing
from vouchers.ledger.posting import Move, move, moves_part
from vouchers.models import Account, Reason, Voucher, VoucherStatus
from vouchers.models.changes import customers_changed
from vouchers.models.expiry import (
    HOLD_OFF_SWEEPS,
    TRY_HOLD_OFF_SWEEPS,
    hold_off_sweeps,
    past_expiry_q,
)
from vouchers.redemption import rules, selectors
from vouchers.redemption.models import EventKind, Redemption
from vouchers.redemption.models import RedemptionStatus as S
from vouchers.redemption.statements import CHECKOUT, SPENT, movement

TIMEOUT_ACTOR = "system:authorization-timeout"
logger = logging.getLogger(__name__)


def _not_found(what: str) -> ProblemError:
    return ProblemError(status=404, code=f"{what}_not_found", detail=f"No such {what}.")


def _conflict(code: str, detail: str, **extra) -> ProblemError:
    return ProblemError(status=409, code=code, detail=detail, **extra)


def _locked_voucher(voucher_id: int) -> Voucher | None:
    return Voucher.objects.select_for_update().filter(pk=voucher_id).first()


def _locked_redemption(redemption_id: UUID) -> Redemption:
    """The redemption and its voucher, both locked (voucher first)."""
    voucher_id = selectors.voucher_id_of(redemption_id)
    if voucher_id is None:
        raise _not_found("redemption")
    voucher = _locked_voucher(voucher_id)
    redemption = Redemption.objects.select_for_update().get(pk=redemption_id)
    redemption.voucher = voucher
    return redemption


def _loaded(model: type[Model], row: dict) -> Model:
    """The instance the ORM would build from these columns of a row (the others deferred),
    without a query of its own."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in row]
    return model.from_db(DEFAULT_DB_ALIAS, names, [row[name] for name in names])


def _takes_back(voucher: Voucher, now: datetime) -> bool:
    """Whether value can go back on the voucher: it is not revoked and has not expired.
    Holds off expiry sweeps for the rest of the transaction (a sweep must not add up a
    balance this transaction may still change)."""
    hold_off_sweeps()
    return (voucher.status in (VoucherStatus.ACTIVE, VoucherStatus.EXHAUSTED)
            and not Voucher.objects.filter(past_expiry_q(now), pk=voucher.pk).exists())


def _lapse_account(voucher: Voucher) -> Account:
    return Account.REVOKED if voucher.status == VoucherStatus.REVOKED else Account.EXPIRED


def _move(redemption: Redemption, *, debit: Account, credit: Account,
          amount_krw: int) -> Move:
    voucher = redemption.voucher
    return move(debit=debit, credit=credit, amount_krw=amount_krw, category=voucher.category,
                voucher_id=voucher.pk)


def _audit(redemption_id: UUID, kind: EventKind, *, voucher_id: int, order_id: str,
           status: str, amount_krw: int, restored_krw: int, actor: str) -> dict[str, Any]:
    """The audit event of a redemption's step, as ``record_event``'s arguments."""
    return {"actor": actor, "action": f"redemption.{kind}", "target_type": "redemption",
            "target_id": str(redemption_id),
            "payload": {"voucher_id": voucher_id, "order_id": order_id, "amount_krw": amount_krw,
                        "restored_krw": restored_krw, "status": status}}


def _apply(redemption: Redemption, kind: EventKind, *, status: str, amount_krw: int,
           transactions: list[tuple[Reason, list[Move]]], restored_krw: int = 0,
           refunded_krw: int = 0, actor: str, now: datetime) -> None:
    """One statement (``statements.movement``): the moves posted, ``restored_krw`` back on
    the voucher, the redemption moved to ``status`` and its event written; then the audit
    event, and the holder's answer recorded as changed when the voucher's balance did."""
    voucher = redemption.voucher
    moves, params = moves_part(transactions, campaign_id=voucher.campaign_id,
                               voucher_id=voucher.pk, redemption_id=redemption.pk)
    balance_after = voucher.balance_krw + restored_krw
    with connection.cursor() as cursor:
        cursor.execute(movement(moves), {
            **params, "id": redemption.pk, "status": status, "refunded_krw": refunded_krw,
            "now": now, "kind": kind, "amount_krw": amount_krw, "restored_krw": restored_krw,
            "actor": actor, "voucher_id": voucher.pk, "balance_after": balance_after})
    redemption.status, redemption.refunded_krw, redemption.updated_at = (
        status, refunded_krw, now)
    record_event(**_audit(redemption.pk, kind, voucher_id=redemption.voucher_id,
                          order_id=redemption.order_id, status=status, amount_krw=amount_krw,
                          restored_krw=restored_krw, actor=actor))
    if restored_krw:
        voucher.balance_krw, voucher.status = balance_after, VoucherStatus.ACTIVE
        customers_changed(campaign_id=voucher.campaign_id, customer_ids=[voucher.customer_id])


class Checkout:
    """One order's checkout, ready to run either way: its parameters (``params``: the
    checkout statement's and its audit event's), the redemption it is to make
    (``pending``: the forfeit and the voucher's new balance left to the database) and the
    redemption it made (``made``, from the statement's row)."""

    def __init__(self, *, voucher_id: int, customer_id: int, order_id: str, amount_krw: int,
                 order_total_krw: int, merchant_category: str, capture: bool,
                 actor: str) -> None:
        now = timezone.now()
        self.voucher_id = voucher_id
        self.facts = {
            "id": uuid4(), "voucher_id": voucher_id, "customer_id": customer_id,
            "order_id": order_id, "amount_krw": amount_krw, "order_total_krw": order_total_krw,
            "merchant_category": merchant_category,
            "status": S.CAPTURED if capture else S.AUTHORIZED, "refunded_krw": 0,
            "created_at": now, "updated_at": now, "created_by": actor,
            "authorized_until": (None if capture else
                                 now + timedelta(seconds=settings.AUTHORIZATION_TTL_SECONDS)),
        }
        kind = EventKind.CAPTURE if capture else EventKind.AUTHORIZE
        event = EventAppend(**_audit(self.facts["id"], kind, voucher_id=voucher_id,
                                     order_id=order_id, status=self.facts["status"],
                                     amount_krw=amount_krw, restored_krw=0, actor=actor))
        self.params = {
            **self.facts, "now": now, "actor": actor, "kind": kind, "restored_krw": 0,
            "reason": Reason.CAPTURE if capture else Reason.AUTHORIZATION,
            "account": Account.REDEEMED if capture else Account.AUTHORIZED, **event.params,
        }

    def _redemption(self, voucher: Voucher, forfeited_krw: Any) -> Redemption:
        redemption = _loaded(Redemption, {**self.facts, "campaign_id": voucher.campaign_id,
                                          "forfeited_krw": forfeited_krw})
        redemption.voucher = voucher
        return redemption

    def pending(self) -> Redemption:
        """The redemption as it will be, its forfeit and its voucher's balance ``Filled``
        (in that order) by the database."""
        return self._redemption(Voucher(pk=self.voucher_id, balance_krw=Filled(2)), Filled(1))

    def made(self, row: dict[str, Any] | None) -> tuple[Redemption, str]:
        """The redemption the checkout statement's row shows, and its campaign's slug; or
        the problem of the rule the voucher broke (404 without a voucher)."""
        if row is None:
            raise _not_found("voucher")
        row = dict(row)
        refusal, forfeited, balance_after, slug = (row.pop(name) for name in (
            "refusal", "forfeited", "balance_after", "campaign_slug"))
        voucher = _loaded(Voucher, row)
        if refusal:
            raise rules.refusal(refusal, voucher)
        voucher.balance_krw = balance_after
        voucher.status = VoucherStatus.EXHAUSTED if balance_after == 0 else VoucherStatus.ACTIVE
        return self._redemption(voucher, forfeited), slug


# Expiry sweeps held off, then the checkout statement, then its audit event's append when
# it spent.
_CHECKOUT_AND_APPEND = f"{HOLD_OFF_SWEEPS}; {CHECKOUT}; {append_statement(when=SPENT)}"
# The same at once: the idempotency key claimed first, the key row with its answer last,
# the forfeit and the new balance filled in (``Checkout.pending``); one call, whose
# statements each server connection parses and plans once (``voucher_service.routines``).
CHECKOUT_ROUTINE = Routine(
    "checkout", CHECKOUT, append_statement(when=SPENT),
    store_statement(answer="format(%(idempotency_answer)s, r.forfeited_krw, v.balance_krw)",
                    source="redemption_redemption r JOIN vouchers_voucher v "
                           "ON v.id = r.voucher_id WHERE r.id = %(id)s"),
    guards=(TRY_HOLD_OFF_SWEEPS, *Claim.GUARDS))


@transaction.atomic(savepoint=False)
def create_redemption(
    *, voucher_id: int, customer_id: int, order_id: str, amount_krw: int,
    order_total_krw: int, merchant_category: str, capture: bool, actor: str,
) -> Redemption:
    """Spends ``amount_krw`` of the voucher on an order: captured at once, or held.

    A single-use voucher is spent whole: what the order does not use is forfeited. One
    round trip: ``CHECKOUT`` followed by the audit event's append, which runs only when
    the checkout spent (``SPENT``). The answer recorded as changed is the campaign's by the
    slug the statement returned (no query for it).
    """
    checkout = Checkout(voucher_id=voucher_id, customer_id=customer_id, order_id=order_id,
                        amount_krw=amount_krw, order_total_krw=order_total_krw,
                        merchant_category=merchant_category, capture=capture, actor=actor)
    with connection.cursor() as cursor:
        cursor.execute(_CHECKOUT_AND_APPEND, checkout.params)
        cursor.nextset()
        row = cursor.fetchone()
        names = [column.name for column in cursor.description]
    redemption, slug = checkout.made(None if row is None else dict(zip(names, row, strict=True)))
    customers_changed(slug=slug, customer_ids=[customer_id])
    return redemption


def create_redemption_at_once(checkout: Checkout, *, claim: Claim,
                              answer: str) -> Redemption | None:
    """``create_redemption`` with its idempotency key's claim and stored answer (``answer``,
    the ``answer_template`` of ``checkout.pending()``'s answer), in one round trip and a
    transaction of its own (``CHECKOUT_ROUTINE``). None when it did nothing because the key
    is in use or used, or there is no such voucher, or the routine is not installed (code
    deployed without its ``migrate``: logged): the general path answers."""
    try:
        row = CHECKOUT_ROUTINE.run_alone({**checkout.params,
                                          **claim.params(status=201, answer=answer)})
    except RoutineMissing as exc:
        logger.warning("checkout routine %s not installed (run manage.py migrate): checkout "
                       "takes the general path", exc)
        return None
    if row is None:
        return None
    redemption, slug = checkout.made(row)
    customers_changed(slug=slug, customer_ids=[redemption.customer_id])  # fenced at once
    return redemption


def _require(redemption: Redemption, allowed: tuple[str, ...], action: str) -> None:
    if redemption.status not in allowed:
        raise _conflict("invalid_transition",
                        f"A redemption that is {redemption.status} does not allow {action}.",
                        status_now=redemption.status)


@transaction.atomic(savepoint=False)
def capture_redemption(*, redemption_id: UUID, actor: str) -> Redemption:
    now = timezone.now()
    redemption = _locked_redemption(redemption_id)
    _require(redemption, (S.AUTHORIZED,), "capture")
    if redemption.authorized_until <= now:
        raise _conflict("authorization_expired",
                        "The hold has timed out; it is voided and cannot be captured.")
    amount = redemption.amount_krw
    _apply(redemption, EventKind.CAPTURE, status=S.CAPTURED, amount_krw=amount,
           transactions=[(Reason.CAPTURE, [_move(redemption, debit=Account.AUTHORIZED,
                                                 credit=Account.REDEEMED, amount_krw=amount)])],
           actor=actor, now=now)
    return redemption


@transaction.atomic(savepoint=False)
def void_redemption(*, redemption_id: UUID, actor: str) -> Redemption:
    """Releases a hold: back to the voucher (forfeit included), or lapsed if it cannot."""
    now = timezone.now()
    redemption = _locked_redemption(redemption_id)
    _require(redemption, (S.AUTHORIZED,), "void")
    voucher = redemption.voucher
    amount, forfeited = redemption.amount_krw, redemption.forfeited_krw
    if _takes_back(voucher, now):
        transactions = [
            (Reason.VOID, [_move(redemption, debit=Account.AUTHORIZED, credit=Account.LIABILITY,
                                 amount_krw=amount)]),
            (Reason.FORFEIT, [_move(redemption, debit=Account.FORFEITED,
                                    credit=Account.LIABILITY, amount_krw=forfeited)]),
        ]
        restored = amount + forfeited
    else:
        transactions = [(Reason.VOID, [_move(redemption, debit=Account.AUTHORIZED,
                                             credit=_lapse_account(voucher), amount_krw=amount)])]
        restored = 0
    _apply(redemption, EventKind.VOID, status=S.VOIDED, amount_krw=amount,
           transactions=transactions, restored_krw=restored, actor=actor, now=now)
    return redemption


@dataclass(frozen=True)
class Refund:
    redemption: Redemption
    amount_krw: int
    voucher_restored: bool


@transaction.atomic(savepoint=False)
def refund_redemption(*, redemption_id: UUID, amount_krw: int | None, actor: str) -> Refund:
    """Refunds part or all of what was captured (all of what is left when no amount).

    Multi-use: the refunded amount goes back to the voucher. Single-use: only the refund
    that completes a whole refund before expiry restores the voucher, whole (forfeit and
    earlier partial refunds included); any other refund goes back to nothing.
    """
    now = timezone.now()
    redemption = _locked_redemption(redemption_id)
    _require(redemption, (S.CAPTURED, S.PARTIALLY_REFUNDED), "refund")
    voucher = redemption.voucher
    left = redemption.amount_krw - redemption.refunded_krw
    amount = left if amount_krw is None else amount_krw
    if amount > left:
        raise _conflict("refund_exceeds_captured",
                        f"Only {left} won of this redemption can still be refunded.",
                        refundable_krw=left)
    refunded = redemption.refunded_krw + amount
    whole = refunded == redemption.amount_krw
    restored = 0
    if not _takes_back(voucher, now):
        lapse = Account.FORFEITED if voucher.single_use else _lapse_account(voucher)
        transactions = [(Reason.REFUND, [_move(redemption, debit=Account.REFUNDED,
                                               credit=lapse, amount_krw=amount)])]
    elif voucher.single_use and not whole:
        transactions = [(Reason.REFUND, [_move(redemption, debit=Account.REFUNDED,
                                               credit=Account.FORFEITED, amount_krw=amount)])]
    else:
        transactions = [(Reason.REFUND, [_move(redemption, debit=Account.REFUNDED,
                                               credit=Account.LIABILITY, amount_krw=amount)])]
        restored = amount
        if voucher.single_use:
            # The leftover forfeited at checkout and earlier partial refunds come back too.
            returned = redemption.forfeited_krw + redemption.refunded_krw
            transactions.append((Reason.FORFEIT, [_move(redemption, debit=Account.FORFEITED,
                                                        credit=Account.LIABILITY,
                                                        amount_krw=returned)]))
            restored += returned
    _apply(redemption, EventKind.REFUND,
           status=S.REFUNDED if whole else S.PARTIALLY_REFUNDED, amount_krw=amount,
           transactions=transactions, restored_krw=restored, refunded_krw=refunded,
           actor=actor, now=now)
    return Refund(redemption=redemption, amount_krw=amount, voucher_restored=restored > 0)


def void_timed_out_holds(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Voids every hold past its ``authorized_until``, each in its own transaction; a hold
    captured or voided meanwhile is skipped. Returns how many were voided."""
    now = now or timezone.now()
    voided = 0
    while True:
        ids = selectors.timed_out_hold_ids(now=now, limit=batch_size)
        for redemption_id in ids:
            try:
                void_redemption(redemption_id=redemption_id, actor=TIMEOUT_ACTOR)
            except ProblemError:
                continue
            voided += 1
        if len(ids) < batch_size:
            return voided
