"""Finance's CSV export in rows per second, beside ``COPY ... TO STDOUT`` of the same rows.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/vs_fin_bench \\
    .venv/bin/python bench/bench_finance_export.py --redemptions 1000000

Creates and migrates the database, a campaign of 1,000 vouchers and N redemptions spread
over them, then streams the whole export through the real Django stack in-process (no
network) and times a ``COPY (SELECT the same columns) TO STDOUT WITH CSV HEADER`` of the
same rows on the same connection.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

from common import ROOT, make_campaign
from django.core.management import call_command
from django.db import connection
from django.test import Client

from accounts.services import create_principal
from tests.finance.test_redemption_reports import SEED_REDEMPTIONS_SQL, T0
from vouchers.issuance.chunk import issue_chunk

_COPY = """
COPY (
    SELECT r.id, c.slug, r.voucher_id, r.customer_id, r.order_id, r.merchant_category,
           r.status, r.amount_krw, r.forfeited_krw, r.refunded_krw, r.order_total_krw,
           to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
           to_char(r.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
    FROM redemption_redemption r JOIN vouchers_campaign c ON c.id = r.campaign_id
    WHERE r.campaign_id = {campaign_id} ORDER BY r.created_at, r.id
) TO STDOUT WITH CSV HEADER
"""


def export_through_api(token: str, slug: str) -> dict:
    """Streams the campaign's whole export through the real Django stack in-process (no
    network): seconds, bytes, lines (header included), the process's peak RSS after."""
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    started = time.perf_counter()
    response = client.get("/api/v1/finance/redemptions/export", {"campaign": slug})
    assert response.status_code == 200, response.status_code
    export_bytes = export_lines = 0
    for chunk in response.streaming_content:
        export_bytes += len(chunk)
        export_lines += chunk.count(b"\n")
    return {"seconds": time.perf_counter() - started, "bytes": export_bytes,
            "lines": export_lines,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def copy_same_rows(campaign_id: int) -> dict:
    """``COPY (the export's columns, same order) TO STDOUT WITH CSV HEADER`` on the same
    connection: seconds and bytes."""
    started = time.perf_counter()
    copy_bytes = 0
    with connection.cursor() as cursor, cursor.cursor.copy(
            _COPY.format(campaign_id=int(campaign_id))) as copy:
        for block in copy:
            copy_bytes += len(block)
    return {"seconds": time.perf_counter() - started, "bytes": copy_bytes}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redemptions", type=int, default=1_000_000)
    args = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "scripts/create_database.py"),
                    os.environ["DATABASE_URL"]], check=True)
    call_command("migrate", verbosity=0)

    n = args.redemptions
    slug = f"export-bench-{time.time_ns()}"
    campaign_id = make_campaign(slug, 1000)
    issue_chunk(campaign_id=campaign_id, lo=1, hi=1001, run_id=None, chunk_id=None)
    with connection.cursor() as cursor:
        cursor.execute(SEED_REDEMPTIONS_SQL, {"t0": T0, "campaign": campaign_id, "count": n,
                                              "first": 1})
        cursor.execute("VACUUM ANALYZE redemption_redemption")
    _, token = create_principal(role="finance", name=f"bench-{slug}")
    export = export_through_api(token, slug)
    copy = copy_same_rows(campaign_id)
    export_seconds, export_bytes, export_lines = (export["seconds"], export["bytes"],
                                                  export["lines"])
    peak_mib = export["peak_rss_mib"]
    copy_seconds, copy_bytes = copy["seconds"], copy["bytes"]

    assert export_lines - 1 == n, export_lines
    print(f"export API: {n:,} rows in {export_seconds:.1f} s = {n / export_seconds:,.0f} rows/s "
          f"({export_bytes / 2**20:.0f} MiB, process peak RSS {peak_mib:.0f} MiB)")
    print(f"COPY TO STDOUT of the same rows: {copy_seconds:.1f} s = "
          f"{n / copy_seconds:,.0f} rows/s ({copy_bytes / 2**20:.0f} MiB)")
    print(f"export / COPY: {copy_seconds / export_seconds:.0%}")


if __name__ == "__main__":
    main()
