"""Registry import throughput: ``import_registry`` against a raw COPY of the same file.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/vs_import_bench \\
    REDIS_URL=redis://127.0.0.1:6379/6 CELERY_BROKER_URL=redis://127.0.0.1:6379/7 \\
    .venv/bin/python bench/bench_import.py --rows 1000000

(``--rows`` defaults to ``BENCH_IMPORT_ROWS`` or 1,000,000.) Creates the database if
needed and migrates it, writes a CSV of that many customers (ids 1..N; every seventh
account closed with a closing time, every eleventh other one dormant; every phone in one
of six common formats), then, in one process:

1. a raw ``COPY ... FROM STDIN (FORMAT csv)`` of the file into a plain four-text-column
   table: the floor for getting those bytes into PostgreSQL at all; then a raw
   ``INSERT ... SELECT`` of those rows into the registry (cast, unchecked, unhashed): the
   floor for writing them to that table with its indexes and campaign check;
2. the import into a new campaign whose eligibility has not opened (the main load happens
   before opening day: no cached answers to fence), split into reading (the COPY into
   staging) and the rest, from the progress callbacks;
3. the same import again (every row compares equal: nothing written);
4. late additions once eligibility is open: a second file of N/10 new customers, each
   also fenced in the eligibility cache (Redis) after its batch commits.

Peak RSS is the process's high-water mark (``VmHWM``) during each import, reset before it
through ``/proc/self/clear_refs``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from vouchers.campaigns.services import create_campaign
from vouchers.eligibility.importing import CHUNK_BYTES, import_registry
from vouchers.models import Campaign

HEADER = "customer_id,account_status,account_closed_at,phone\n"
PHONE_FORMATS = ("010-{}-{}", "010{}{}", "+82 10 {} {}", "+82-10-{}-{}", "(010) {}-{}",
                 "010.{}.{}")


def write_csv(path: Path, first: int, rows: int) -> None:
    with path.open("w") as out:
        out.write(HEADER)
        for cid in range(first, first + rows):
            status = "closed" if cid % 7 == 0 else "dormant" if cid % 11 == 0 else "active"
            closed_at = "2025-12-01T10:00:00+09:00" if status == "closed" else ""
            middle, last = f"{cid // 10_000 % 10_000:04d}", f"{cid % 10_000:04d}"
            phone = PHONE_FORMATS[cid % len(PHONE_FORMATS)].format(middle, last)
            out.write(f"{cid},{status},{closed_at},{phone}\n")


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmHWM")) / 1024


def raw_copy(path: Path) -> float:
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_raw_copy")
        cursor.execute("CREATE TABLE bench_raw_copy (customer_id text, account_status text, "
                       "account_closed_at text, phone text)")
        started = time.perf_counter()
        with path.open("rb") as source, cursor.copy(
                "COPY bench_raw_copy FROM STDIN (FORMAT csv, HEADER true)") as copy:
            while chunk := source.read(CHUNK_BYTES):
                copy.write(chunk)
        return time.perf_counter() - started


# The copied rows cast and inserted as they are (no checks, no hashing, no ON CONFLICT),
# into the registry or a table of its shape (``{table}``).
RAW_REGISTRY_INSERT = """
INSERT INTO {table} (campaign_id, customer_id, account_status, account_closed_at,
                     phone_hash, imported_at)
SELECT %s, customer_id::bigint, account_status, nullif(account_closed_at, '')::timestamptz,
       NULL, now()
FROM bench_raw_copy
"""


def raw_registry_insert(*, table: str = "vouchers_registryentry",
                        campaign_id: int | None = None) -> float:
    """The copied rows cast and inserted into the registry as they are (no checks, no
    hashing, no ON CONFLICT): what writing them to that table, its indexes and its campaign
    check costs at least. Into a new campaign unless ``campaign_id`` is given; drops the
    copied rows' table after."""
    if campaign_id is None:
        campaign_id = create_campaign(slug=f"bench-raw-{time.time_ns()}", name="bench raw",
                                      eligibility_opens_at=timezone.now(), actor="bench").pk
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(RAW_REGISTRY_INSERT.format(table=table), [campaign_id])
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_raw_copy")
    return elapsed


def timed_import(campaign, path: Path) -> dict:
    marks: dict[str, float] = {}

    def progress(stage: str, done: int, total: int | None) -> None:
        marks[stage] = time.perf_counter()

    reset_peak_rss()
    started = time.perf_counter()
    with path.open("rb") as source:
        result = import_registry(campaign=campaign, source=source, actor="bench",
                                 progress=progress)
    finished = time.perf_counter()
    return {"seconds": finished - started, "read": marks["read"] - started,
            "rest": finished - marks["read"], "peak_rss_mib": peak_rss_mib(),
            "inserted": result.inserted, "unchanged": result.unchanged}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int,
                        default=int(os.environ.get("BENCH_IMPORT_ROWS", "1000000")))
    args = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "scripts/create_database.py"),
                    os.environ["DATABASE_URL"]], check=True)
    call_command("migrate", verbosity=0)
    n = args.rows
    with tempfile.TemporaryDirectory() as tmp:
        path, late_path = Path(tmp) / "registry.csv", Path(tmp) / "late.csv"
        write_csv(path, 1, n)
        write_csv(late_path, n + 1, n // 10)
        size_mib = path.stat().st_size / 2**20
        raw_seconds = raw_copy(path)
        insert_seconds = raw_registry_insert()
        campaign = create_campaign(slug=f"bench-import-{time.time_ns()}", name="bench",
                                   eligibility_opens_at=timezone.now() + dt.timedelta(days=1),
                                   actor="bench")
        first = timed_import(campaign, path)
        again = timed_import(campaign, path)
        Campaign.objects.filter(pk=campaign.pk).update(eligibility_opens_at=timezone.now())
        campaign.refresh_from_db()
        late = timed_import(campaign, late_path)
    assert first["inserted"] == n and again["unchanged"] == n, (first, again)
    assert late["inserted"] == n // 10, late
    print(f"rows: {n:,} ({size_mib:.0f} MiB of CSV; 1/7 closed, every phone normalised "
          "and hashed)")
    print(f"raw COPY into a plain text table: {raw_seconds:.1f} s = "
          f"{n / raw_seconds:,.0f} rows/s")
    print(f"raw INSERT ... SELECT of those rows into the registry: {insert_seconds:.1f} s = "
          f"{n / insert_seconds:,.0f} rows/s")
    for label, run, rows in (("import", first, n), ("re-import, nothing changes", again, n),
                             ("late additions after opening, fenced", late, n // 10)):
        print(f"{label}: {rows:,} rows in {run['seconds']:.1f} s = "
              f"{rows / run['seconds']:,.0f} rows/s (COPY into staging {run['read']:.1f} s, "
              f"validate + hash + upsert {run['rest']:.1f} s); "
              f"peak RSS {run['peak_rss_mib']:.0f} MiB")
    print(f"import / raw COPY: {raw_seconds / first['seconds']:.0%}; import / raw COPY + raw "
          f"INSERT: {(raw_seconds + insert_seconds) / first['seconds']:.0%}")


if __name__ == "__main__":
    main()
