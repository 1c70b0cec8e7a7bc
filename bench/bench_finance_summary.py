"""The finance summary for a campaign of 10,000,000 vouchers, beside a scan of its vouchers.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/vs_fin_bench \\
    .venv/bin/python bench/bench_finance_summary.py --vouchers 10000000

Creates and migrates the database, then a campaign whose vouchers are issued through the
real chunk statement (``issue_chunk``, ledger summary postings included) and whose
vouchers get a spread of per-voucher postings (spending on 1 %). Times the summary API
call in-process (median of many calls) against the baseline a naive implementation would
run: one ``GROUP BY`` over the campaign's vouchers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from common import ROOT, make_campaign
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from accounts.services import create_principal
from vouchers.issuance.chunk import issue_chunk

CHUNK = 100_000

# One balanced ledger transaction spending part of 1 % of the vouchers (a checkout day).
_SPEND = """
WITH spent AS (
    SELECT id, category, 12000 AS amount FROM vouchers_voucher
    WHERE campaign_id = %(campaign_id)s AND status = 'active' AND id %% 100 = 0
), tx AS (
    INSERT INTO vouchers_ledgertransaction (campaign_id, reason, created_at)
    VALUES (%(campaign_id)s, 'capture', now()) RETURNING id
)
INSERT INTO vouchers_ledgerposting
    (transaction_id, campaign_id, category, account, voucher_id, amount_krw, voucher_count)
SELECT tx.id, %(campaign_id)s, s.category, a.account, s.id, a.sign * s.amount, 0
FROM tx, spent s, (VALUES ('liability', 1), ('redeemed', -1)) AS a(account, sign)
"""
_SPEND_BALANCES = """
UPDATE vouchers_voucher SET balance_krw = balance_krw - 12000
WHERE campaign_id = %(campaign_id)s AND status = 'active' AND id %% 100 = 0
"""
_SCAN = """
SELECT category, status, count(*), sum(amount_krw), sum(balance_krw)
FROM vouchers_voucher WHERE campaign_id = %s GROUP BY category, status
"""


def build(n: int) -> tuple[str, int]:
    slug = f"fin-bench-{n}-{int(time.time())}"
    campaign_id = make_campaign(slug, n)
    started = time.perf_counter()
    for lo in range(1, n + 1, CHUNK):
        issue_chunk(campaign_id=campaign_id, lo=lo, hi=lo + CHUNK, run_id=None, chunk_id=None)
        print(f"\r  issued {min(lo + CHUNK - 1, n):,} / {n:,}", end="", flush=True)
    print(f"\n  issuance took {time.perf_counter() - started:.0f} s")
    with connection.cursor() as cursor:
        cursor.execute(_SPEND, {"campaign_id": campaign_id})
        cursor.execute(_SPEND_BALANCES, {"campaign_id": campaign_id})
        cursor.execute("VACUUM ANALYZE vouchers_voucher")
    return slug, campaign_id


def time_calls(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vouchers", type=int, default=10_000_000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "scripts/create_database.py"),
                    os.environ["DATABASE_URL"]], check=True)
    call_command("migrate", verbosity=0)

    slug, campaign_id = build(args.vouchers)
    _, token = create_principal(role="finance", name=f"bench-{slug}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def summary() -> None:
        response = client.get("/api/v1/finance/summary", {"campaign": slug})
        assert response.status_code == 200, response.content

    def scan() -> None:
        with connection.cursor() as cursor:
            cursor.execute(_SCAN, [campaign_id])
            cursor.fetchall()

    summary()
    api = time_calls(summary, args.calls)
    scans = time_calls(scan, 3)
    body = client.get("/api/v1/finance/summary", {"campaign": slug}).json()
    print(f"summary API, {args.vouchers:,} vouchers: median {statistics.median(api):.2f} ms, "
          f"p99 {sorted(api)[int(len(api) * 0.99) - 1]:.2f} ms over {args.calls} calls")
    print(f"baseline GROUP BY over the vouchers: median {statistics.median(scans):.0f} ms")
    print(f"figures: issued {body['issued_krw']:,} won in {body['issued_count']:,} vouchers, "
          f"redeemed {body['redeemed_krw']:,}, outstanding {body['outstanding_krw']:,}")


if __name__ == "__main__":
    main()
