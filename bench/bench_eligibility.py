"""Eligibility checks per second through HTTP: Redis hits, first checks, Redis down, beside a
bare DRF endpoint served by the same gunicorn in the same run.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/vs_elig_bench \\
    REDIS_URL=redis://127.0.0.1:6379/6 CELERY_BROKER_URL=redis://127.0.0.1:6379/7 \\
    .venv/bin/python bench/bench_eligibility.py --customers 1000000 --connections 32

Give it a database and a Redis database of its own: it clears the cache database first (the
throttle windows of an earlier run), creates and migrates the database if needed, then
makes a campaign of N registry customers (every seventh closed, two components) issued
with the chunk statement. gunicorn, with the workers the deployment runs (the Dockerfile's
command: 3 sync workers; ``BENCH_WORKER_CLASS`` / ``BENCH_WORKERS`` / ``BENCH_THREADS``
override it, e.g. ``gthread``, 2, 4; keep-alive where the worker class has it), ``DEBUG``
off, serves the project's WSGI application with one more route (``bench/serving.py``,
shared with the other HTTP benchmarks), ``/bench/bare``: a DRF
view with the same customer JWT authentication and permission that only returns
``{"ok": true}``. Throttles run at their configured rates; the server trusts one proxy
(``NUM_PROXIES=1``) and each request names a client address from RFC 2544's benchmarking
range in ``X-Forwarded-For``, as from many phones. The servers' output goes to
``var/bench-eligibility-server.log``. The load is wrk (Debian's package; C, so the load
generator takes little of the two cores) with ``bench/wrk_replay.lua`` replaying a list
of requests, each signed by its own customer's JWT:

* bare: the bare endpoint (the framework's floor on this machine);
* hit: a warmed set of 2,000 customers, every answer from Redis;
* first check: every request a customer not checked before: PostgreSQL, then a Redis SET;
* redis down: a second server whose Redis URL points at a closed port (cache and
  throttles fail open), every answer from PostgreSQL.

With ``--through-pgbouncer``, the same run then starts PgBouncer in transaction pooling
mode in front of the database (as deployed, docs/DEPLOYMENT.md) and a second server whose
connections go through it: the hit against both servers in alternating rounds, then a
first check against each (customers not checked before, a set of their own per server).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import time

from common import ROOT, free_port, through_pgbouncer
from common import make_campaign as make_registry
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from serving import (
    add_bare_route,
    client_address,
    interleaved,
    load,
    server_workers,
    serving,
)

from accounts.identity import mint_customer_token
from voucher_service.phones import phone_hash
from vouchers.issuance.chunk import issue_chunk

HIT_SET = 2_000
CLAIM_SAMPLES = 400
CPU_SAMPLES = 500


def cpu_per_request(requests: list[tuple[str, str]]) -> float:
    """CPU milliseconds per request, in this process through Django's test client: what a
    request costs whatever else the machine is doing."""
    from django.test import Client

    client = Client()
    started = time.process_time()
    for k, (url, token) in enumerate(requests):
        response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}",
                              REMOTE_ADDR=client_address(250 + k // 250, k))
        assert response.status_code == 200, response.status_code
    return 1000 * (time.process_time() - started) / len(requests)


def make_campaign(n: int) -> str:
    slug = f"bench-elig-{int(time.time())}"
    campaign_id = make_registry(slug, n, components=(("all", 30_000, True),
                                                     ("eats", 20_000, True)))
    for lo in range(1, n + 1, 50_000):
        issue_chunk(campaign_id=campaign_id, lo=lo, hi=lo + 50_000, run_id=None, chunk_id=None)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE vouchers_voucher; ANALYZE vouchers_registryentry")
    return slug


def claim_start_timing(port: int, slug: str, matched: list[str], unmatched: list[str]) -> dict:
    """One client, matching and unmatched phones alternating (in turn first, so that an
    order effect cancels out): the response time of each."""
    times: dict[str, list[float]] = {"matched": [], "unmatched": []}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i, (hit, miss) in enumerate(zip(matched, unmatched, strict=True)):
        pair = [("matched", hit), ("unmatched", miss)]
        for kind, phone in pair if i % 2 else pair[::-1]:
            body = json.dumps({"campaign": slug, "phone": phone})
            token = mint_customer_token(10**9 + 2 * i + (kind == "unmatched"))
            started = time.perf_counter()
            conn.request("POST", "/api/v1/claims/closed-account", body=body,
                         headers={"Authorization": f"Bearer {token}",
                                  "Content-Type": "application/json",
                                  "X-Forwarded-For": client_address(2 * i, kind == "matched")})
            response = conn.getresponse()
            response.read()
            assert response.status == 202, response.status
            times[kind].append(1000 * (time.perf_counter() - started))
    conn.close()
    return {kind: (statistics.median(t), sorted(t)[int(0.9 * len(t))])
            for kind, t in times.items()}


def give_phones(slug: str, count: int) -> list[str]:
    """Phones for ``count`` closed registry accounts (hashed, as the import stores them)."""
    phones = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.customer_id FROM vouchers_registryentry r JOIN vouchers_campaign c"
            " ON c.id = r.campaign_id WHERE c.slug = %s AND r.account_status = 'closed'"
            " ORDER BY r.customer_id LIMIT %s", [slug, count])
        for (customer_id,) in cursor.fetchall():
            phones[customer_id] = f"010{customer_id:08d}"
        cursor.executemany(
            "UPDATE vouchers_registryentry SET phone_hash = %s WHERE customer_id = %s"
            " AND campaign_id = (SELECT id FROM vouchers_campaign WHERE slug = %s)",
            [(phone_hash(p, key=settings.PHONE_HASH_KEY), c, slug) for c, p in phones.items()])
    return list(phones.values())


def report(name: str, result: dict) -> None:
    cpu = result.get("cpu_ms")
    cpu_text = (f"{cpu['workers']:.2f} / {cpu['redis']:.2f} / {cpu['wrk']:.2f}"
                if cpu else "")
    load_text = "{:.1f} -> {:.1f}".format(*result["load"]) if "load" in result else ""
    print(f"| {name} | {result['per_second']:,.0f} | {result['p50_ms']:.1f} | "
          f"{result['p99_ms']:.1f} | {result['requests']:,} | "
          f"{result['non_2xx'] + result['socket_errors']} | {cpu_text} | {load_text} |",
          flush=True)


def compare_interleaved(port: int, bare: list[tuple[str, str]], hits: list[tuple[str, str]], *,
                        rounds: int, connections: int, seconds: float) -> None:
    """Bare and hit in alternating rounds, so that whatever else loads the machine weighs on
    both alike; then both totals (p99: the worst round's) and their ratio."""
    summed = interleaved(port, {"bare": bare, "hit": hits}, rounds=rounds,
                         connections=connections, seconds=seconds, on_round=report)
    report("**bare DRF endpoint** (JWT auth, no DB, no cache)", summed["bare"])
    report("**eligibility, Redis hit**", summed["hit"])
    print(f"| hit / bare | {summed['hit']['per_second'] / summed['bare']['per_second']:.0%} "
          "| | | | | | |", flush=True)


def compare_pooled(log, port: int, hits: list[tuple[str, str]],
                   first: tuple[list[tuple[str, str]], list[tuple[str, str]]], *,
                   rounds: int, connections: int, seconds: float) -> None:
    """The hit against this server (direct to PostgreSQL) and one through PgBouncer in
    alternating rounds, then a first check against each."""
    with through_pgbouncer() as pooled_url, serving(log, DATABASE_URL=pooled_url) as pooled:
        load(pooled, hits, connections=connections, seconds=5)  # workers warm
        phases = {"hit, direct": hits, "hit, through PgBouncer": hits}
        summed = interleaved(port, phases, rounds=rounds, connections=connections,
                             seconds=seconds, ports={"hit, through PgBouncer": pooled})
        for name, result in summed.items():
            report(f"**eligibility, Redis {name}**", result)
        for (name, target), requests in zip(
                (("direct", port), ("through PgBouncer", pooled)), first, strict=True):
            report(f"eligibility, first check, {name}",
                   load(target, requests, connections=connections, seconds=seconds))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--campaign", metavar="SLUG",
                        help="reuse this campaign of an earlier run (its registry size is read "
                             "from the database) instead of making one")
    parser.add_argument("--compare-only", action="store_true",
                        help="only bare against hit: no first checks, Redis down, claim "
                             "starts or in-process CPU figures")
    parser.add_argument("--through-pgbouncer", action="store_true",
                        help="then the hit and the first check again, direct against "
                             "through PgBouncer in transaction pooling mode")
    args = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "scripts/create_database.py"),
                    os.environ["DATABASE_URL"]], check=True)
    call_command("migrate", verbosity=0)
    # Throttle windows of an earlier run would refuse this one's requests, and its cached
    # answers would make a reused campaign's first checks hits.
    cache.clear()
    if args.campaign:
        slug = args.campaign
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM vouchers_registryentry r JOIN vouchers_campaign"
                           " c ON c.id = r.campaign_id WHERE c.slug = %s", [slug])
            args.customers = cursor.fetchone()[0]
        if not args.customers:
            sys.exit(f"no campaign {slug!r} with a registry in this database")
    else:
        slug = make_campaign(args.customers)
    check = f"/api/v1/campaigns/{slug}/eligibility"
    rng = random.Random(7)
    budget = int(args.seconds * 3_000)  # more first checks than the box can serve in the time
    tokens = {}

    def token(customer_id: int) -> str:
        if customer_id not in tokens:
            tokens[customer_id] = mint_customer_token(customer_id, ttl_seconds=3600)
        return tokens[customer_id]

    cold_sets = 4 if args.through_pgbouncer else 2
    drawn = rng.sample(range(1, args.customers + 1), HIT_SET + cold_sets * budget)
    hot, cold = drawn[:HIT_SET], drawn[HIT_SET:]
    print(f"campaign {slug}: {args.customers:,} customers, wrk with {args.connections} "
          f"connections, {args.seconds:g} s per measurement")
    workers = server_workers()
    print(f"gunicorn: {workers['worker_class']} workers, {workers['workers']} x "
          f"{workers['threads']} thread(s); load average before: {os.getloadavg()[0]:.1f}; "
          "CPU ms per request: the gunicorn workers / Redis / wrk")
    print("| measurement | checks/s | p50 ms | p99 ms | requests | non-200 "
          "| CPU ms per request | load average |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    bare = [("/bench/bare", token(c)) for c in hot]
    hits = [(check, token(c)) for c in hot]
    run = {"connections": args.connections, "seconds": args.seconds}
    (ROOT / "var").mkdir(exist_ok=True)
    with (ROOT / "var" / "bench-eligibility-server.log").open("ab") as log:
        with serving(log) as port:
            load(port, bare, connections=args.connections, seconds=5)  # workers warm
            load(port, hits, connections=args.connections, seconds=10)  # answers cached
            compare_interleaved(port, bare, hits, rounds=args.rounds, **run)
            if args.through_pgbouncer:
                compare_pooled(log, port, hits, (
                    [(check, token(c)) for c in cold[2 * budget:3 * budget]],
                    [(check, token(c)) for c in cold[3 * budget:]]), **run,
                    rounds=args.rounds)
            if args.compare_only:
                return
            report("eligibility, first check (PostgreSQL, then Redis SET)",
                   load(port, [(check, token(c)) for c in cold[:budget]], **run))
            matched = give_phones(slug, CLAIM_SAMPLES)
            unmatched = [f"0109{i:07d}" for i in range(CLAIM_SAMPLES)]
            timing = claim_start_timing(port, slug, matched, unmatched)
        with serving(log, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0") as port:
            load(port, bare, connections=args.connections, seconds=5)
            report("eligibility, Redis down (PostgreSQL only, throttles open)",
                   load(port, [(check, token(c)) for c in cold[budget:2 * budget]], **run))
    add_bare_route()
    cpu_hot, cpu_cold = hot[:CPU_SAMPLES], cold[-CPU_SAMPLES:]  # cold: not yet cached
    print(f"\nCPU per request in-process (Django test client, {CPU_SAMPLES} each, "
          "default Redis up):")
    for name, requests in (
        ("bare DRF endpoint", [("/bench/bare", token(c)) for c in cpu_hot]),
        ("eligibility, cache miss", [(check, token(c)) for c in cpu_cold]),
        ("eligibility, Redis hit", [(check, token(c)) for c in cpu_cold]),
    ):
        print(f"| {name} | {cpu_per_request(requests):.2f} ms |")
    print(f"\nclaim start, {CLAIM_SAMPLES} each, alternating, one client (median / p90 ms):")
    for kind, (median, p90) in timing.items():
        print(f"| {kind} phone | {median:.2f} | {p90:.2f} |")

if __name__ == "__main__":
    main()
