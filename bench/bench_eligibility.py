"""Eligibility checks per second through HTTP: Redis hits, cache misses, Redis down, beside a
bare DRF endpoint served by the same gunicorn in the same run.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/vs_elig_bench \\
    REDIS_URL=redis://127.0.0.1:6379/6 CELERY_BROKER_URL=redis://127.0.0.1:6379/7 \\
    .venv/bin/python bench/bench_eligibility.py --customers 200000 --seconds 10 --clients 8

Give it a database and a Redis database of its own: it clears the cache database first (the
throttle histories of an earlier run), creates and migrates the database if needed, then
makes a campaign of N registry customers
(every seventh closed, two components) issued with the chunk statement. gunicorn (gthread,
2 workers x 4 threads, keep-alive) serves the project's WSGI application with one more
route, ``/bench/bare``: a DRF view with the same customer JWT authentication and
permission that only returns ``{"ok": true}``. Throttles run at their configured rates;
the server trusts one proxy (``NUM_PROXIES=1``) and each request names a client address
from RFC 2544's benchmarking range in ``X-Forwarded-For``, so that per-address histories
stay as short as many phones make them. Request logging is at WARNING (it is per-request
JSON at INFO); the servers' output goes to ``var/bench-eligibility-server.log``. Clients
are threads with keep-alive ``http.client`` connections, each request signed by its own
customer's JWT:

* bare: the bare endpoint (the framework's floor on this machine);
* hit: a warmed set of 2,000 customers, every answer from Redis;
* miss: every request a customer not checked before: PostgreSQL, then a Redis SET;
* redis down: a second server whose Redis URL points at a closed port (cache and
  throttles fail open), every answer from PostgreSQL.

Loops are bounded by count and time; everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

from common import ROOT, free_port
from common import make_campaign as make_registry
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.identity import mint_customer_token
from voucher_service.permissions import IsCustomer
from voucher_service.phones import phone_hash
from vouchers.issuance.chunk import issue_chunk

HIT_SET = 2_000
CLAIM_SAMPLES = 400
CPU_SAMPLES = 500

class Bare(APIView):
    permission_classes = [IsCustomer]

    def get(self, request):
        return Response({"ok": True})


def _add_bare_route() -> None:
    from config import urls

    urls.urlpatterns.insert(0, path("bench/bare", Bare.as_view()))


def _application():
    """The project's WSGI application plus ``/bench/bare`` (gunicorn imports this module)."""
    from django.core.wsgi import get_wsgi_application

    _add_bare_route()
    return get_wsgi_application()


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



@contextlib.contextmanager
def serving(log, **env: str) -> Iterator[int]:
    """gunicorn on a free port, answering ``/healthz``; yields the port, stops it after."""
    port = free_port()
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "bench_eligibility:application",
         "--pythonpath", f"{ROOT},{ROOT / 'bench'}", "-k", "gthread", "-w", "2",
         "--threads", "4", "--keep-alive", "30", "-b", f"127.0.0.1:{port}",
         "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, "NUM_PROXIES": "1", "LOG_LEVEL": "WARNING", **env},
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def client_address(i: int, k: int) -> str:
    """A client address in RFC 2544's benchmarking range, as a trusted proxy would report it:
    requests spread over many addresses, as from many phones (header text only)."""
    return f"198.18.{i % 250}.{k % 250}"


def load(port: int, requests: list[tuple[str, str]], *, clients: int, seconds: float) -> dict:
    """Sends ``requests`` (path, token) from ``clients`` threads until done or out of time."""
    shares = [requests[i::clients] for i in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    deadline = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for k, (url, token) in enumerate(shares[i]):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                conn.request("GET", url, headers={"Authorization": f"Bearer {token}",
                                                  "X-Forwarded-For": client_address(i, k)})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                conn.close()
                ok = False
            latencies[i].append(time.perf_counter() - started)
            errors[i] += not ok
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    flat = sorted(x for per in latencies for x in per)
    return {
        "requests": len(flat),
        "errors": sum(errors),
        "per_second": len(flat) / elapsed,
        "p50_ms": 1000 * statistics.median(flat),
        "p99_ms": 1000 * flat[int(len(flat) * 0.99) - 1],
    }


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
    print(f"| {name} | {result['per_second']:,.0f} | {result['p50_ms']:.1f} | "
          f"{result['p99_ms']:.1f} | {result['requests']:,} | {result['errors']} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "scripts/create_database.py"),
                    os.environ["DATABASE_URL"]], check=True)
    call_command("migrate", verbosity=0)
    cache.clear()  # throttle histories of an earlier run would refuse this one's requests
    slug = make_campaign(args.customers)
    check = f"/api/v1/campaigns/{slug}/eligibility"
    rng = random.Random(7)
    budget = int(args.seconds * 20_000)  # far more than the box can serve in the time
    tokens = {}

    def token(customer_id: int) -> str:
        if customer_id not in tokens:
            tokens[customer_id] = mint_customer_token(customer_id, ttl_seconds=3600)
        return tokens[customer_id]

    hot = rng.sample(range(1, args.customers + 1), HIT_SET)
    hot_set = set(hot)
    cold = [c for c in rng.sample(range(1, args.customers + 1), min(args.customers, budget))
            if c not in hot_set]
    print(f"campaign {slug}: {args.customers:,} customers, {args.clients} clients, "
          f"{args.seconds:g} s per measurement")
    print("| measurement | checks/s | p50 ms | p99 ms | requests | non-200 |")
    print("| --- | --- | --- | --- | --- | --- |")
    half = len(cold) // 2
    bare = [("/bench/bare", token(rng.choice(hot))) for _ in range(budget)]
    (ROOT / "var").mkdir(exist_ok=True)
    with (ROOT / "var" / "bench-eligibility-server.log").open("ab") as log:
        with serving(log) as port:
            load(port, bare, clients=args.clients, seconds=5)  # every worker booted: unmeasured
            report("bare DRF endpoint (JWT auth, no DB, no cache)",
                   load(port, bare, clients=args.clients, seconds=args.seconds))
            load(port, [(check, token(c)) for c in hot], clients=args.clients, seconds=60)
            hits = [(check, token(rng.choice(hot))) for _ in range(budget)]
            report("eligibility, Redis hit",
                   load(port, hits, clients=args.clients, seconds=args.seconds))
            report("eligibility, cache miss (PostgreSQL + Redis SET)",
                   load(port, [(check, token(c)) for c in cold[:half]],
                        clients=args.clients, seconds=args.seconds))
            matched = give_phones(slug, CLAIM_SAMPLES)
            unmatched = [f"0109{i:07d}" for i in range(CLAIM_SAMPLES)]
            timing = claim_start_timing(port, slug, matched, unmatched)
        with serving(log, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0") as port:
            load(port, bare, clients=args.clients, seconds=5)
            report("eligibility, Redis down (PostgreSQL only, throttles open)",
                   load(port, [(check, token(c)) for c in cold[half:]],
                        clients=args.clients, seconds=args.seconds))
    _add_bare_route()
    cpu_hot, cpu_cold = hot[:CPU_SAMPLES], cold[-CPU_SAMPLES:]
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
else:
    application = _application()
