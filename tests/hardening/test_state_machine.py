"""A stateful model test of the whole money path, through the real services.

Hypothesis drives a ``RuleBasedStateMachine`` over one fresh campaign per example: registry
imports (CSV, closed accounts with phones in several formats), issuance runs (full, and
staged: the lowest ids not yet issued, up to a ``max_customers`` it draws), claims of
closed accounts (start, the code from the SMS file backend, confirm), checkout (authorize
or capture, capture, void, partial and full refunds), expiry, revocation, the hold
timeout, and races in real threads on their own connections (checkouts on one voucher,
refunds of one redemption, checkouts against a revocation). An in-memory model predicts
each step: which vouchers exist and who holds them, every balance and status, every
redemption, every figure of the finance summary; a refusal must carry the code the model
expects. A race's order is not known, so the model takes the outcomes the services
report and checks that they add up.

After every step: no negative balance, one voucher per (campaign, registry customer,
component), the ledger verifies (``verify_ledger``: transactions balance, balances equal
postings), the summary identity holds for the campaign and each category, and the
database equals the model (vouchers, redemptions, every summary figure). After every
example the audit chain verifies.

The database must be committed for the threads to see it: the test is transactional and
each example works in a campaign of its own.

``MoneyPathWithAppeals`` adds appeals to the same steps (customers outside the registry,
registry customers and the customer the next import brings appeal; operations accept,
adding a late registry customer who must be eligible at once and issued by the next run,
or reject) in a test of its own, fewer examples long, so that the money path's own
exploration stays as it is.

The default run must reach each successful kind of step at least once (``MUST_REACH``):
a model or strategy gone wrong fails the test instead of letting it pass on nothing. (A
seeded run explores; it may happen to miss one, so it is not held to that.)

Replaying: the run is derandomized, so the same code runs the same steps every time (only
a race's interleaving may differ). A failure prints its steps as a Python program
(``state = MoneyPath()``, ``state.claim(...)``, ...) and a ``@reproduce_failure(...)``
line: put that line above ``class MoneyPath`` to replay exactly that case. Failures are
not shrunk unless ``STATEFUL_SHRINK=1`` (shrinking replays a case hundreds of times, past
the suite's timeout: add ``--timeout 0``). ``STATEFUL_EXAMPLES=200`` (and
``STATEFUL_STEPS``) run longer; ``STATEFUL_SEED=<n>`` explores other sequences, and the
same ``n`` replays them.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import hypothesis
import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.eligibility.conftest import code_in
from tests.issuance.conftest import drive
from voucher_service.audit import verify_audit_chain
from voucher_service.problems import ProblemError
from vouchers.appeals.models import Appeal
from vouchers.appeals.services import accept_appeal, file_appeal, reject_appeal
from vouchers.eligibility import sms
from vouchers.eligibility.importing import import_registry
from vouchers.eligibility.selectors import campaign_facts, eligibility
from vouchers.eligibility.services import confirm_claim, start_claim
from vouchers.finance.selectors import FIGURES, campaign_summary
from vouchers.issuance import services as issuance
from vouchers.issuance.revocations import revoke_customer
from vouchers.ledger.verification import verify_ledger
from vouchers.models import Campaign, Component, Voucher
from vouchers.redemption import services as checkout
from vouchers.redemption.expiry import expire_vouchers
from vouchers.redemption.models import Redemption

EXAMPLES = int(os.environ.get("STATEFUL_EXAMPLES", "15"))
# The appeals machine: a few examples, its steps shared with the whole money path.
APPEAL_EXAMPLES = int(os.environ.get("STATEFUL_APPEAL_EXAMPLES", "4"))
STEPS = int(os.environ.get("STATEFUL_STEPS", "30"))
SEED = os.environ.get("STATEFUL_SEED")
# Shrinking a failure replays it hundreds of times (minutes): only when asked for.
PHASES = [hypothesis.Phase.explicit, hypothesis.Phase.generate,
          *([hypothesis.Phase.shrink] if os.environ.get("STATEFUL_SHRINK") else [])]

COMPONENTS = [
    {"category": "all", "amount_krw": 30_000},
    {"category": "eats", "amount_krw": 5_000, "single_use": True},
    {"category": "travel", "amount_krw": 20_000, "single_use": True, "min_order_krw": 40_000},
]
# Three phones, each as it may be written in the registry file or typed in the app.
PHONES = [
    ("010-7000-0001", "+82 10 7000 0001", "01070000001"),
    ("010 7000 0002", "(010) 7000-0002", "+82-10-7000-0002"),
    ("010.7000.0003", "0082 10 7000 0003", "010-7000-0003"),
]
HOLDING = ("active", "unclaimed")
OTHER_CUSTOMER = 500_000  # added to a holder's id: someone who does not hold the voucher
PICK = st.integers(0, 7)  # counted from the newest: steps often meet the same objects again
SUITED = st.integers(0, 3).map(bool)  # three steps in four pick a target that suits them
PERCENT = st.integers(1, 110)  # of the balance: past 100, more than the voucher holds
TWIST = st.sampled_from([None, None, None, "stranger", "category", "short_order"])
ROW = st.tuples(st.sampled_from(["active", "dormant", "closed"]),
                st.sampled_from([None, *range(len(PHONES))]), st.integers(0, 2))
_campaigns = itertools.count(1)
# What the run's steps came to ("authorize: insufficient_balance", "claim: ...").
reached: Counter[str] = Counter()
MUST_REACH = {
    "authorize: done", "capture at once: done", "capture: done", "void: done",
    "refund: done", "claim: vouchers to move", "expire: some due", "revoke: created",
    "race checkouts: done", "race checkouts: insufficient_balance", "race refunds: done",
    "race revocation: done", "stage: some left",
}


@dataclass
class ModelVoucher:
    registry_customer_id: int
    holder: int
    category: str
    amount: int
    single_use: bool
    min_order: int
    status: str
    balance: int
    past_due: bool = False
    swept: bool = False  # what was left on it is booked to expired

    def refusal(self, *, customer_id: int, amount: int, order_total: int,
                merchant: str) -> str | None:
        """The code checkout must refuse this order with (its checks in checkout's
        order), or None."""
        if customer_id != self.holder:
            return "voucher_not_found"
        if self.status == "expired" or self.past_due:
            return "voucher_expired"
        if self.status not in ("active", "exhausted"):
            return "voucher_not_active"
        if self.category not in ("all", merchant):
            return "category_mismatch"
        if order_total < self.min_order:
            return "minimum_order_not_met"
        if amount > self.balance:
            return "insufficient_balance"
        return None

    @property
    def takes_back(self) -> bool:
        return self.status in ("active", "exhausted") and not self.past_due

    @property
    def spendable(self) -> bool:
        return self.takes_back and self.balance > 0

    @property
    def lapse_figure(self) -> str:
        return "revoked_krw" if self.status == "revoked" else "expired_krw"

    def set_balance(self, balance: int) -> None:
        assert 0 <= balance <= self.amount
        self.balance, self.status = balance, "exhausted" if balance == 0 else "active"


@dataclass
class ModelRedemption:
    voucher_id: int
    amount: int
    forfeited: int
    status: str
    refunded: int = 0

    @property
    def refundable(self) -> int:
        return self.amount - self.refunded if self.status in ("captured",
                                                              "partially_refunded") else 0


def choose(items: dict, pick: int, test: Callable[[object], bool] | None = None):
    """(key, item): the ``pick``-th newest of the items passing ``test`` (of all without
    one), in the order they were made (the same on a replay, whatever ids the database
    gave); None when there is none."""
    keys = [k for k, item in items.items() if test is None or test(item)]
    return (keys[-1 - pick % len(keys)], items[keys[-1 - pick % len(keys)]]) if keys else None


def refused_code(call: Callable[[], object]) -> tuple[object | None, str | None]:
    """(result, None), or (None, the refusal's code)."""
    try:
        return call(), None
    except ProblemError as refused:
        return None, refused.code


def outcome(step: str, call: Callable[[], object]) -> tuple[object | None, str | None]:
    """``refused_code``, counted in ``reached``."""
    result = refused_code(call)
    reached[f"{step}: {result[1] or 'done'}"] += 1
    return result


def all_at_once(step: str, calls: list[Callable[[], object]]
                ) -> list[tuple[object | None, str | None]]:
    """Runs each call in its own thread and connection, released together by a barrier;
    returns their ``refused_code`` outcomes in the order of ``calls``."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        try:
            barrier.wait(timeout=30)
            return refused_code(call)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        outcomes = list(pool.map(run, calls))
    for _, code in outcomes:
        reached[f"{step}: {code or 'done'}"] += 1
    return outcomes


class MoneyPath(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.campaign = Campaign.objects.create(
            slug=f"machine-{next(_campaigns)}", name="State machine",
            eligibility_opens_at=timezone.now() - dt.timedelta(days=1), created_by="test")
        expires_at = timezone.now() + dt.timedelta(days=90)
        for spec in COMPONENTS:
            Component.objects.create(campaign=self.campaign, expires_at=expires_at, **spec)
        self.lines: dict[int, str] = {}  # registry customer -> its line in the import file
        self.closed_phone: dict[int, int | None] = {}  # closed account -> index in PHONES
        self.issued: set[int] = set()
        self.revoked: set[int] = set()
        self.claimants: list[int] = []
        self.vouchers: dict[int, ModelVoucher] = {}
        self.redemptions: dict[UUID, ModelRedemption] = {}
        self.figures: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))

    # -- the model's bookkeeping ---------------------------------------------------------

    def book(self, category: str, **delta: int) -> None:
        for figure, won in delta.items():
            self.figures[category][figure] += won

    @staticmethod
    def target(items: dict, pick: int, suited: bool, test: Callable[[object], bool]):
        """Mostly (``suited``) an item the step suits, else any: refusals are steps too."""
        return (suited and choose(items, pick, test)) or choose(items, pick)

    def spent(self, redemption: Redemption) -> None:
        """Books a checkout the service made."""
        v = self.vouchers[redemption.voucher_id]
        amount = redemption.amount_krw
        forfeited = v.balance - amount if v.single_use else 0
        assert redemption.forfeited_krw == forfeited
        v.set_balance(v.balance - amount - forfeited)
        held = "redeemed_krw" if redemption.status == "captured" else "authorized_krw"
        self.book(v.category, **{held: amount}, forfeited_krw=forfeited,
                  outstanding_krw=-amount - forfeited)
        self.redemptions[redemption.pk] = ModelRedemption(
            voucher_id=redemption.voucher_id, amount=amount, forfeited=forfeited,
            status=redemption.status)

    def voided(self, r: ModelRedemption) -> None:
        """Books a void: back to the voucher with its forfeit, or lapsed where it cannot."""
        v = self.vouchers[r.voucher_id]
        if v.takes_back:
            v.set_balance(v.balance + r.amount + r.forfeited)
            self.book(v.category, authorized_krw=-r.amount, forfeited_krw=-r.forfeited,
                      outstanding_krw=r.amount + r.forfeited)
        else:
            self.book(v.category, authorized_krw=-r.amount, **{v.lapse_figure: r.amount})
        r.status = "voided"

    def refunded(self, r: ModelRedemption, amount: int) -> int:
        """Books a refund; returns what went back to the voucher."""
        v = self.vouchers[r.voucher_id]
        whole = r.refunded + amount == r.amount
        restored = 0
        if not v.takes_back:
            lapse = "forfeited_krw" if v.single_use else v.lapse_figure
            self.book(v.category, refunded_krw=amount, **{lapse: amount})
        elif v.single_use and not whole:
            self.book(v.category, refunded_krw=amount, forfeited_krw=amount)
        else:
            # Multi-use: the amount. Single-use, completing the refund: all it ever gave up.
            returned = r.forfeited + r.refunded if v.single_use else 0
            restored = amount + returned
            v.set_balance(v.balance + restored)
            self.book(v.category, refunded_krw=amount, forfeited_krw=-returned,
                      outstanding_krw=restored)
        r.refunded += amount
        r.status = "refunded" if whole else "partially_refunded"
        return restored

    def revoked_now(self, customer_id: int) -> tuple[int, int]:
        """Books a revocation; returns (vouchers revoked, won revoked)."""
        self.revoked.add(customer_id)
        count = won = 0
        for v in self.vouchers.values():
            if v.status in HOLDING and v.past_due:
                continue  # expired: left as it is, its leftover lapses to expired
            if (v.registry_customer_id == customer_id and v.status in HOLDING
                    and v.balance > 0):
                self.book(v.category, revoked_krw=v.balance, outstanding_krw=-v.balance)
                count, won = count + 1, won + v.balance
                v.balance, v.status = 0, "revoked"
            elif v.registry_customer_id == customer_id and v.status in (*HOLDING, "exhausted"):
                v.status = "revoked"  # spent or held to zero: revoked, nothing to move
        return count, won

    # -- rules ---------------------------------------------------------------------------

    @initialize(rows=st.lists(ROW, min_size=4, max_size=8))
    def launch(self, rows):
        """Every example starts with a registry and a run, so checkout has work at once."""
        self.import_customers(rows, repeat=False)
        self.issue()

    @rule(rows=st.lists(ROW, min_size=1, max_size=4), repeat=st.booleans())
    def import_customers(self, rows, repeat):
        """New customers (closed ones mostly with a phone); sometimes an old line again,
        which must change nothing."""
        first = max(self.lines, default=0) + 1
        lines = []
        for customer_id, (status, phone, form) in enumerate(rows, start=first):
            closed_at = "2025-12-01" if status == "closed" else ""
            written = PHONES[phone][form] if phone is not None else ""
            self.lines[customer_id] = f"{customer_id},{status},{closed_at},{written}"
            lines.append(self.lines[customer_id])
            if status == "closed":
                self.closed_phone[customer_id] = phone
        if repeat and first > 1:
            lines.append(self.lines[1])
        source = io.BytesIO(("customer_id,account_status,account_closed_at,phone\n"
                             + "\n".join(lines) + "\n").encode())
        result = import_registry(campaign=self.campaign, source=source, actor="ops-import")
        assert (result.inserted, result.updated, result.invalid) == (len(rows), 0, 0)
        assert result.registry_rows == len(self.lines)

    @precondition(lambda self: set(self.lines) - self.issued - self.revoked)
    @rule()
    def issue(self):
        """A run approved by a second operator and driven to the end: every registry
        customer not revoked and not yet issued gets one voucher per component, the
        others nothing more."""
        self.run_issuance(set(self.lines) - self.issued - self.revoked)

    @precondition(lambda self: set(self.lines) - self.issued - self.revoked)
    @rule(max_customers=st.integers(1, 4))
    def issue_stage(self, max_customers):
        """A staged run: only the lowest ``max_customers`` ids of those a full run would
        issue get their vouchers; the run counts them as its eligible customers."""
        waiting = sorted(set(self.lines) - self.issued - self.revoked)
        reached[f"stage: {'some left' if len(waiting) > max_customers else 'all due'}"] += 1
        self.run_issuance(set(waiting[:max_customers]), max_customers=max_customers)

    def run_issuance(self, due: set[int], *, max_customers: int | None = None) -> None:
        """Creates, approves and drives a run; books the vouchers it issued, which must be
        exactly one per component for each customer in ``due``."""
        run = issuance.create_run(campaign=self.campaign, actor="ops-a", dry_run_only=False,
                                  max_customers=max_customers)
        if max_customers is not None:
            assert run.eligible_customers == len(due)
        issuance.approve_run(run_id=run.pk, actor="ops-b")
        assert drive(run.pk).status == "completed"
        new = (Voucher.objects.filter(campaign=self.campaign).exclude(pk__in=list(self.vouchers))
               .order_by("registry_customer_id", "component"))
        assert sorted(new.values_list("registry_customer_id", "category")) == sorted(
            (c, spec["category"]) for c in due for spec in COMPONENTS)
        for row in new:
            self.vouchers[row.pk] = ModelVoucher(
                registry_customer_id=row.registry_customer_id, holder=row.registry_customer_id,
                category=row.category, amount=row.amount_krw, single_use=row.single_use,
                min_order=row.min_order_krw, balance=row.amount_krw,
                status="unclaimed" if row.registry_customer_id in self.closed_phone
                else "active")
            self.book(row.category, issued_krw=row.amount_krw, issued_count=1,
                      outstanding_krw=row.amount_krw)
        self.issued |= due

    @rule(phone=st.integers(0, len(PHONES) - 1), suited=SUITED, form=st.integers(0, 2),
          pick=st.none() | PICK)
    def claim(self, phone, suited, form, pick):
        """A new account (or one that claimed before) claims with a phone, mostly one
        that closed accounts' vouchers wait for: the code goes out only where some do,
        and confirming it moves exactly those vouchers, once."""
        claimant = (self.claimants[pick % len(self.claimants)] if pick is not None
                    and self.claimants else 100_000 + len(self.claimants) + 1)
        waiting = {pk: self.closed_phone[v.registry_customer_id]
                   for pk, v in self.vouchers.items()
                   if v.status == "unclaimed" and not v.past_due}
        waiting_phones = sorted(set(waiting.values()) - {None})
        if suited and waiting_phones:
            phone = waiting_phones[phone % len(waiting_phones)]
        expected = {pk for pk, waits_for in waiting.items() if waits_for == phone}
        challenge = start_claim(campaign=campaign_facts(self.campaign.slug),
                                customer_id=claimant, phone=PHONES[phone][form],
                                actor=f"customer:{claimant}")
        assert sms.deliver(challenge_id=challenge.pk) == bool(expected)
        reached[f"claim: {'vouchers to move' if expected else 'nothing to claim'}"] += 1
        if not expected:
            return
        [message] = Path(settings.SMS_FILE_PATH).glob(f"*-{challenge.pk}.json")
        code = code_in(json.loads(message.read_text()))

        def confirm():
            return confirm_claim(challenge_id=challenge.pk, customer_id=claimant, code=code,
                                 actor=f"customer:{claimant}")

        assert {v.pk for v in confirm()} == expected
        assert refused_code(confirm) == (None, "already_claimed")
        for pk in expected:
            self.vouchers[pk].holder, self.vouchers[pk].status = claimant, "active"
        if claimant not in self.claimants:
            self.claimants.append(claimant)

    @precondition(lambda self: self.vouchers)
    @rule(pick=PICK, suited=SUITED, percent=PERCENT, twist=TWIST)
    def authorize(self, pick, suited, percent, twist):
        self.redeem(pick, suited, percent, twist, capture=False)

    @precondition(lambda self: self.vouchers)
    @rule(pick=PICK, suited=SUITED, percent=PERCENT, twist=TWIST)
    def capture_at_once(self, pick, suited, percent, twist):
        self.redeem(pick, suited, percent, twist, capture=True)

    def redeem(self, pick: int, suited: bool, percent: int, twist: str | None, *,
               capture: bool) -> None:
        """Checkout of part, all or more than all of a voucher; sometimes by someone else,
        for another category or below the minimum order."""
        pk, v = self.target(self.vouchers, pick, suited, lambda v: v.spendable)
        amount = max(1, v.balance * percent // 100)
        merchant = "books" if twist == "category" else (
            "eats" if v.category == "all" else v.category)
        order_total = max(amount, v.min_order)
        if twist == "short_order" and v.min_order > amount:
            order_total = v.min_order - 1
        customer = v.holder + OTHER_CUSTOMER if twist == "stranger" else v.holder
        expected = v.refusal(customer_id=customer, amount=amount, order_total=order_total,
                             merchant=merchant)
        step = "capture at once" if capture else "authorize"
        made, code = outcome(step, lambda: checkout.create_redemption(
            voucher_id=pk, customer_id=customer, order_id=f"order-{pick}", amount_krw=amount,
            order_total_krw=order_total, merchant_category=merchant, capture=capture,
            actor="checkout"))
        assert code == expected
        if made is not None:
            self.spent(made)

    @precondition(lambda self: self.redemptions)
    @rule(pick=PICK, suited=SUITED)
    def capture(self, pick, suited):
        pk, r = self.target(self.redemptions, pick, suited, lambda r: r.status == "authorized")
        _, code = outcome("capture", lambda: checkout.capture_redemption(redemption_id=pk,
                                                                         actor="checkout"))
        assert code == (None if r.status == "authorized" else "invalid_transition")
        if code is None:
            self.book(self.vouchers[r.voucher_id].category, authorized_krw=-r.amount,
                      redeemed_krw=r.amount)
            r.status = "captured"

    @precondition(lambda self: self.redemptions)
    @rule(pick=PICK, suited=SUITED)
    def void(self, pick, suited):
        pk, r = self.target(self.redemptions, pick, suited, lambda r: r.status == "authorized")
        _, code = outcome("void", lambda: checkout.void_redemption(redemption_id=pk,
                                                                   actor="checkout"))
        assert code == (None if r.status == "authorized" else "invalid_transition")
        if code is None:
            self.voided(r)

    @precondition(lambda self: self.redemptions)
    @rule(pick=PICK, suited=SUITED, percent=st.none() | st.integers(1, 110))
    def refund(self, pick, suited, percent):
        """Part of, all that is left of (no amount), or more than is left of a redemption."""
        pk, r = self.target(self.redemptions, pick, suited, lambda r: r.refundable > 0)
        left = r.amount - r.refunded
        amount = None if percent is None else max(1, left * percent // 100)
        if r.status not in ("captured", "partially_refunded"):
            expected = "invalid_transition"
        else:
            expected = "refund_exceeds_captured" if (amount or left) > left else None
        done, code = outcome("refund", lambda: checkout.refund_redemption(
            redemption_id=pk, amount_krw=amount, actor="checkout"))
        assert code == expected
        if done is not None:
            assert done.amount_krw == (amount or left)
            assert done.voucher_restored == (self.refunded(r, amount or left) > 0)

    @precondition(lambda self: self.vouchers)
    @rule(pick=PICK, suited=SUITED)
    def expire(self, pick, suited):
        """Time passes for one voucher, mostly one with a hold or a refundable checkout
        (whose void or refund then lapses): the daily expiry moves what is left to expired."""
        spent = suited and choose(self.redemptions, pick,
                                  lambda r: r.status == "authorized" or r.refundable > 0)
        pk = spent[1].voucher_id if spent else choose(self.vouchers, pick)[0]
        v = self.vouchers[pk]
        if not v.past_due:
            Voucher.objects.filter(pk=pk).update(expires_at=timezone.now())
            v.past_due = True
        due = [d for d in self.vouchers.values()
               if d.past_due and d.status in HOLDING and not d.swept]
        result = expire_vouchers()
        reached[f"expire: {'some' if due else 'none'} due"] += 1
        assert (result.vouchers, result.expired_krw) == (len(due), sum(d.balance for d in due))
        for d in due:  # the row keeps its status and balance; the books move it
            self.book(d.category, expired_krw=d.balance, outstanding_krw=-d.balance)
            d.swept = True

    @precondition(lambda self: self.lines)
    @rule(pick=PICK, racing=st.booleans(),
          percents=st.lists(st.integers(5, 60), min_size=2, max_size=4))
    def revoke(self, pick, racing, percents):
        """Revokes a registry customer (again: nothing changes); when ``racing``, while
        checkouts of one of its vouchers run in other threads."""
        if racing:
            found = choose(self.vouchers, pick, lambda v: v.spendable
                           and v.registry_customer_id not in self.revoked)
            if found is not None:
                self.race_revocation(*found, percents)
                return
        customer_id = sorted(self.lines)[pick % len(self.lines)]
        again = customer_id in self.revoked
        revocation, created = revoke_customer(campaign=self.campaign, customer_id=customer_id,
                                              reason="invalid account", actor="ops-a")
        assert created is not again
        reached[f"revoke: {'again' if again else 'created'}"] += 1
        if created:
            assert (revocation.vouchers_revoked, revocation.revoked_krw) == self.revoked_now(
                customer_id)

    @precondition(lambda self: self.redemptions)
    @rule()
    def time_out_holds(self):
        """The periodic hold timeout, run as if the holds' time were up."""
        holds = [r for r in self.redemptions.values() if r.status == "authorized"]
        later = timezone.now() + dt.timedelta(seconds=settings.AUTHORIZATION_TTL_SECONDS + 1)
        # Holds left open by earlier examples' campaigns time out here too.
        assert checkout.void_timed_out_holds(now=later) >= len(holds)
        for r in holds:
            self.voided(r)

    # -- from several threads at once ----------------------------------------------------

    @precondition(lambda self: self.vouchers)
    @rule(pick=PICK, percents=st.lists(st.integers(5, 60), min_size=3, max_size=5))
    def race_checkouts(self, pick, percents):
        """Checkouts of one multi-use voucher at once: never more than its balance; each
        refused one asked for more than was left at the end."""
        found = choose(self.vouchers, pick, lambda v: not v.single_use and v.spendable)
        if found is None:
            return
        pk, v = found
        amounts = [max(1, v.balance * p // 100) for p in percents]
        outcomes = all_at_once("race checkouts", [
            lambda i=i, amount=amount: checkout.create_redemption(
                voucher_id=pk, customer_id=v.holder, order_id=f"race-{i}", amount_krw=amount,
                order_total_krw=amount, merchant_category="eats", capture=i % 2 == 0,
                actor="checkout")
            for i, amount in enumerate(amounts)])
        for made, _ in outcomes:
            if made is not None:
                self.spent(made)
        refused = [a for a, (_, code) in zip(amounts, outcomes, strict=True) if code]
        assert {code for _, code in outcomes} <= {None, "insufficient_balance"}
        assert all(amount > v.balance for amount in refused)

    @precondition(lambda self: self.redemptions)
    @rule(pick=PICK, percents=st.lists(st.integers(5, 60), min_size=3, max_size=5))
    def race_refunds(self, pick, percents):
        """Refunds of one redemption at once: never more than was captured, and on a
        single-use voucher only the refund that completes it gives anything back."""
        found = choose(self.redemptions, pick, lambda r: r.refundable > 0)
        if found is None:
            return
        pk, r = found
        amounts = [max(1, r.refundable * p // 100) for p in percents]
        outcomes = all_at_once("race refunds", [
            lambda amount=amount: checkout.refund_redemption(
                redemption_id=pk, amount_krw=amount, actor="checkout")
            for amount in amounts])
        done = [refund for refund, _ in outcomes if refund is not None]
        given_back = [self.refunded(r, refund.amount_krw) > 0 for refund in done]
        assert sorted(given_back) == sorted(refund.voucher_restored for refund in done)
        refused = [a for a, (_, code) in zip(amounts, outcomes, strict=True) if code]
        assert {code for _, code in outcomes} <= {None, "refund_exceeds_captured",
                                                  "invalid_transition"}
        assert all(amount > r.amount - r.refunded for amount in refused)

    def race_revocation(self, pk: int, v: ModelVoucher, percents: list[int]) -> None:
        """Checkouts of a voucher racing its customer's revocation: whatever the order,
        what was spent and what was revoked add up to what the voucher held."""
        amounts = [max(1, v.balance * p // 100) for p in percents]
        merchant = "eats" if v.category == "all" else v.category
        outcomes = all_at_once("race revocation", [
            lambda: revoke_customer(campaign=self.campaign,
                                    customer_id=v.registry_customer_id,
                                    reason="invalid account", actor="ops-a"),
            *(lambda i=i, amount=amount: checkout.create_redemption(
                voucher_id=pk, customer_id=v.holder, order_id=f"revoked-{i}",
                amount_krw=amount, order_total_krw=max(amount, v.min_order),
                merchant_category=merchant, capture=True, actor="checkout")
              for i, amount in enumerate(amounts))])
        (revocation, created), _ = outcomes[0]
        assert created
        # Checkouts that got through came first: the revocation took what they left.
        for made, _ in outcomes[1:]:
            if made is not None:
                self.spent(made)
        assert {code for _, code in outcomes[1:]} <= {None, "insufficient_balance",
                                                      "voucher_not_active"}
        assert (revocation.vouchers_revoked, revocation.revoked_krw) == self.revoked_now(
            v.registry_customer_id)

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def database_equals_model(self):
        vouchers = Voucher.objects.filter(campaign=self.campaign)
        assert not vouchers.filter(balance_krw__lt=0).exists()
        assert not (vouchers.values("registry_customer_id", "component")
                    .annotate(n=Count("pk")).filter(n__gt=1).exists())
        assert {row[0]: row[1:] for row in vouchers.values_list(
            "pk", "customer_id", "balance_krw", "status")} == {
            pk: (v.holder, v.balance, v.status) for pk, v in self.vouchers.items()}
        assert {row[0]: row[1:] for row in Redemption.objects.filter(
            campaign=self.campaign).values_list("pk", "status", "refunded_krw")} == {
            pk: (r.status, r.refunded) for pk, r in self.redemptions.items()}

    @invariant()
    def ledger_verifies(self):
        report = verify_ledger(campaign_id=self.campaign.pk)
        assert report.ok, [check for check in report.checks if not check.ok]

    @invariant()
    def summary_identity_and_model_figures(self):
        summary = campaign_summary(self.campaign)
        table = {"campaign": summary, **{c["category"]: c for c in summary["by_category"]}}
        for figures in table.values():
            assert figures["issued_krw"] == (
                figures["redeemed_krw"] - figures["refunded_krw"] + figures["authorized_krw"]
                + figures["forfeited_krw"] + figures["expired_krw"] + figures["revoked_krw"]
                + figures["outstanding_krw"])
        expected = {c: dict(f) for c, f in self.figures.items()}
        if expected:
            expected["campaign"] = {f: sum(c[f] for c in self.figures.values())
                                    for f in FIGURES}
        assert {name: {f: figures[f] for f in FIGURES} for name, figures in table.items()
                if any(figures[f] for f in FIGURES)} == expected

    def teardown(self):
        chain = verify_audit_chain()
        assert chain.ok, chain.first_break


APPELLANTS = 300_000  # plus a count: customers that no import brings
# Who appeals, in turn: one no import brings; the customer the next import brings first,
# with that import right after the filing and an acceptance tried then; a registry
# customer; that next customer again, whom an import may overtake before the decision;
# one who appealed before.
APPELLANTS_IN_TURN = ("outsider", "overtaken", "registered", "next_imported", "appealed")
# Operations' decisions, in turn: accept with an account status, or reject (None).
VERDICTS = ("active", None, "dormant", None, "closed", None)
APPEALS_MUST_REACH = {
    "appeal: done", "appeal: already_eligible", "appeal: appeal_exists", "accept: done",
    "accept: already_eligible", "reject: done", "issue: accepted appellants",
}


@dataclass
class ModelAppeal:
    customer_id: int
    status: str = "open"


class MoneyPathWithAppeals(MoneyPath):
    def __init__(self) -> None:
        super().__init__()
        self.appeals: dict[UUID, ModelAppeal] = {}
        self.accepted: set[int] = set()  # appellants the registry took as late additions
        self.decisions = self.filings = 0

    @precondition(lambda self: set(self.lines) - self.issued - self.revoked)
    @rule()
    def issue(self):
        """The money path's run, which must issue accepted appellants as any registry
        customer; counted when it has some to issue."""
        if (set(self.lines) - self.issued - self.revoked) & self.accepted:
            reached["issue: accepted appellants"] += 1
        super().issue()

    @rule(pick=PICK)
    def appeals(self, pick):
        """Operations decide the oldest open appeal, then a customer appeals (each in
        turn): an appeal waits at least a step for its decision, so imports, runs and
        checkouts come in between, in the orders Hypothesis explores."""
        waiting = next(((pk, a) for pk, a in self.appeals.items() if a.status == "open"),
                       None)
        if waiting is not None:
            self.decide(*waiting, VERDICTS[self.decisions % len(VERDICTS)])
            self.decisions += 1
        self.file(APPELLANTS_IN_TURN[self.filings % len(APPELLANTS_IN_TURN)], pick)
        self.filings += 1

    def file(self, who: str, pick: int) -> None:
        """Refused for a registry customer and while one of theirs is open (a filing that
        got through is tried again at once); the customer the next import brings first may
        be overtaken by that import before the decision (``APPELLANTS_IN_TURN``)."""
        earlier = choose(self.appeals, pick)
        if who in ("next_imported", "overtaken"):
            customer_id = max(self.lines) + 1
        elif who == "registered":
            customer_id = sorted(self.lines)[pick % len(self.lines)]
        elif who == "appealed" and earlier is not None:
            customer_id = earlier[1].customer_id
        else:
            customer_id = APPELLANTS + len(self.appeals) + 1
        open_appellants = {a.customer_id for a in self.appeals.values() if a.status == "open"}
        expected = ("already_eligible" if customer_id in self.lines
                    else "appeal_exists" if customer_id in open_appellants else None)

        def filing():
            return file_appeal(campaign=campaign_facts(self.campaign.slug),
                               customer_id=customer_id, reason="Missing from the registry.",
                               actor=f"customer:{customer_id}")

        filed, code = outcome("appeal", filing)
        assert code == expected
        if filed is None:
            return
        self.appeals[filed.pk] = ModelAppeal(customer_id)
        assert outcome("appeal", filing) == (None, "appeal_exists")
        if who == "overtaken":
            self.import_customers([("dormant", None, 0)], repeat=False)
            self.decide(filed.pk, self.appeals[filed.pk], "active")  # already_eligible

    def decide(self, pk: UUID, a: ModelAppeal, account: str | None) -> None:
        """Accepts with ``account`` as the registry's account status, or rejects (None).
        Accepting adds the customer to the registry, eligible at once and issued by the
        next run (closed: unclaimed, with no phone to claim by), unless an import brought
        them meanwhile (``already_eligible``). An appeal is decided once."""
        if account is None:
            _, code = outcome("reject", lambda: reject_appeal(
                appeal_id=pk, reason="Not in the leaked data.", actor="ops-a"))
            assert code is None
        else:
            _, code = outcome("accept", lambda: accept_appeal(
                appeal_id=pk, account_status=account, actor="ops-a"))
            assert code == ("already_eligible" if a.customer_id in self.lines else None)
        if code is not None:
            return
        assert refused_code(lambda: reject_appeal(appeal_id=pk, reason="Again.",
                                                  actor="ops-b")) == (None, "invalid_transition")
        a.status = "rejected" if account is None else "accepted"
        if account is not None:
            self.accepted.add(a.customer_id)
            self.lines[a.customer_id] = f"{a.customer_id},{account},<decision time>,"
            if account == "closed":
                self.closed_phone[a.customer_id] = None
            found = eligibility(campaign_facts(self.campaign.slug), a.customer_id)
            assert (found.eligible, found.status, found.account_status) == (
                True, "pending_issuance", account)

    @invariant()
    def appeals_equal_model(self):
        assert dict(Appeal.objects.filter(campaign=self.campaign).values_list("pk", "status")) \
            == {pk: a.status for pk, a in self.appeals.items()}


if SEED is not None:
    MoneyPath = hypothesis.seed(int(SEED))(MoneyPath)
    MoneyPathWithAppeals = hypothesis.seed(int(SEED))(MoneyPathWithAppeals)


def explore(machine: type[MoneyPath], *, examples: int, must_reach: set[str]) -> None:
    reached.clear()
    run_state_machine_as_test(machine, settings=hypothesis.settings(
        max_examples=examples, stateful_step_count=STEPS, deadline=None,
        derandomize=SEED is None, database=None, print_blob=True, phases=PHASES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    if SEED is None:
        assert set(reached) >= must_reach, sorted(reached.items())


@pytest.mark.django_db(transaction=True)
def test_the_money_path_keeps_the_books(settings, tmp_path):
    settings.SMS_BACKEND, settings.SMS_FILE_PATH = "file", str(tmp_path / "sms")
    explore(MoneyPath, examples=EXAMPLES, must_reach=MUST_REACH)


@pytest.mark.django_db(transaction=True)
def test_appeals_on_the_money_path(settings, tmp_path):
    settings.SMS_BACKEND, settings.SMS_FILE_PATH = "file", str(tmp_path / "sms")
    explore(MoneyPathWithAppeals, examples=APPEAL_EXAMPLES, must_reach=APPEALS_MUST_REACH)
