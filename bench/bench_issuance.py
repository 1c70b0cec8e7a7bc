"""Issuance throughput: real runs through a real Celery worker against a raw INSERT ... SELECT.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/vs_iss_bench \\
    REDIS_URL=redis://127.0.0.1:6379/6 CELERY_BROKER_URL=redis://127.0.0.1:6379/7 \\
    .venv/bin/python bench/bench_issuance.py --customers 1000000 \\
        --config 1:2:10000 --config 2:4:10000

Creates the database if needed and migrates it. Each measurement gets its own campaign
with the same registry (customer ids 1..N, every seventh account closed), so the worker's
runs and the raw statement write the same rows into the same table with the same indexes.
``--config CONCURRENCY:IN_FLIGHT:CHUNK_SIZE`` (repeatable) is one worker run each; during
a run, PostgreSQL's client backends are sampled every 50 ms (``pg_stat_activity``: what
they wait on, or ``CPU`` when active and waiting on nothing), and the WAL and checkpoint
counters are read before and after. Also times one 10,000-voucher chunk statement against
the bare voucher INSERT ... SELECT of the same rows.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import threading
import time

import psycopg
from common import ROOT, make_campaign
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from workers import celery_worker, wait_for_run

from vouchers.issuance import services
from vouchers.issuance.chunk import issue_chunk

# The baseline: the voucher rows the chunk statement writes, nothing else; ``{table}``:
# vouchers_voucher, or a table of the same shape (the rehearsal's).
_RAW = """
INSERT INTO {table} (
    campaign_id, component_id, registry_customer_id, customer_id, category, amount_krw,
    balance_krw, single_use, min_order_krw, status, issued_at, expires_at, issuance_run_id
)
SELECT r.campaign_id, c.id, r.customer_id, r.customer_id, c.category, c.amount_krw,
       c.amount_krw, c.single_use, c.min_order_krw,
       CASE WHEN r.account_status = 'closed' THEN 'unclaimed' ELSE 'active' END,
       now(), c.expires_at, NULL
FROM vouchers_registryentry r JOIN vouchers_component c ON c.campaign_id = r.campaign_id
WHERE r.campaign_id = %(campaign_id)s AND r.customer_id >= %(lo)s AND r.customer_id < %(hi)s
"""

_WAITS = """
SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU')
       || CASE WHEN wait_event_type = 'Lock' THEN ' in ' || left(query, 40) ELSE '' END
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
  AND state = 'active' AND pid <> pg_backend_pid() AND query NOT LIKE '%%pg_stat_activity%%'
"""

_COUNTERS = """
SELECT w.wal_records, w.wal_fpi, w.wal_bytes, w.wal_write, w.wal_sync,
       b.checkpoints_timed + b.checkpoints_req, b.buffers_checkpoint, b.buffers_backend
FROM pg_stat_wal w, pg_stat_bgwriter b
"""
# Time inside the chunk transactions (claimed to done) against the run's wall time.
_CHUNK_TIMES = """
SELECT sum(seconds), avg(seconds) FROM (
    SELECT extract(epoch FROM finished_at - started_at) AS seconds
    FROM issuance_issuancechunk WHERE run_id = %s
) chunks
"""
_COUNTER_NAMES = ("wal_records", "wal_fpi", "wal_bytes", "wal_write", "wal_sync",
                  "checkpoints", "buffers_checkpoint", "buffers_backend")


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def raw_insert(campaign_id: int, n: int, *, table: str = "vouchers_voucher") -> None:
    """The vouchers of the campaign's registry customers with ids 1..n, in one statement."""
    with connection.cursor() as cursor:
        cursor.execute(_RAW.format(table=table), {"campaign_id": campaign_id, "lo": 1,
                                                  "hi": n + 1})


