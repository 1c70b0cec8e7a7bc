"""What the HTTP benchmarks share: the deployment's gunicorn serving the project with one
more route, and wrk driving it.

* ``serving(log, **env)``: gunicorn on a free port with the workers the deployment runs
  (the Dockerfile's ``CMD``, overridable by ``BENCH_WORKER_CLASS`` / ``BENCH_WORKERS`` /
  ``BENCH_THREADS``), ``DEBUG`` off, one trusted proxy. Its application is the project's
  plus ``/bench/bare``: a DRF view with the same customer JWT authentication and
  permission that only returns ``{"ok": true}``, the framework's floor on the machine.
* ``load(port, requests, ...)``: wrk replaying GET requests (``wrk_replay.lua``), each
  signed by its own customer's JWT and naming its own client address.
* ``interleaved(...)``: several such loads in alternating rounds, so that whatever else
  loads the machine weighs on all of them alike, summed per load.
* ``post_load(port, token, bodies, ...)``: wrk POSTing JSON bodies with a fresh
  Idempotency-Key each (``wrk_checkout.lua``): checkouts.

Import it after ``common`` (it needs Django set up).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import itertools
import json
import os
import pathlib
import resource
import signal
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from common import ROOT, free_port
from django.conf import settings
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from voucher_service.permissions import IsCustomer

BENCH = ROOT / "bench"


class Bare(APIView):
    permission_classes = [IsCustomer]

    def get(self, request):
        return Response({"ok": True})


def add_bare_route() -> None:
    from config import urls

    urls.urlpatterns.insert(0, path("bench/bare", Bare.as_view()))


def application():
    """The project's WSGI application plus ``/bench/bare`` (gunicorn calls this factory)."""
    from django.core.wsgi import get_wsgi_application

    add_bare_route()
    return get_wsgi_application()


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
    outer = _server_pid  # a server started inside another's block gives it back after
    port = free_port()
    workers = server_workers()
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "serving:application()",
         "--pythonpath", f"{ROOT},{BENCH}", "-k", workers["worker_class"],
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
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        _server_pid = process.pid
        yield port
    finally:
        _server_pid = outer
        process.terminate()
        process.wait(timeout=30)


_server_pid: int | None = None
_TICK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a process, from /proc; None if it is
    gone."""
    try:
        fields = (pathlib.Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (0 if it is gone)."""
    found = proc_stat(pid)
    return found[1] if found else 0.0


def _server_cpu() -> dict[str, float]:
    """CPU seconds so far of the gunicorn workers and of the Redis server the cache uses."""
    workers = 0.0
    if _server_pid is not None:
        children = pathlib.Path(f"/proc/{_server_pid}/task/{_server_pid}/children")
        with contextlib.suppress(OSError):
            workers = sum(cpu_seconds(int(pid)) for pid in children.read_text().split())
    redis_seconds = 0.0
    with contextlib.suppress(Exception):
        redis_seconds = cpu_seconds(int(_redis_pid()))
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
         seconds: float, listing: Path | None = None) -> dict:
    """wrk (2 threads, ``connections`` keep-alive connections) replaying ``requests`` (path,
    token), each with a client address of its own, for ``seconds``. ``listing``: where the
    request list is written for wrk (a file under var/ by default)."""
    listing = listing or ROOT / "var" / "bench-eligibility-requests.tsv"
    listing.write_text("".join(f"{url}\t{token}\t{client_address(k // 250, k)}\n"
                               for k, (url, token) in enumerate(requests)))
    threads = 2
    cpu_before, wrk_before = _server_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    result = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
         "--timeout", "10s", "-s", str(BENCH / "wrk_replay.lua"),
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


def interleaved(port: int, phases: dict[str, list[tuple[str, str]]], *, rounds: int,
                connections: int, seconds: float,
                on_round: Callable[[str, dict], None] | None = None,
                listing: Path | None = None,
                ports: dict[str, int] | None = None) -> dict[str, dict]:
    """Each of ``phases`` (name: requests) for ``seconds / rounds`` in turn, ``rounds``
    times, against ``port`` (or the phase's own in ``ports``); ``on_round(label,
    figures)`` after each. Returns each phase's rounds summed (p50: the rounds' median;
    p99: the worst round's)."""
    totals: dict[str, list[dict]] = {name: [] for name in phases}
    for i in range(1, rounds + 1):
        for name, requests in phases.items():
            result = load((ports or {}).get(name, port), requests, connections=connections,
                          seconds=seconds / rounds, listing=listing)
            totals[name].append(result)
            if on_round:
                on_round(f"round {i}: {name}", result)
    summed = {}
    for name, results in totals.items():
        requests = sum(r["requests"] for r in results)
        summed[name] = {
            "requests": requests, "per_second": requests / sum(r["seconds"] for r in results),
            "p50_ms": statistics.median(r["p50_ms"] for r in results),
            "p99_ms": max(r["p99_ms"] for r in results),
            "non_2xx": sum(r["non_2xx"] for r in results),
            "socket_errors": sum(r["socket_errors"] for r in results),
            "cpu_ms": {kind: sum(r["cpu_ms"][kind] * r["requests"] for r in results)
                       / max(requests, 1) for kind in results[0]["cpu_ms"]},
            "load": (results[0]["load"][0], results[-1]["load"][1])}
    return summed


def post_load(port: int, token: str, bodies: list[tuple[str, dict]], *, clients: int,
              processes: int, seconds: float, workdir: str | Path,
              stop: threading.Event | None = None) -> dict:
    """wrk POSTing ``bodies`` (path, JSON) with ``token``: ``clients`` connections on
    ``processes`` threads for ``seconds`` (or until ``stop`` is set: wrk ends early on
    SIGINT and reports what it did), each request with a fresh Idempotency-Key. Returns
    the rate, the answers by class, the won the 201 answers report and the latency
    percentiles."""
    listing = Path(workdir, f"bodies-{uuid.uuid4().hex[:8]}.tsv")
    listing.write_text("".join(f"{path}\t{json.dumps(body)}\n" for path, body in bodies))
    try:
        wrk = subprocess.Popen(
            ["wrk", "-t", str(processes), "-c", str(clients), "-d", f"{seconds:.0f}s",
             "--timeout", "30s", "-s", str(BENCH / "wrk_checkout.lua"),
             f"http://127.0.0.1:{port}", "--", token, str(listing), str(processes),
             uuid.uuid4().hex], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while stop is not None and wrk.poll() is None:
            if stop.wait(0.05):
                wrk.send_signal(signal.SIGINT)
                break
        out, err = wrk.communicate()
        if wrk.returncode:
            raise subprocess.CalledProcessError(wrk.returncode, wrk.args, out, err)
    finally:
        listing.unlink(missing_ok=True)
    summary = json.loads(out.strip().splitlines()[-1])
    ok = summary["requests"] - summary["non_2xx"]
    statuses = Counter({("2xx", None): ok, ("non-2xx", None): summary["non_2xx"],
                        ("socket errors", None): summary["socket_errors"]})
    return {"rps": summary["requests"] / summary["seconds"], "requests": summary["requests"],
            "statuses": +statuses, "won_201": summary["won"], "created": summary["created"],
            "non_2xx": summary["non_2xx"], "socket_errors": summary["socket_errors"],
            "seconds": summary["seconds"], "p50_ms": summary["p50_ms"],
            "p99_ms": summary["p99_ms"], "max_ms": summary["max_ms"]}
