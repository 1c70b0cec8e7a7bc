"""Issuance throughput: a real run through a real Celery worker against a raw INSERT ... SELECT.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/vs_iss_bench \\
    REDIS_URL=redis://127.0.0.1:6379/6 CELERY_BROKER_URL=redis://127.0.0.1:6379/7 \\
    .venv/bin/python bench/bench_issuance.py --customers 1000000

Creates the database if needed and migrates it. Each measurement gets its own campaign
with the same registry (customer ids 1..N, every seventh account closed), so the worker's
run and the raw statement write the same rows into the same table with the same indexes.
Also times one 10,000-voucher chunk with and without the ledger postings (issue 3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, make_campaign
from django.core.management import call_command
from django.db import connection

from vouchers.issuance import services
from vouchers.issuance.chunk import issue_chunk
from vouchers.issuance.models import IssuanceRun

# The baseline: the voucher rows the chunk statement writes, nothing else.
_RAW = """
INSERT INTO vouchers_voucher (
    campaign_id, component_id, registry_customer_id, customer_id, category, amount_krw,
    balance_krw, single_use, min_order_krw, status, issued_at, expires_at, issuance_run_id
)
SELECT r.campaign_id, c.id, r.customer_id, r.customer_id, c.category, c.amount_krw,
       c.amount_krw, c.single_use, c.min_order_krw,
       CASE WHEN r.account_status = 'closed' THEN 'unclaimed' ELSE 'active' END,
       now(), c.expires_at, NULL
FROM vouchers_registryentry r JOIN vouchers_component c ON c.campaign_id = r.campaign_id
WHERE r.campaign_id = %(campaign_id)s
"""


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def raw_insert(campaign_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_RAW, {"campaign_id": campaign_id})


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().split(") ")[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def peak_rss_mib(pid: int) -> float:
    """Largest VmHWM (peak resident set) of the worker and its pool processes."""
    peaks = []
    for p in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        kib = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmHWM"))
        peaks.append(kib / 1024)
    return max(peaks)


def worker_run(n: int, *, concurrency: int, in_flight: int) -> dict:
    campaign_id = make_campaign(f"bench-run-{time.time_ns()}", n)
    env = {**os.environ, "ISSUANCE_MAX_IN_FLIGHT": str(in_flight)}
    worker = subprocess.Popen(
        [str(ROOT / ".venv/bin/celery"), "-A", "config", "worker", "-P", "prefork",
         "-c", str(concurrency), "--loglevel=WARNING", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(4)  # worker start-up, not part of the run
        from vouchers.models import Campaign

        campaign = Campaign.objects.get(pk=campaign_id)
        started = time.perf_counter()
        run = services.create_run(campaign=campaign, actor="bench-a", dry_run_only=False)
        planned = time.perf_counter() - started
        services.approve_run(run_id=run.pk, actor="bench-b")
        peak = 0.0
        while True:
            status = IssuanceRun.objects.values_list("status", flat=True).get(pk=run.pk)
            peak = max(peak, peak_rss_mib(worker.pid))
            if status in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        assert status == "completed", status
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return {"seconds": elapsed, "plan_seconds": planned, "chunks": run.chunk_count,
            "peak_rss_mib": peak}


def ledger_cost(repeats: int, *, all_closed: bool) -> tuple[float, float]:
    """Median seconds for 10,000 vouchers: the chunk statement, and vouchers only."""
    with_ledger, without = [], []
    closed_every = 1 if all_closed else 7
    for i in range(repeats):
        a = make_campaign(f"bench-chunk-{time.time_ns()}-{i}", 10_000, closed_every=closed_every)
        b = make_campaign(f"bench-rawchunk-{time.time_ns()}-{i}", 10_000,
                          closed_every=closed_every)
        with_ledger.append(timed(lambda a=a: issue_chunk(campaign_id=a, lo=1, hi=10_001,
                                                         run_id=None, chunk_id=None)))
        without.append(timed(lambda b=b: raw_insert(b)))
    return statistics.median(with_ledger), statistics.median(without)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--chunk-repeats", type=int, default=5)
    args = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "scripts/create_database.py"),
                    os.environ["DATABASE_URL"]], check=True)
    call_command("migrate", verbosity=0)

    n = args.customers
    run = worker_run(n, concurrency=args.concurrency, in_flight=args.in_flight)
    raw_campaign = make_campaign(f"bench-raw-{time.time_ns()}", n)
    raw_seconds = timed(lambda: raw_insert(raw_campaign))
    print(f"customers/vouchers: {n:,} (one 50,000 won voucher each, 1/7 closed)")
    print(f"worker run: {run['seconds']:.1f} s = {n / run['seconds']:,.0f} vouchers/s "
          f"({run['chunks']} chunks, concurrency {args.concurrency}, "
          f"in flight {args.in_flight}; planning {run['plan_seconds']:.2f} s)")
    print(f"raw INSERT ... SELECT: {raw_seconds:.1f} s = {n / raw_seconds:,.0f} vouchers/s")
    print(f"worker / raw: {raw_seconds / run['seconds']:.0%}")
    print(f"worker peak RSS (largest process): {run['peak_rss_mib']:.0f} MiB")
    for all_closed, label in ((True, "all closed: no outbox rows"),
                              (False, "1/7 closed: outbox rows too")):
        full, bare = ledger_cost(args.chunk_repeats, all_closed=all_closed)
        print(f"10,000-voucher chunk ({label}): chunk statement {full * 1000:.0f} ms, "
              f"vouchers only {bare * 1000:.0f} ms, ledger+outbox cost {full / bare - 1:+.0%}")


if __name__ == "__main__":
    main()