class Sampler(threading.Thread):
    """Samples what the database's client backends do, on a connection of its own."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: collections.Counter[str] = collections.Counter()
        self.ticks = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            while not self.stop.wait(0.05):
                self.samples.update(row[0] for row in conn.execute(_WAITS))
                self.ticks += 1

    def profile(self) -> str:
        """Average number of backends in each state, busiest first."""
        return ", ".join(f"{name} {count / self.ticks:.2f}"
                         for name, count in self.samples.most_common(6))


def counters() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(_COUNTERS)
        return dict(zip(_COUNTER_NAMES, cursor.fetchone(), strict=True))


def worker_run(n: int, *, concurrency: int, in_flight: int, chunk_size: int) -> dict:
    campaign_id = make_campaign(f"bench-run-{time.time_ns()}", n)
    env = {"ISSUANCE_MAX_IN_FLIGHT": str(in_flight)}
    settings.ISSUANCE_CHUNK_SIZE = chunk_size  # read by create_run, in this process
    sampler = Sampler()
    with celery_worker(concurrency=concurrency, env=env,
                       log_path=ROOT / "var" / "bench-issuance-worker.log") as worker:
        from vouchers.models import Campaign

        campaign = Campaign.objects.get(pk=campaign_id)
        before = counters()
        sampler.start()
        started = time.perf_counter()
        run = services.create_run(campaign=campaign, actor="bench-a", dry_run_only=False)
        planned = time.perf_counter() - started
        services.approve_run(run_id=run.pk, actor="bench-b")
        status, peak = wait_for_run(run.pk, worker_pid=worker.pid)
        elapsed = time.perf_counter() - started
        sampler.stop.set()
        sampler.join()
        after = counters()
        assert status == "completed", status
        with connection.cursor() as cursor:
            cursor.execute(_CHUNK_TIMES, [run.pk])
            in_chunks, per_chunk = cursor.fetchone()
    return {"seconds": elapsed, "plan_seconds": planned, "chunks": run.chunk_count,
            "peak_rss_mib": peak, "waits": sampler.profile(),
            "busy": float(in_chunks) / (elapsed * concurrency), "per_chunk": float(per_chunk),
            "counters": {k: after[k] - before[k] for k in _COUNTER_NAMES}}


def chunk_cost(repeats: int, *, all_closed: bool) -> tuple[float, float]:
    """Median seconds for 10,000 vouchers: the chunk statement, and vouchers only."""
    with_ledger, without = [], []
    closed_every = 1 if all_closed else 7
    for i in range(repeats):
        a = make_campaign(f"bench-chunk-{time.time_ns()}-{i}", 10_000, closed_every=closed_every)
        b = make_campaign(f"bench-rawchunk-{time.time_ns()}-{i}", 10_000,
                          closed_every=closed_every)
        with_ledger.append(timed(lambda a=a: issue_chunk(campaign_id=a, lo=1, hi=10_001,
                                                         run_id=None, chunk_id=None)))
        without.append(timed(lambda b=b: raw_insert(b, 10_000)))
    return statistics.median(with_ledger), statistics.median(without)


def _config(text: str) -> tuple[int, int, int]:
    concurrency, in_flight, chunk_size = (int(part) for part in text.split(":"))
    return concurrency, in_flight, chunk_size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--config", type=_config, action="append",
                        help="CONCURRENCY:IN_FLIGHT:CHUNK_SIZE (default 2:4:<setting>)")
    parser.add_argument("--chunk-repeats", type=int, default=5)
    args = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "scripts/create_database.py"),
                    os.environ["DATABASE_URL"]], check=True)
    call_command("migrate", verbosity=0)

    n = args.customers
    configs = args.config or [(2, 4, settings.ISSUANCE_CHUNK_SIZE)]
    runs = [(c, worker_run(n, concurrency=c[0], in_flight=c[1], chunk_size=c[2]))
            for c in configs]
    raw_campaign = make_campaign(f"bench-raw-{time.time_ns()}", n)
    before = counters()
    raw_seconds = timed(lambda: raw_insert(raw_campaign, n))
    raw_counters = {k: v - before[k] for k, v in counters().items()}
    print(f"customers/vouchers: {n:,} (one 50,000 won voucher each, 1/7 closed)")
    print(f"raw INSERT ... SELECT: {raw_seconds:.1f} s = {n / raw_seconds:,.0f} vouchers/s; "
          f"{raw_counters}")
    for (concurrency, in_flight, chunk_size), run in runs:
        print(f"worker run -c {concurrency}, {in_flight} in flight, chunk {chunk_size:,}: "
              f"{run['seconds']:.1f} s = {n / run['seconds']:,.0f} vouchers/s = "
              f"{raw_seconds / run['seconds']:.0%} of raw ({run['chunks']} chunks, planning "
              f"{run['plan_seconds']:.2f} s, peak RSS {run['peak_rss_mib']:.0f} MiB)")
        print(f"    in chunk transactions: {run['busy']:.0%} of the worker processes' time "
              f"(mean chunk {run['per_chunk'] * 1000:.0f} ms); backends: {run['waits']}")
        print(f"    {run['counters']}")
    if args.chunk_repeats:
        for all_closed, label in ((True, "all closed: no notice"),
                                  (False, "1/7 closed: one notice")):
            full, bare = chunk_cost(args.chunk_repeats, all_closed=all_closed)
            print(f"10,000-voucher chunk ({label}): chunk statement {full * 1000:.0f} ms, "
                  f"vouchers only {bare * 1000:.0f} ms, extra {full / bare - 1:+.0%}")


if __name__ == "__main__":
    main()
