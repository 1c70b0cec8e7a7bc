"""Opening-day load on loopback: a step run of increasing concurrency that finds the knee.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/vs_load_bench \\
    .venv/bin/python bench/load_opening_day.py --customers 100000 --steps 8,16,32,64,128

Seeds a campaign (one multi-use 50,000 won voucher per customer, issued through the real
chunk statement), starts gunicorn (gthread) on a free port, and runs locust headless at
each concurrency in turn: 75 % eligibility checks, 20 % voucher lists, 5 % redemptions.
Throttles are raised for the run (every simulated customer comes from 127.0.0.1). The
knee is the first step after which throughput grows by less than 10 %.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, free_port, make_campaign
from django.core.management import call_command

from accounts.identity import mint_customer_token
from accounts.services import create_principal
from vouchers.identifiers import public_voucher_id
from vouchers.issuance.chunk import issue_chunk
from vouchers.models import Voucher

VENV_BIN = ROOT / ".venv" / "bin"


def seed(customers: int, fixture: Path) -> None:
    slug = f"load-{time.time_ns()}"
    campaign_id = make_campaign(slug, customers)
    for lo in range(1, customers + 1, 50_000):
        issue_chunk(campaign_id=campaign_id, lo=lo, hi=lo + 50_000, run_id=None, chunk_id=None)
    vouchers = Voucher.objects.filter(campaign_id=campaign_id, status="active")
    sample = vouchers.order_by("?").values_list("customer_id", "pk")[:5000]
    fixture.write_text(json.dumps({
        "campaign": slug,
        "checkout_token": create_principal(role="checkout", name=f"load-{slug}")[1],
        "customers": [[cid, mint_customer_token(cid, ttl_seconds=6 * 3600), public_voucher_id(vid)]
                      for cid, vid in sample],
    }))


def step(host: str, users: int, seconds: int, env: dict, workdir: Path) -> dict:
    prefix = workdir / f"u{users}"
    subprocess.run([str(VENV_BIN / "locust"), "-f", str(ROOT / "bench/locustfile.py"),
                    "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
                    "--host", host, "--csv", str(prefix), "--only-summary", "--loglevel",
                    "WARNING"], env=env, check=False, capture_output=True)
    with open(f"{prefix}_stats.csv") as stats_file:
        rows = {row["Name"]: row for row in csv.DictReader(stats_file)}
    total = rows["Aggregated"]
    return {
        "users": users,
        "rps": float(total["Requests/s"]),
        "p50": float(total["50%"]), "p99": float(total["99%"]),
        "failures": int(total["Failure Count"]), "requests": int(total["Request Count"]),
        "by_name": {name: (float(r["Requests/s"]), float(r["99%"]), int(r["Failure Count"]))
                    for name, r in rows.items() if name != "Aggregated"},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--steps", default="8,16,32,64,128")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "scripts/create_database.py"),
                    os.environ["DATABASE_URL"]], check=True)
    call_command("migrate", verbosity=0)

    workdir = Path(tempfile.mkdtemp(prefix="load-"))
    fixture = workdir / "fixture.json"
    seed(args.customers, fixture)
    env = {**os.environ, "LOAD_FIXTURE": str(fixture), "LOG_LEVEL": "WARNING",
           "THROTTLE_CUSTOMER_CHECK": "100000/min", "THROTTLE_IP_CHECK": "10000000/min"}
    port = free_port()
    server = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "config.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-k", "gthread", "-w", str(args.workers), "--threads", str(args.threads),
         "--log-level", "warning"], cwd=ROOT, env=env)
    try:
        time.sleep(3)
        results = [step(f"http://127.0.0.1:{port}", int(users), args.seconds, env, workdir)
                   for users in args.steps.split(",")]
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"{'users':>6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'fail':>5}  per endpoint "
          "(req/s, p99 ms, failures)")
    knee = results[-1]
    for previous, current in itertools.pairwise(results):
        if current["rps"] < previous["rps"] * 1.10:
            knee = previous
            break
    for r in results:
        parts = ", ".join(f"{name} {rps:.0f}/{p99:.0f}/{fails}"
                          for name, (rps, p99, fails) in sorted(r["by_name"].items()))
        print(f"{r['users']:>6} {r['rps']:>8.0f} {r['p50']:>7.0f} {r['p99']:>7.0f} "
              f"{r['failures']:>5}  {parts}")
    print(f"knee: {knee['users']} users, {knee['rps']:.0f} req/s, p99 {knee['p99']:.0f} ms")


if __name__ == "__main__":
    main()
