"""Checkout throughput over HTTP: redemptions per second against two bare DRF endpoints.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/vs_h3_bench \\
    REDIS_URL=redis://127.0.0.1:6379/8 CELERY_BROKER_URL=redis://127.0.0.1:6379/9 \\
    CACHE_KEY_PREFIX=h3 .venv/bin/python bench/bench_redemption.py --vouchers 100000

Creates the database if needed and migrates it, issues the vouchers (one 50,000 won
multi-use voucher per customer, through issuance's chunk statement), and starts one real
gunicorn server (gthread workers, ``DEBUG`` off, log level WARNING) on a free port. Its
URLconf is ``bench/redemption_urls.py``: every API route plus two baselines with the same
bearer authentication and checkout role, ``POST /t/echo`` (validates one amount and echoes
it: bare) and ``POST /t/commit`` (the same, then one row committed in a transaction:
bare+commit). Then, with the same clients (processes of threads, keep-alive connections;
with ``--load wrk`` the same connections from wrk, which needs Debian's package,
``apt-get install -y wrk``, and takes far less of the shared cores), the phases run in turn
for a fixed time, in rounds (``--rounds``, 3 by default: the machine's other load weighs on
every phase alike):

* bare: ``POST /t/echo``;
* bare+commit: ``POST /t/commit``;
* spread: ``POST /api/v1/redemptions`` (capture, 1,000 won, a fresh Idempotency-Key),
  each request on another voucher;
* one voucher: the same with every client on one voucher (1 won each), then the check that
  nothing was lost: the won the 201 answers report equal the voucher's balance drop, the
  redemption rows and the ledger's redeemed postings.

With ``--through-pgbouncer`` a second server, whose connections go through PgBouncer in
transaction pooling mode (as deployed, docs/DEPLOYMENT.md), takes the spread phase too, in
the same rounds: checkout direct against through the pooler.

Meanwhile the audit trail's sealer runs as in production, every
``AUDIT_SEAL_INTERVAL_SECONDS`` (``Sealer``): its PostgreSQL CPU per event sealed is
reported, and the trail verified at the end.

Last, the CPU per request of the baselines and the checkout requests, sent in-process
through Django's test client (this process and its PostgreSQL backend, from /proc): unlike
the rates, it hardly depends on what else runs on the machine. The last line sums it up:
the spread rate against both baselines and the PostgreSQL CPU per checkout.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from common import ROOT, free_port, make_campaign, through_pgbouncer
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.test import Client, override_settings
from redemption_urls import create_commit_table
from serving import cpu_seconds, post_load

from accounts.services import create_principal
from voucher_service.audit import verify_audit_chain
from voucher_service.sealing import seal_events
from vouchers.identifiers import public_voucher_id
from vouchers.issuance.chunk import issue_chunk
from vouchers.ledger.verification import verify_ledger
from vouchers.models import LedgerPosting, Voucher
from vouchers.redemption.models import Redemption

_CHECKOUT_TABLES = (
    "vouchers_voucher", "vouchers_ledgertransaction", "vouchers_ledgerposting",
    "vouchers_ledgerbalance", "vouchers_ledgerdaily", "redemption_redemption",
    "redemption_redemptionevent", "voucher_service_auditevent",
    "voucher_service_idempotencykey",
)
_URLCONF = "redemption_urls"
_SERVER_SETTINGS = f'from config.settings import *  # noqa\nROOT_URLCONF = "{_URLCONF}"\n'


def issue_vouchers(n: int) -> tuple[int, list[Voucher]]:
    campaign_id = make_campaign(f"bench-redeem-{time.time_ns()}", n, closed_every=0)
    for lo in range(1, n + 1, 10_000):
        issue_chunk(campaign_id=campaign_id, lo=lo, hi=lo + 10_000, run_id=None, chunk_id=None)
    with connection.cursor() as cursor:
        # Without autovacuum (this server runs with it off), every run would pay for the
        # dead rows that the earlier runs' checkouts left in the tables checkout writes.
        cursor.execute(f"VACUUM ANALYZE {', '.join(_CHECKOUT_TABLES)}")  # constant names
    vouchers = list(Voucher.objects.filter(campaign_id=campaign_id)
                    .only("id", "customer_id").order_by("id"))
    return campaign_id, vouchers


def start_server(port: int, workers: int, threads: int, settings_dir: str,
                 **extra_env: str) -> subprocess.Popen:
    env = {
        **os.environ, **extra_env,
        "PYTHONPATH": os.pathsep.join([settings_dir, str(ROOT), str(ROOT / "bench")]),
        "DJANGO_SETTINGS_MODULE": "bench_server_settings", "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0", "LOG_LEVEL": "WARNING",
        **{name: getattr(settings, name) for name in (
            "SECRET_KEY", "PHONE_HASH_KEY", "CUSTOMER_JWT_KEY", "VOUCHER_CODE_KEY")},
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "config.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class", "gthread",
         "--threads", str(threads), "--log-level", "warning"],
        cwd=ROOT, env=env)
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("gunicorn did not start")


def _client_process(port: int, token: str, bodies: list[tuple[str, dict]], threads: int,
                    start_at: float, seconds: float, out) -> None:
    """``threads`` keep-alive clients; each sends bodies (path, json) from its own slice."""
    results: list[tuple[int, int, str | None]] = []
    lock = threading.Lock()

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        done: list[tuple[int, int, str | None]] = []
        i = offset
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < start_at + seconds:
            path, body = bodies[i % len(bodies)]
            i += threads
            conn.request("POST", path, json.dumps(body), {
                "Authorization": f"Bearer {token}", "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex})
            response = conn.getresponse()
            answer = json.loads(response.read())
            done.append((response.status, answer.get("amount_krw", 0), answer.get("code")))
        with lock:
            results.extend(done)

    pool = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put(results)


def run_phase(port: int, token: str, bodies: list[tuple[str, dict]], *, clients: int,
              processes: int, seconds: float) -> dict:
    """``clients`` concurrent clients in ``processes`` processes, for ``seconds``."""
    per_process = clients // processes
    queue: multiprocessing.Queue = multiprocessing.Queue()
    start_at = time.time() + 1.0
    procs = [
        multiprocessing.Process(target=_client_process, args=(
            port, token, bodies[p::processes] or bodies, per_process, start_at, seconds, queue))
        for p in range(processes)
    ]
    for p in procs:
        p.start()
    results = [r for _ in procs for r in queue.get()]
    for p in procs:
        p.join()
    statuses = Counter((status, code) for status, _, code in results)
    return {"rps": len(results) / seconds, "requests": len(results), "statuses": statuses,
            "won_201": sum(amount for status, amount, _ in results if status == 201)}


def _combined(rounds: list[dict]) -> dict:
    """One phase's rounds as one measurement."""
    requests = sum(r["requests"] for r in rounds)
    return {"rps": requests / sum(r["requests"] / r["rps"] for r in rounds),
            "requests": requests, "statuses": sum((r["statuses"] for r in rounds), Counter()),
            "won_201": sum(r["won_201"] for r in rounds)}


