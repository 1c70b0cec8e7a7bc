"""Checkout's use cases: authorize or capture, capture, void, refund; the hold timeout.

Each is one short transaction. The voucher row is locked first (``SELECT ... FOR
UPDATE``), then the redemption row, always in that order; the rules are checked on the
locked rows; the redemption row and its event are written, the ledger transactions posted
in the same transaction, the voucher's cached balance set by a conditional UPDATE, and the
audit event appended (unsealed: the sealer links it into its chain after the commit). The
transactions take no savepoint of their own (two round trips fewer per checkout): called
inside a caller's transaction, a refusal dooms it, so a caller that carries on after a
refusal calls inside its own savepoint.

Checkout itself (``create_redemption``, the hot path) does all of that in one statement,
``statements.CHECKOUT``, sent with the audit event's append in one round trip and no ORM,
where the ORM took eight round trips and several times the CPU (profiled in
bench/RESULTS.md "Redemption").

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

A voucher takes value back only while it is active or exhausted and not past its expiry.
A hold on a voucher that expired or was revoked meanwhile may still be captured until its
``authorized_until`` (the order was accepted in time); voided, the held amount lapses to
the expired (or revoked) account and a single-use forfeit stays forfeited.
"""

from __future__ import annotations

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
from voucher_service.routines import Routine
from vouchers.eligibility.cache import fence_answers, invalidate_eligibility
from vouchers.ledger.posting import Posting, move, post_transaction
from vouchers.models import Account, Reason, Voucher, VoucherStatus
from vouchers.redemption import rules, selectors
from vouchers.redemption.models import EventKind, Redemption, RedemptionEvent
from vouchers.redemption.models import RedemptionStatus as S
from vouchers.redemption.statements import CHECKOUT, SPENT

TIMEOUT_ACTOR = "system:authorization-timeout"


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


def _fence_eligibility(voucher: Voucher) -> None:
    """The holder's cached eligibility answer shows this voucher's balance: fenced once
    the change commits."""
    transaction.on_commit(
        lambda: invalidate_eligibility(voucher.campaign_id, [voucher.customer_id]), robust=True)


def _set_balance(voucher: Voucher, balance_krw: int) -> None:
    """Conditional on the balance read under the row lock; exhausted at 0, else active."""
    status = VoucherStatus.EXHAUSTED if balance_krw == 0 else VoucherStatus.ACTIVE
    updated = Voucher.objects.filter(pk=voucher.pk, balance_krw=voucher.balance_krw).update(
        balance_krw=balance_krw, status=status)
    if updated != 1:
        raise RuntimeError(f"voucher {voucher.pk} changed under its row lock")
    voucher.balance_krw, voucher.status = balance_krw, status
    _fence_eligibility(voucher)


def _takes_back(voucher: Voucher, now: datetime) -> bool:
    return (voucher.status in (VoucherStatus.ACTIVE, VoucherStatus.EXHAUSTED)
            and voucher.expires_at > now)


def _lapse_account(voucher: Voucher) -> Account:
    return Account.REVOKED if voucher.status == VoucherStatus.REVOKED else Account.EXPIRED


def _post(redemption: Redemption, reason: Reason, *moves: tuple[Posting, Posting]) -> None:
    voucher = redemption.voucher
    post_transaction(campaign_id=voucher.campaign_id, reason=reason, voucher_id=voucher.pk,
                     redemption_id=redemption.pk,
                     postings=[posting for pair in moves for posting in pair])


def _move(redemption: Redemption, *, debit: Account, credit: Account,
          amount_krw: int) -> tuple[Posting, Posting]:
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


def _record(redemption: Redemption, kind: EventKind, *, amount_krw: int, restored_krw: int,
            actor: str, now: datetime) -> None:
    RedemptionEvent.objects.create(redemption=redemption, kind=kind, amount_krw=amount_krw,
                                   restored_krw=restored_krw, created_at=now, actor=actor)
    record_event(**_audit(redemption.pk, kind, voucher_id=redemption.voucher_id,
                          order_id=redemption.order_id, status=redemption.status,
                          amount_krw=amount_krw, restored_krw=restored_krw, actor=actor))


def _advance(redemption: Redemption, status: str, *, now: datetime,
             refunded_krw: int = 0) -> None:
    """Moves the cached state forward, conditional on the state read under the lock."""
    updated = Redemption.objects.filter(pk=redemption.pk, status=redemption.status).update(
        status=status, refunded_krw=refunded_krw, updated_at=now)
    if updated != 1:
        raise RuntimeError(f"redemption {redemption.pk} changed under its row lock")
    redemption.status, redemption.refunded_krw, redemption.updated_at = (
        status, refunded_krw, now)


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
            **self.facts, "now": now, "actor": actor, "kind": kind,
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


