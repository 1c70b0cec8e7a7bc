"""Two INSERT ... SELECT statements into one voucher-shaped table at once, by expiry index.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/vs_contention_bench \\
    .venv/bin/python bench/bench_insert_contention.py --customers 100000 --rounds 3

An issuance run's chunks insert into the voucher table two at a time (worker ``-c 2``).
This measures what the table's shape costs them, apart from everything else a chunk does.
Creates the database if needed and migrates it, builds a source of ``--customers`` x 4
voucher rows, then, for each variant of the live vouchers' expiry index, makes a fresh
table shaped like ``vouchers_voucher`` (its columns, checks, other indexes and identity)
into which two connections insert one half of the source each at the same time (disjoint
customer ranges, as two chunks do), then one connection the first half alone. While the
two run, their wait events are sampled every 10 ms (``pg_stat_activity``; ``CPU`` when
active and waiting on nothing). Variants, in alternating rounds (medians printed):

* ``btree``: the B-tree ``(expires_at)`` of migration 0001 (every key equal);
* ``brin``: the block-range index of migration 0011, what the table has now;
* ``none``: no expiry index at all, the floor;
* ``cache``: ``brin``, with the id sequence handing each session 10,000 ids at a time
  (``CACHE``), so the two statements' rows no longer share the primary key's rightmost
  leaf: a design not adopted (the issued notices order vouchers by id).

Each variant's line compares the two at once with one alone: ``x2 / x1`` is how many
times one statement's rate two statements reach together (2.0: no contention at all).
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
from django.core.management import call_command
from django.db import connection

LIVE = "WHERE status IN ('active', 'unclaimed')"
VARIANTS = {
    "btree": f"CREATE INDEX ON bench_contention (expires_at) {LIVE}",
    "brin": "CREATE INDEX ON bench_contention USING brin (expires_at) "
            f"WITH (autosummarize = on) {LIVE}",
    "none": None,
    "cache": "CREATE INDEX ON bench_contention USING brin (expires_at) "
             f"WITH (autosummarize = on) {LIVE}; "
             "ALTER TABLE bench_contention ALTER COLUMN id SET CACHE 10000",
}
COLUMNS = ("campaign_id, component_id, registry_customer_id, customer_id, category, "
           "amount_krw, balance_krw, single_use, min_order_krw, status, issued_at, expires_at")
_SOURCE = """
CREATE UNLOGGED TABLE bench_contention_source AS
SELECT r.campaign_id, c.id AS component_id, r.customer_id AS registry_customer_id,
       r.customer_id, c.category, c.amount_krw, c.amount_krw AS balance_krw, c.single_use,
       c.min_order_krw, 'active'::varchar AS status, now() AS issued_at, c.expires_at
FROM vouchers_registryentry r JOIN vouchers_component c ON c.campaign_id = r.campaign_id
WHERE r.campaign_id = %s
"""
_INSERT = (f"INSERT INTO bench_contention ({COLUMNS}) SELECT {COLUMNS} "
           "FROM bench_contention_source WHERE registry_customer_id >= %s "
           "AND registry_customer_id < %s")
_WAITS = """
SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
WHERE state = 'active' AND query LIKE 'INSERT INTO bench_contention%%'
"""


def fresh_table(index: str | None) -> None:
    """``bench_contention`` shaped like the voucher table, with ``index`` as its only
    expiry index."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_contention")
        cursor.execute("CREATE TABLE bench_contention (LIKE vouchers_voucher INCLUDING ALL)")
        cursor.execute("SELECT indexrelid::regclass::text FROM pg_index "
                       "WHERE indrelid = 'bench_contention'::regclass "
                       "AND pg_get_indexdef(indexrelid) LIKE '%%expires_at%%'")
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP INDEX {name}")
        if index:
            cursor.execute(index)


def insert(url: str, lo: int, hi: int, seconds: list[float]) -> None:
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        conn.execute(_INSERT, (lo, hi))
        conn.commit()
        seconds.append(time.perf_counter() - started)


def together(url: str, halves: list[tuple[int, int]]) -> tuple[float, collections.Counter]:
    """Both halves at once; the wall time and the sampled wait events."""
    waits: collections.Counter[str] = collections.Counter()
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not done.wait(0.01):
                waits.update(row[0] for row in conn.execute(_WAITS))

    sampler = threading.Thread(target=sample)
    sampler.start()
    seconds: list[float] = []
    threads = [threading.Thread(target=insert, args=(url, lo, hi, seconds))
               for lo, hi in halves]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    return wall, waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = os.environ["DATABASE_URL"]
    subprocess.run([sys.executable, str(ROOT / "scripts/create_database.py"), url], check=True)
    call_command("migrate", verbosity=0)
    campaign_id = make_campaign(f"bench-contention-{time.time_ns()}", args.customers,
                                closed_every=0, components=(
                                    ("all", 5_000, False), ("eats", 5_000, False),
                                    ("travel", 20_000, False), ("luxury", 20_000, False)))
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_contention_source")
        cursor.execute(_SOURCE, [campaign_id])
        cursor.execute("SELECT count(*) FROM bench_contention_source")
        rows = cursor.fetchone()[0]
    half = args.customers // 2 + 1
    halves = [(1, half), (half, args.customers + 1)]
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    alone: dict[str, list[float]] = {name: [] for name in VARIANTS}
    waits = {name: collections.Counter() for name in VARIANTS}
    for _ in range(args.rounds):
        for name, index in VARIANTS.items():
            fresh_table(index)
            wall, seen = together(url, halves)
            walls[name].append(wall)
            waits[name].update(seen)
            fresh_table(index)
            seconds: list[float] = []
            insert(url, *halves[0], seconds)
            alone[name].append(seconds[0])
    print(f"{rows:,} voucher rows, two halves at once and the first half alone; "
          f"median of {args.rounds} rounds")
    for name in VARIANTS:
        x2 = rows / statistics.median(walls[name])
        x1 = (rows / 2) / statistics.median(alone[name])
        total = sum(waits[name].values()) or 1
        profile = ", ".join(f"{event} {count / total:.0%}"
                            for event, count in waits[name].most_common(3))
        print(f"  {name:5}: two at once {x2:,.0f} rows/s, one alone {x1:,.0f} rows/s, "
              f"x2 / x1 {x2 / x1:.2f}; waits: {profile}")
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_contention, bench_contention_source")


if __name__ == "__main__":
    main()
