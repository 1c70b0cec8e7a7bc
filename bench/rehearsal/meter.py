"""What every phase measures besides its own figures: wall time, WAL written, the CPU of
PostgreSQL against ours, the peak resident memory of our processes, table sizes.

A ``Meter`` samples from a thread of its own every half second:

* our processes: this one and everything it started (the Celery worker and its pool,
  gunicorn and its workers, wrk), found by walking ``/proc`` parent links; resident
  memory (``statm``) and CPU (``stat``) of each;
* PostgreSQL: the backends connected to the rehearsal database, the autovacuum workers on
  it and the cluster's own processes (checkpointer, background writer, WAL writer),
  found in ``pg_stat_activity`` on a connection of the meter's own; their CPU from
  ``/proc`` (the server runs on this machine).

CPU is counted per process from the first sample that sees it (a process first seen
later was started during the phase: all its CPU counts); a process that lives less than
half a second between two samples is missed, which the long-lived workers, servers and
pooled connections measured here are not. The machine's total busy time comes from
``/proc/stat``: on a shared machine it shows how much else was running.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import defaultdict
from pathlib import Path

import psycopg
from django.db import connection
from serving import proc_stat

_PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20
_TICK = os.sysconf("SC_CLK_TCK")
INTERVAL = 0.5

_POSTGRES_PIDS = """
SELECT pid FROM pg_stat_activity
WHERE pid <> pg_backend_pid()
  AND (datname = current_database()
       OR backend_type IN ('checkpointer', 'background writer', 'walwriter',
                           'autovacuum launcher'))
"""

# The largest relations of the database, and the database.
_SIZES = """
SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY pg_total_relation_size(c.oid) DESC LIMIT %s
"""


def _rss_mib(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_MIB
    except (OSError, IndexError):
        return 0.0


def _kind(pid: int) -> str:
    if pid == os.getpid():
        return "driver"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "other"
    return next((name for name in ("celery", "gunicorn", "wrk") if name in command), "other")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / _TICK


def wal_lsn() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return cursor.fetchone()[0]


def wal_bytes_since(lsn: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [lsn])
        return int(cursor.fetchone()[0])


def sizes(top: int = 6, *, summed: tuple[str, ...] = ()) -> dict:
    """The database's size, its ``top`` largest tables (heap + TOAST, indexes) and the
    total size of the relations ``summed`` (``summed_bytes``), in bytes."""
    with connection.cursor() as cursor:
        cursor.execute(_SIZES, [top])
        tables = {name: {"table": table, "indexes": indexes}
                  for name, table, indexes in cursor.fetchall()}
        cursor.execute("SELECT pg_database_size(current_database()), "
                       "coalesce(sum(pg_total_relation_size(to_regclass(r))), 0) "
                       "FROM unnest(%s::text[]) AS r", [list(summed)])
        database, summed_bytes = cursor.fetchone()
    return {"database": database, "tables": tables, "summed_bytes": int(summed_bytes)}


def relation_bytes(name: str) -> int:
    """pg_total_relation_size: heap, TOAST and indexes."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(%s::regclass)", [name])
        return cursor.fetchone()[0]


class Meter:
    """``with Meter(url) as meter: ...``; then ``meter.figures()``."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        # pid -> [CPU at first sight, CPU at last sight]
        self._ours: dict[int, list[float]] = {}
        self._postgres: dict[int, list[float]] = {}
        self.peak_rss_mib = 0.0
        self.peak_rss_by: dict[str, float] = defaultdict(float)
        self.error: str | None = None

    def __enter__(self) -> Meter:
        self._conn = psycopg.connect(self.url, autocommit=True)
        self._lsn = wal_lsn()
        self._busy = machine_busy_seconds()
        self._started = time.perf_counter()
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(first=False)
        self.wall_seconds = time.perf_counter() - self._started
        self.wal_bytes = wal_bytes_since(self._lsn)
        self.busy_seconds = machine_busy_seconds() - self._busy
        self._conn.close()

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            try:
                self._sample(first=False)
            except Exception as exc:  # a lost sample must not end the phase
                self.error = f"{type(exc).__name__}: {exc}"

    def _sample(self, *, first: bool) -> None:
        parents: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (found := proc_stat(int(entry.name))):
                parents[int(entry.name)], cpu[int(entry.name)] = found
        ours = {os.getpid()}
        grew = True
        while grew:  # descendants, however deep (gunicorn -> workers, celery -> pool)
            children = {pid for pid, parent in parents.items() if parent in ours} - ours
            ours |= children
            grew = bool(children)
        postgres = {row[0] for row in self._conn.execute(_POSTGRES_PIDS)}
        for pids, seen in ((ours, self._ours), (postgres, self._postgres)):
            for pid in pids & cpu.keys():
                if pid not in seen:
                    seen[pid] = [cpu[pid] if first else 0.0, cpu[pid]]
                seen[pid][1] = cpu[pid]
        total = 0.0
        for pid in ours:
            rss = _rss_mib(pid)
            total += rss
            if rss >= 1:  # not a zombie or a process between fork and exec
                kind = _kind(pid)
                self.peak_rss_by[kind] = max(self.peak_rss_by[kind], rss)
        self.peak_rss_mib = max(self.peak_rss_mib, total)

    def figures(self) -> dict:
        ours = sum(last - first for first, last in self._ours.values())
        postgres = sum(last - first for first, last in self._postgres.values())
        return {
            "wall_seconds": self.wall_seconds,
            "wal_bytes": self.wal_bytes,
            "cpu_seconds": {"postgres": postgres, "ours": ours,
                            "machine_busy": self.busy_seconds},
            "postgres_cpu_share": postgres / (postgres + ours) if postgres + ours else 0.0,
            "peak_rss_mib": self.peak_rss_mib,
            "peak_rss_mib_by_process": dict(self.peak_rss_by),
            "load_average": os.getloadavg(),
            **({"sampling_error": self.error} if self.error else {}),
        }


class LockWaits:
    """Samples, every ``interval`` seconds, the longest lock wait in progress on the
    database (``pg_locks.waitstart``): ``max_seconds`` is a lower bound of the longest
    wait (a wait between two samples is seen shorter or not at all)."""

    _SQL = """
    SELECT coalesce(max(extract(epoch FROM clock_timestamp() - l.waitstart)), 0), count(*)
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE NOT l.granted AND a.datname = current_database()
    """

    def __init__(self, database_url: str, interval: float = 0.05) -> None:
        self.url, self.interval = database_url, interval
        self.max_seconds = 0.0
        self.samples = self.samples_waiting = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with contextlib.closing(psycopg.connect(self.url, autocommit=True)) as conn:
            while not self._stop.wait(self.interval):
                longest, waiting = conn.execute(self._SQL).fetchone()
                self.samples += 1
                self.samples_waiting += bool(waiting)
                self.max_seconds = max(self.max_seconds, float(longest))

    def __enter__(self) -> LockWaits:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
