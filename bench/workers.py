"""Celery workers for the benchmarks: the deployment's worker command in a process of its
own, the peak resident memory of a process and its children, and waiting for an issuance
run to end while sampling it.

Import it after ``common`` (it needs Django set up).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from common import ROOT
from serving import proc_stat

from vouchers.issuance.models import IssuanceRun, RunStatus

ENDED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


@contextlib.contextmanager
def celery_worker(*, concurrency: int = 2, env: dict[str, str] | None = None,
                  log_path: Path | None = None, purge: bool = False,
                  ready_timeout: float = 60.0) -> Iterator[subprocess.Popen]:
    """``celery -A config worker -P prefork -c CONCURRENCY`` (no beat, no mingle or
    gossip), yielded once it logs that it is ready to take tasks, so that its start-up is
    not part of what is measured; terminated after. Its log goes to ``log_path``
    (``var/bench-worker.log`` by default). ``purge``: drop the messages waiting in the
    broker first (an earlier, killed run's, for a database that no longer exists)."""
    log_path = log_path or ROOT / "var" / "bench-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [str(ROOT / ".venv/bin/celery"), "-A", "config", "worker", "-P", "prefork",
             "-c", str(concurrency), "--loglevel=INFO", "--without-mingle",
             "--without-gossip", *(["--purge"] if purge else [])],
            cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + ready_timeout
            while b" ready." not in log_path.read_bytes():
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Celery worker did not start; see {log_path}")
                time.sleep(0.1)
            yield worker
        finally:
            worker.terminate()
            worker.wait(timeout=60)


def _children(pid: int) -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and (stat := proc_stat(int(entry.name)))
            and stat[0] == pid]


def peak_rss_mib(pid: int) -> float:
    """Largest VmHWM (peak resident set) of the worker and its pool processes."""
    peaks = []
    for p in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        kib = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmHWM"))
        peaks.append(kib / 1024)
    return max(peaks)


def wait_for_run(run_id, *, worker_pid: int, poll_seconds: float = 0.2,
                 on_poll: Callable[[], None] | None = None) -> tuple[str, float]:
    """Polls the run until it ends, sampling the worker's peak RSS (and calling ``on_poll``,
    for a progress bar) each time; returns the final status and that peak in MiB."""
    peak = 0.0
    while True:
        status = IssuanceRun.objects.values_list("status", flat=True).get(pk=run_id)
        peak = max(peak, peak_rss_mib(worker_pid))
        if on_poll:
            on_poll()
        if status in ENDED:
            return status, peak
        time.sleep(poll_seconds)
