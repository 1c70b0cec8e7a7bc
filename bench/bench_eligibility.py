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
off, serves the project's WSGI application with one more route, ``/bench/bare``: a DRF
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
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import itertools
import json
import os
import pathlib
import random
import resource
import statistics
import subprocess
import sys
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



def _production_env() -> dict[str, str]:
    """The server runs as deployed: ``DEBUG`` off (so this process's development secrets are
    passed explicitly: the tokens it mints must verify), request logs at WARNING, one
    trusted proxy."""
    return {"DEBUG": "0", "SECURE_SSL_REDIRECT": "0", "LOG_LEVEL": "WARNING",
            "NUM_PROXIES": "1",
            **{name: getattr(settings, name) for name in (
                "SECRET_KEY", "PHONE_HASH_KEY", "CUSTOMER_JWT_KEY", "VOUCHER_CODE_KEY")}}


_GUNICORN_OPTIONS = {"-k": "worker_class", "--worker-class": "worker_class", "-w": "workers",
                     "--workers": "workers", "--threads": "threads"}


def server_workers() -> dict[str, str]:
    """gunicorn's worker class, workers and threads as deployed: the Dockerfile's ``CMD``
    (gunicorn's defaults for what it does not name), unless ``BENCH_WORKER_CLASS``,
    ``BENCH_WORKERS`` or ``BENCH_THREADS`` say otherwise."""
    command = next(json.loads(line.removeprefix("CMD"))
                   for line in (ROOT / "Dockerfile").read_text().splitlines()
                   if line.startswith("CMD"))
    options = {"worker_class": "sync", "workers": "1", "threads": "1"}
    for flag, value in itertools.pairwise(command):
        if "=" in flag:
            flag, _, value = flag.partition("=")
        if flag in _GUNICORN_OPTIONS:
            options[_GUNICORN_OPTIONS[flag]] = value
    return {name: os.environ.get(f"BENCH_{name.upper()}", value)
            for name, value in options.items()}


@contextlib.contextmanager
def serving(log, **env: str) -> Iterator[int]:
    """gunicorn on a free port, answering ``/healthz``; yields the port, stops it after."""
    global _server_pid
    port = free_port()
    workers = server_workers()
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "bench_eligibility:application",
         "--pythonpath", f"{ROOT},{ROOT / 'bench'}", "-k", workers["worker_class"],
         "-w", workers["workers"], "--threads", workers["threads"], "--keep-alive", "30",
         "-b", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, **_production_env(), **env},
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
        _server_pid = process.pid
        yield port
    finally:
        _server_pid = None
        process.terminate()
        process.wait(timeout=30)


_server_pid: int | None = None
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (0 if it is gone)."""
    try:
        fields = (pathlib.Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _server_cpu() -> dict[str, float]:
    """CPU seconds so far of the gunicorn workers and of the Redis server the cache uses."""
    workers = 0.0
    if _server_pid is not None:
        children = pathlib.Path(f"/proc/{_server_pid}/task/{_server_pid}/children")
        with contextlib.suppress(OSError):
            workers = sum(_cpu_seconds(int(pid)) for pid in children.read_text().split())
    redis_seconds = 0.0
    with contextlib.suppress(Exception):
        redis_seconds = _cpu_seconds(int(_redis_pid()))
    return {"workers": workers, "redis": redis_seconds}


@functools.cache
def _redis_pid() -> int:
    from django_redis import get_redis_connection

    return get_redis_connection("default").info("server")["process_id"]


def client_address(i: int, k: int) -> str:
    """A client address in RFC 2544's benchmarking range, as a trusted proxy would report it:
    requests spread over many addresses, as from many phones (header text only)."""
    return f"198.18.{i % 250}.{k % 250}"


def load(port: int, requests: list[tuple[str, str]], *, connections: int,
         seconds: float) -> dict:
    """wrk (2 threads, ``connections`` keep-alive connections) replaying ``requests`` (path,
    token), each with a client address of its own, for ``seconds``."""
    listing = ROOT / "var" / "bench-eligibility-requests.tsv"
    listing.write_text("".join(f"{url}\t{token}\t{client_address(k // 250, k)}\n"
                               for k, (url, token) in enumerate(requests)))
    threads = 2
    cpu_before, wrk_before = _server_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    result = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
         "--timeout", "10s", "-s", str(ROOT / "bench" / "wrk_replay.lua"),
         f"http://127.0.0.1:{port}", "--", str(listing), str(threads)],
        check=True, capture_output=True, text=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["per_second"] = figures["requests"] / figures["seconds"]
    cpu_after, wrk_after = _server_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_seconds = (wrk_after.ru_utime + wrk_after.ru_stime
                   - wrk_before.ru_utime - wrk_before.ru_stime)
    per_request = 1000 / max(figures["requests"], 1)
    figures["cpu_ms"] = {**{name: per_request * (cpu_after[name] - cpu_before[name])
                            for name in cpu_after}, "wrk": per_request * wrk_seconds}
    figures["load"] = (load_before, os.getloadavg()[0])
    return figures


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
    totals = {"bare": [], "hit": []}
    for i in range(1, rounds + 1):
        for kind, requests in (("bare", bare), ("hit", hits)):
            result = load(port, requests, connections=connections, seconds=seconds / rounds)
            totals[kind].append(result)
            report(f"round {i}: {kind}", result)
    summed = {}
    for kind, results in totals.items():
        requests = sum(r["requests"] for r in results)
        summed[kind] = {
            "requests": requests, "per_second": requests / sum(r["seconds"] for r in results),
            "p50_ms": statistics.median(r["p50_ms"] for r in results),
            "p99_ms": max(r["p99_ms"] for r in results),
            "non_2xx": sum(r["non_2xx"] for r in results),
            "socket_errors": sum(r["socket_errors"] for r in results),
            "cpu_ms": {name: sum(r["cpu_ms"][name] * r["requests"] for r in results) / requests
                       for name in results[0]["cpu_ms"]},
            "load": (results[0]["load"][0], results[-1]["load"][1])}
    report("**bare DRF endpoint** (JWT auth, no DB, no cache)", summed["bare"])
    report("**eligibility, Redis hit**", summed["hit"])
    print(f"| hit / bare | {summed['hit']['per_second'] / summed['bare']['per_second']:.0%} "
          "| | | | | | |", flush=True)


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

    drawn = rng.sample(range(1, args.customers + 1), HIT_SET + 2 * budget)
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
                   load(port, [(check, token(c)) for c in cold[budget:]], **run))
    _add_bare_route()
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
else:
    application = _application()