# The checkout statement, then its audit event's append when it spent.
_CHECKOUT_AND_APPEND = f"{CHECKOUT}; {append_statement(when=SPENT)}"
# The same at once: the idempotency key claimed first, the key row with its answer last,
# the forfeit and the new balance filled in (``Checkout.pending``); one call, whose
# statements each server connection parses and plans once (``voucher_service.routines``).
CHECKOUT_ROUTINE = Routine(
    "checkout", CHECKOUT, append_statement(when=SPENT),
    store_statement(answer="format(%(idempotency_answer)s, r.forfeited_krw, v.balance_krw)",
                    source="redemption_redemption r JOIN vouchers_voucher v "
                           "ON v.id = r.voucher_id WHERE r.id = %(id)s"),
    guards=Claim.GUARDS)


@transaction.atomic(savepoint=False)
def create_redemption(
    *, voucher_id: int, customer_id: int, order_id: str, amount_krw: int,
    order_total_krw: int, merchant_category: str, capture: bool, actor: str,
) -> Redemption:
    """Spends ``amount_krw`` of the voucher on an order: captured at once, or held.

    A single-use voucher is spent whole: what the order does not use is forfeited. One
    round trip: ``CHECKOUT`` followed by the audit event's append, which runs only when
    the checkout spent (``SPENT``). The eligibility fence after the commit uses the slug the
    statement returned.
    """
    checkout = Checkout(voucher_id=voucher_id, customer_id=customer_id, order_id=order_id,
                        amount_krw=amount_krw, order_total_krw=order_total_krw,
                        merchant_category=merchant_category, capture=capture, actor=actor)
    with connection.cursor() as cursor:
        cursor.execute(_CHECKOUT_AND_APPEND, checkout.params)
        row = cursor.fetchone()
        names = [column.name for column in cursor.description]
    redemption, slug = checkout.made(None if row is None else dict(zip(names, row, strict=True)))
    transaction.on_commit(lambda: fence_answers(slug, [customer_id]), robust=True)
    return redemption


def create_redemption_at_once(checkout: Checkout, *, claim: Claim,
                              answer: str) -> Redemption | None:
    """``create_redemption`` with its idempotency key's claim and stored answer (``answer``,
    the ``answer_template`` of ``checkout.pending()``'s answer), in one round trip and a
    transaction of its own (``CHECKOUT_ROUTINE``). None when it did nothing because the key
    is in use or used, or there is no such voucher: the general path answers."""
    row = CHECKOUT_ROUTINE.run_alone({**checkout.params,
                                      **claim.params(status=201, answer=answer)})
    if row is None:
        return None
    redemption, slug = checkout.made(row)
    fence_answers(slug, [redemption.customer_id])
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
    _post(redemption, Reason.CAPTURE, _move(redemption, debit=Account.AUTHORIZED,
                                            credit=Account.REDEEMED,
                                            amount_krw=redemption.amount_krw))
    _advance(redemption, S.CAPTURED, now=now)
    _record(redemption, EventKind.CAPTURE, amount_krw=redemption.amount_krw, restored_krw=0,
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
        _post(redemption, Reason.VOID, _move(redemption, debit=Account.AUTHORIZED,
                                             credit=Account.LIABILITY, amount_krw=amount))
        if forfeited:
            _post(redemption, Reason.FORFEIT, _move(redemption, debit=Account.FORFEITED,
                                                    credit=Account.LIABILITY,
                                                    amount_krw=forfeited))
        restored = amount + forfeited
        _set_balance(voucher, voucher.balance_krw + restored)
    else:
        _post(redemption, Reason.VOID, _move(redemption, debit=Account.AUTHORIZED,
                                             credit=_lapse_account(voucher), amount_krw=amount))
        restored = 0
    _advance(redemption, S.VOIDED, now=now)
    _record(redemption, EventKind.VOID, amount_krw=amount, restored_krw=restored, actor=actor,
            now=now)
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
        _post(redemption, Reason.REFUND, _move(redemption, debit=Account.REFUNDED,
                                               credit=lapse, amount_krw=amount))
    elif voucher.single_use and not whole:
        _post(redemption, Reason.REFUND, _move(redemption, debit=Account.REFUNDED,
                                               credit=Account.FORFEITED, amount_krw=amount))
    else:
        _post(redemption, Reason.REFUND, _move(redemption, debit=Account.REFUNDED,
                                               credit=Account.LIABILITY, amount_krw=amount))
        restored = amount
        if voucher.single_use:
            # The leftover forfeited at checkout and earlier partial refunds come back too.
            returned = redemption.forfeited_krw + redemption.refunded_krw
            if returned:
                _post(redemption, Reason.FORFEIT, _move(redemption, debit=Account.FORFEITED,
                                                        credit=Account.LIABILITY,
                                                        amount_krw=returned))
            restored += returned
        _set_balance(voucher, voucher.balance_krw + restored)
    _advance(redemption, S.REFUNDED if whole else S.PARTIALLY_REFUNDED, now=now,
             refunded_krw=refunded)
    _record(redemption, EventKind.REFUND, amount_krw=amount, restored_krw=restored,
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
