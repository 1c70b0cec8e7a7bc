"""The end of the programme: every unspent voucher expires (under checkout load), then
finance closes the books.

Expiry runs the real service (``vouchers.redemption.expiry.expire_vouchers``, what the
daily task calls) with ``now`` one second past the campaign's fixed expiry date: a sweep
through a time still to come binds every writer as the clock would
(tests/redemption/test_expiry.py), where moving every voucher's ``expires_at`` into the
past would rewrite all 134.8M rows before the measurement even started. Checkout keeps
running meanwhile, in windows of ``--seconds`` each on vouchers not spent yet: the
sweep's cutoff waits for the checkouts in flight (each holds the sweep lock shared), the
checkouts queued behind it wait for the cutoff's commit (the lock wait measured), and
from then on they are refused as expired while the sweep adds up the leftovers. A second
run right after posts nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import statistics
import threading
import time

from bench_finance_export import copy_same_rows, export_through_api
from bench_finance_summary import time_calls
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from rest_framework.test import APIClient
from serving import post_load, serving
from tqdm import tqdm

from accounts.services import create_principal
from vouchers.finance.selectors import campaign_summary
from vouchers.models import Reason
from vouchers.models.expiry import live, swept
from vouchers.redemption.expiry import expire_vouchers

from .checks import scalar
from .meter import LockWaits, relation_bytes
from .report import Check, PhaseResult, Target, bytes_text, rate_text, seconds_text
from .traffic import (
    CHECKOUTS_PER_SECOND,
    checkout_body,
    checkout_principal,
    server_log,
    spendable,
    summarise_windows,
)

FULL_EXPIRY_VOUCHERS = 130_000_000
EXPIRY_LIMIT_SECONDS = 30 * 60
LEDGER_GROWTH_LIMIT_GB = 1
CHECKOUT_P99_LIMIT_MS = 250
LOCK_WAIT_LIMIT_MS = 1000
SUMMARY_LIMIT_MS = 50
COMMAND_LIMIT_SECONDS = 10 * 60
LEDGER_TABLES = ("vouchers_ledgerposting", "vouchers_ledgertransaction")

_EXPIRED_SO_FAR = """
SELECT coalesce(sum((payload ->> 'vouchers')::bigint), 0) FROM voucher_service_auditevent
WHERE action = 'vouchers.expired' AND id > %s
"""


@contextlib.contextmanager
def expiry_progress(total: int):
    """A progress bar fed by the expiry's own audit event (one per sweep, with its
    voucher count: the sweep adds up in one statement, so the bar shows the time running
    and fills when the sweep posts), read every second on a connection of its own."""
    from django.db import connections

    first = scalar("SELECT coalesce(max(id), 0) FROM voucher_service_auditevent")
    stop = threading.Event()

    def follow() -> None:
        with tqdm(total=total, unit="voucher", desc="expiry", disable=None,
                  leave=False) as bar:
            while not stop.wait(1.0):
                with connections["default"].cursor() as cursor:
                    cursor.execute(_EXPIRED_SO_FAR, [first])
                    bar.update(cursor.fetchone()[0] - bar.n)
            connections["default"].close()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class CheckoutLoad(threading.Thread):
    """Checkout windows of ``seconds`` each, one after the other, until stopped (the
    window in progress ends then too); window ``k`` takes the ``k``-th slice of the
    bodies, so no voucher is offered twice while there are fresh ones."""

    def __init__(self, port: int, token: str, bodies: list, *, clients: int, seconds: float,
                 workdir) -> None:
        super().__init__(daemon=True)
        self.port, self.token, self.bodies = port, token, bodies
        self.run_args = {"clients": clients, "processes": 2, "seconds": seconds,
                         "workdir": workdir}
        self.per_window = max(1, int(seconds * CHECKOUTS_PER_SECOND))
        self.windows: list[dict] = []
        self.started = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        k = 0
        try:
            while not self.stop.is_set():
                start = (k * self.per_window) % max(1, len(self.bodies))
                bodies = self.bodies[start:start + self.per_window] or self.bodies
                self.started.set()
                self.windows.append(post_load(self.port, self.token, bodies, stop=self.stop,
                                              **self.run_args))
                k += 1
        except BaseException as exc:  # reported by the phase
            self.error = exc
            self.started.set()


def phase_expiry(ctx) -> PhaseResult:
    args, campaign = ctx.args, ctx.campaign
    expires_at = max(c.expires_at for c in campaign.components.all())
    now = expires_at + dt.timedelta(seconds=1)
    due = scalar(f"SELECT count(*) FROM vouchers_voucher WHERE campaign_id = %s "
                 f"AND {live()} AND NOT {swept()}", [campaign.pk])
    if due == 0:
        raise RuntimeError("no voucher left to expire: rehearse from an earlier phase")
    expired_before = campaign_summary(campaign)["expired_krw"]  # an interrupted sitting's
    ledger_before = sum(relation_bytes(t) for t in LEDGER_TABLES)
    last_posting = scalar("SELECT coalesce(max(id), 0) FROM vouchers_ledgerposting")
    pool = spendable(campaign.pk, args.expiry_checkouts, seed=13)
    bodies = [checkout_body(v, k) for k, v in enumerate(pool)]
    token = checkout_principal()
    with server_log(ctx) as log, serving(log) as port:
        checkout = CheckoutLoad(port, token, bodies, clients=args.checkout_connections,
                                seconds=args.seconds, workdir=ctx.workdir)
        with LockWaits(ctx.url) as locks:
            checkout.start()
            checkout.started.wait()
            time.sleep(0.5)  # wrk connected and sending
            with expiry_progress(due):
                started = time.perf_counter()
                first = expire_vouchers(now=now)
                seconds = time.perf_counter() - started
            checkout.stop.set()
            checkout.join()
    if checkout.error:
        raise checkout.error
    again = expire_vouchers(now=now)  # nothing twice
    expired = first.vouchers + again.vouchers
    ledger_growth = sum(relation_bytes(t) for t in LEDGER_TABLES) - ledger_before
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(*) FILTER (WHERE t.reason = %s) "
                       "FROM vouchers_ledgerposting p JOIN vouchers_ledgertransaction t "
                       "ON t.id = p.transaction_id WHERE p.id > %s",
                       [Reason.EXPIRY, last_posting])
        postings, expiry_postings = cursor.fetchone()
    # The expiry's share of the growth (the rest is the checkouts' meanwhile). Its postings
    # are one per (campaign, category, account): they do not grow with the vouchers.
    expiry_growth = ledger_growth * expiry_postings / max(postings, 1)
    load = summarise_windows(checkout.windows)
    summary = campaign_summary(campaign)
    left = scalar(f"SELECT count(*) FROM vouchers_voucher WHERE campaign_id = %s "
                  f"AND {live()} AND expires_at <= %s AND NOT {swept()}", [campaign.pk, now])
    scale = FULL_EXPIRY_VOUCHERS / max(first.vouchers, 1)
    return PhaseResult(
        rows=first.vouchers, unit="vouchers", seconds=seconds,
        lines=[
            ("expiry (real service, now = expiry date + 1 s)",
             f"{first.vouchers:,} vouchers, {first.expired_krw:,} won in "
             f"{seconds_text(seconds)} = {rate_text(first.vouchers, seconds, 'vouchers')}; "
             f"a second run: {again.vouchers:,}"),
            ("ledger growth (postings + transactions)",
             f"{bytes_text(ledger_growth)}: {postings:,} postings, {expiry_postings:,} of "
             f"them the expiry's ({expiry_postings / max(expired, 1):.5f} per voucher; the "
             "rest the checkouts' meanwhile)"),
            ("checkout during expiry",
             f"{load['rps']:,.0f}/s, p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms, "
             f"max {load['max_ms']:.0f} ms; {load['created']:,} captured, "
             f"{load['non_2xx']:,} refused (expired meanwhile) in {load['windows']} window(s)"),
            ("longest lock wait seen (pg_locks, every 50 ms)",
             f"{locks.max_seconds * 1000:,.0f} ms; {locks.samples_waiting:,} of "
             f"{locks.samples:,} samples with a waiter"),
        ],
        figures={"due": due, "expired": {"vouchers": first.vouchers, "krw": first.expired_krw,
                                         "seconds": seconds},
                 "again": {"vouchers": again.vouchers, "krw": again.expired_krw},
                 "ledger_growth_bytes": ledger_growth, "postings": postings,
                 "expiry_postings": expiry_postings, "expiry_growth_bytes": expiry_growth,
                 "checkout": load, "checkout_windows": checkout.windows,
                 "lock_wait": {"max_seconds": locks.max_seconds, "samples": locks.samples,
                               "samples_waiting": locks.samples_waiting}},
        targets=[
            Target.within("expiry of 130M vouchers", seconds, EXPIRY_LIMIT_SECONDS, scale),
            Target.size_within("ledger growth from expiry (its own postings)", expiry_growth,
                               LEDGER_GROWTH_LIMIT_GB, scale, fixed_bytes=expiry_growth),
            Target.below("checkout p99 during expiry", load["p99_ms"], CHECKOUT_P99_LIMIT_MS,
                         "ms"),
            Target.below("longest lock wait during expiry", locks.max_seconds * 1000,
                         LOCK_WAIT_LIMIT_MS, "ms"),
        ],
        checks=[
            Check("no voucher past the date left unswept", 0, left),
            Check("a second run posts nothing", 0, again.vouchers),
            Check("nothing outstanding once expired", 0, summary["outstanding_krw"]),
            Check("summary's expired won grew by what the runs expired",
                  expired_before + first.expired_krw + again.expired_krw,
                  summary["expired_krw"]),
            Check("checkout load: no socket error", 0, load["socket_errors"]),
        ],
    )


def _command(name: str, *args: str) -> tuple[float, bool, str]:
    """Runs a management command in this process: seconds, success, its last line."""
    out = io.StringIO()
    started = time.perf_counter()
    try:
        call_command(name, *args, stdout=out)
        ok = True
    except CommandError as exc:
        ok = False
        out.write(str(exc))
    lines = out.getvalue().strip().splitlines()
    return time.perf_counter() - started, ok, lines[-1] if lines else ""


def phase_finance(ctx) -> PhaseResult:
    args, campaign, pop = ctx.args, ctx.campaign, ctx.population
    _, token = create_principal(role="finance", name=f"rehearsal-finance-{time.time_ns()}",
                                actor="rehearsal")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def summary() -> None:
        response = client.get("/api/v1/finance/summary", {"campaign": campaign.slug})
        assert response.status_code == 200, response.content

    summary()
    calls = sorted(time_calls(summary, args.summary_calls))
    median = statistics.median(calls)
    _command("seal_audit_events")  # the beat's sealer, which the rehearsal does not run
    commands = {
        "reconcile": _command("reconcile", "--campaign", campaign.slug),
        "verify_ledger": _command("verify_ledger", "--campaign", campaign.slug),
        "verify_audit_chain": _command("verify_audit_chain"),
    }
    export = export_through_api(token, campaign.slug)
    copy = copy_same_rows(campaign.pk)
    redemptions = scalar("SELECT count(*) FROM redemption_redemption WHERE campaign_id = %s",
                         [campaign.pk])
    rows = export["lines"] - 1
    return PhaseResult(
        rows=rows, unit="exported rows", seconds=export["seconds"],
        lines=[
            ("finance summary API (in-process), median of "
             f"{args.summary_calls}", f"{median:.2f} ms (p99 "
                                      f"{calls[int(len(calls) * 0.99) - 1]:.2f} ms)"),
            *((f"{name} command", f"{seconds_text(seconds)}: {last}")
              for name, (seconds, _, last) in commands.items()),
            ("redemption export API (streamed in-process)",
             f"{rows:,} rows, {bytes_text(export['bytes'])} in "
             f"{seconds_text(export['seconds'])} = {rate_text(rows, export['seconds'], 'rows')}"),
            ("bare COPY ... TO STDOUT of the same rows",
             f"{seconds_text(copy['seconds'])}; export / COPY "
             f"{copy['seconds'] / export['seconds']:.0%}" if export["seconds"] else "-"),
        ],
        figures={"summary_ms": {"median": median, "calls": calls},
                 "commands": {name: {"seconds": s, "ok": ok, "last_line": last}
                              for name, (s, ok, last) in commands.items()},
                 "export": export, "copy": copy},
        targets=[
            Target.below("finance summary (median)", median, SUMMARY_LIMIT_MS, "ms"),
            # The audit trail grows with the traffic sent, not with the customers.
            *(Target.within(f"{name}", seconds, COMMAND_LIMIT_SECONDS,
                            1 if name == "verify_audit_chain" else pop.scale)
              for name, (seconds, _, _) in commands.items()),
        ],
        checks=[
            *(Check(f"{name} passes", True, ok, detail=last)
              for name, (_, ok, last) in commands.items()),
            Check("export rows == the campaign's redemptions", redemptions, rows),
        ],
    )