def cpu_per_request(token: str, phases: dict[str, list[tuple[str, dict]]], *, rounds: int,
                    per_round: int) -> dict[str, tuple[float, float]]:
    """CPU milliseconds per request (this process, its PostgreSQL backend) of each phase's
    requests sent in-process through Django's test client as the server runs them (``DEBUG``
    off, request logs at WARNING), the phases interleaved in rounds: what a request costs
    whatever else the machine is doing."""
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]
    spent = {name: [0.0, 0.0] for name in phases}
    position = dict.fromkeys(phases, 0)
    logging.disable(logging.INFO)
    try:
        with override_settings(ROOT_URLCONF=_URLCONF, DEBUG=False):
            for _ in range(rounds):
                for name, bodies in phases.items():
                    python, backend = time.process_time(), cpu_seconds(backend_pid)
                    for _ in range(per_round):
                        path, body = bodies[position[name] % len(bodies)]
                        position[name] += 1
                        response = client.post(path, json.dumps(body),
                                               content_type="application/json",
                                               HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)
                        assert response.status_code in (200, 201), response.content
                    spent[name][0] += time.process_time() - python
                    spent[name][1] += cpu_seconds(backend_pid) - backend
    finally:
        logging.disable(logging.NOTSET)
    n = rounds * per_round
    return {name: (1000 * python / n, 1000 * backend / n)
            for name, (python, backend) in spent.items()}


class Sealer(threading.Thread):
    """The audit trail's sealer as Celery beat runs it: ``seal_events`` every
    ``AUDIT_SEAL_INTERVAL_SECONDS``, here in a thread with a connection of its own, for as
    long as the HTTP phases run; ``stop`` seals what is left. Counts the events it sealed
    and its PostgreSQL backend's CPU."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.interval = float(os.environ.get("AUDIT_SEAL_INTERVAL_SECONDS", "2"))
        self.stopping = threading.Event()
        self.sealed = 0
        self.backend_seconds = 0.0

    def run(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend_pid = cursor.fetchone()[0]
        started = cpu_seconds(backend_pid)
        try:
            while not self.stopping.wait(self.interval):
                self.sealed += seal_events()
            self.sealed += seal_events()
        finally:
            self.backend_seconds = cpu_seconds(backend_pid) - started
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vouchers", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase, all rounds")
    parser.add_argument("--rounds", type=int, default=3,
                        help="the phases alternate in rounds, so that the machine's other "
                             "load weighs on all of them alike")
    parser.add_argument("--load", choices=("python", "wrk"), default="python",
                        help="load generator: Python clients, or wrk (apt-get install wrk)")
    parser.add_argument("--through-pgbouncer", action="store_true",
                        help="the spread phase also against a server whose connections go "
                             "through PgBouncer in transaction pooling mode")
    parser.add_argument("--cpu-rounds", type=int, default=20,
                        help="rounds of 20 in-process requests per phase for CPU per request")
    args = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "scripts/create_database.py"),
                    os.environ["DATABASE_URL"]], check=True)
    call_command("migrate", verbosity=0)
    create_commit_table()

    started = time.perf_counter()
    campaign_id, vouchers = issue_vouchers(args.vouchers)
    issue_seconds = time.perf_counter() - started
    _, token = create_principal(role="checkout", name=f"bench-checkout-{time.time_ns()}")
    spread = [("/api/v1/redemptions", {
        "voucher_id": public_voucher_id(v.pk), "customer_id": v.customer_id,
        "order_id": f"bench-{v.pk}", "amount_krw": 1_000, "order_total_krw": 1_000,
        "merchant_category": "eats", "capture": True}) for v in vouchers]
    target = vouchers[0]
    one = [("/api/v1/redemptions", {**spread[0][1], "amount_krw": 1, "order_total_krw": 1})]
    bare = [("/t/echo", {"amount_krw": 1_000})]
    commit = [("/t/commit", {"amount_krw": 1_000})]

    connection.close()  # the client processes are forked: they must not share it
    port = free_port()
    with (tempfile.TemporaryDirectory() as settings_dir,
          contextlib.ExitStack() as pooled_server):
        Path(settings_dir, "bench_server_settings.py").write_text(_SERVER_SETTINGS)
        server = start_server(port, args.workers, args.threads, settings_dir)
        pooled_port = None
        if args.through_pgbouncer:
            pooled_port = free_port()
            pooled = start_server(pooled_port, args.workers, args.threads, settings_dir,
                                  DATABASE_URL=pooled_server.enter_context(through_pgbouncer()))
            pooled_server.callback(pooled.wait, timeout=30)
            pooled_server.callback(pooled.terminate)
        sealer = Sealer()
        sealer.start()
        try:
            phase = {"clients": args.clients, "processes": args.processes,
                     "seconds": args.seconds / args.rounds}
            load = run_phase
            if args.load == "wrk":
                load = functools.partial(post_load, workdir=settings_dir)
            load(port, token, bare, **{**phase, "seconds": 3.0})  # warm-up
            # Skip the voucher of the one-voucher phase; each round spends its own share.
            shares = [spread[1:][r::args.rounds] for r in range(args.rounds)]
            rounds = [{"bare": load(port, token, bare, **phase),
                       "commit": load(port, token, commit, **phase),
                       "spread": load(port, token, shares[r], **phase),
                       **({"spread_pooled": load(pooled_port, token, shares[r], **phase)}
                          if pooled_port else {}),
                       "one": load(port, token, one, **phase)} for r in range(args.rounds)]
        finally:
            sealer.stop()
            server.terminate()
            server.wait(timeout=30)

    # Vouchers the HTTP phases did not reach (they take the first of each client's share).
    cpu = cpu_per_request(token, {"bare": bare, "commit": commit, "spread": spread[-1_000:]},
                          rounds=args.cpu_rounds, per_round=20)
    target.refresh_from_db()
    one_redeemed = -(LedgerPosting.objects.filter(voucher_id=target.pk, account="redeemed")
                     .aggregate(s=Sum("amount_krw"))["s"] or 0)
    one_rows = Redemption.objects.filter(voucher_id=target.pk).count()
    report = verify_ledger(campaign_id=campaign_id)
    seal_events()
    chain = verify_audit_chain()
    results = {name: _combined([r[name] for r in rounds]) for name in rounds[0]}
    bare_rps, commit_rps = results["bare"]["rps"], results["commit"]["rps"]
    print(f"vouchers: {args.vouchers:,} issued in {issue_seconds:.1f} s; {args.clients} "
          f"clients ({args.load}, {args.processes} processes or threads); gunicorn "
          f"{args.workers} workers x "
          f"{args.threads} threads; {args.seconds:.0f} s per phase in {args.rounds} rounds")
    for r, measured in enumerate(rounds, 1):
        print(f"round {r}: " + ", ".join(f"{name} {m['rps']:,.0f} req/s"
                                         for name, m in measured.items()))
    for name, label in (("bare", "bare DRF POST /t/echo"),
                        ("commit", "bare+commit DRF POST /t/commit"),
                        ("spread", "redemptions, each on another voucher"),
                        ("spread_pooled", "the same through PgBouncer (transaction pooling)"),
                        ("one", "redemptions, all clients on one voucher")):
        if name not in results:
            continue
        r = results[name]
        print(f"{label}: {r['rps']:,.0f} req/s ({r['rps'] / bare_rps:.0%} of bare, "
              f"{r['rps'] / commit_rps:.0%} of bare+commit), {r['requests']:,} requests, "
              f"answers {dict(r['statuses'])}")
    print("CPU per request in-process (Python + PostgreSQL backend, ms): " + ", ".join(
        f"{name} {python:.2f} + {backend:.2f}" for name, (python, backend) in cpu.items()))
    drop = 50_000 - target.balance_krw
    # wrk stops at the deadline without reading the answers still in flight (at most one
    # per connection and round), which the server commits all the same.
    unread = one_rows - results["one"]["won_201"]
    consistent = (drop == one_redeemed == one_rows
                  and 0 <= unread <= (args.clients * args.rounds if args.load == "wrk" else 0))
    print(f"one voucher: 201 answers report {results['one']['won_201']:,} won, balance "
          f"dropped {drop:,} won, {one_rows:,} redemption rows, ledger redeemed "
          f"{one_redeemed:,} won ({unread} answers in flight at the end): "
          f"{'no lost update' if consistent else 'MISMATCH'}")
    print(f"verify_ledger on the bench campaign: {'ok' if report.ok else 'FAILED'}")
    print(f"sealer, every {sealer.interval:g} s during the HTTP phases: {sealer.sealed:,} events "
          f"sealed, {1000 * sealer.backend_seconds / max(sealer.sealed, 1):.3f} ms PostgreSQL "
          f"CPU per event; verify_audit_chain: "
          f"{'ok' if chain.ok else f'FAILED at event {chain.first_break.event_id}'} "
          f"({chain.events_checked:,} events)")
    spread_rps = results["spread"]["rps"]
    print(f"checkout: {100 * spread_rps / bare_rps:.0f}% of bare, "
          f"{100 * spread_rps / commit_rps:.0f}% of bare+commit, "
          f"{cpu['spread'][1]:.2f} ms PostgreSQL CPU per checkout")


if __name__ == "__main__":
    main()
