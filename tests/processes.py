"""Real processes for the fault and topology tests: Celery workers, a private PostgreSQL
cluster, a private redis-server and PgBouncer.

Workers run in their own session so that a SIGKILL takes the whole process group (the
pool's children included), as when a machine or container dies. The private servers let
a test stop and start PostgreSQL or Redis without touching the shared ones.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
CELERY = ROOT / ".venv" / "bin" / "celery"
PG_BIN = Path("/usr/lib/postgresql/15/bin")

# Short timeouts so recovery happens within a test; the defaults are minutes.
FAST_RECOVERY = {
    "ISSUANCE_TICK_SECONDS": "1",
    "ISSUANCE_CHUNK_STALE_SECONDS": "3",
    "ISSUANCE_DISPATCH_STALE_SECONDS": "6",
    "ISSUANCE_RETRY_BACKOFF_SECONDS": "0.5",
    "ISSUANCE_RETRY_BACKOFF_MAX_SECONDS": "2",
    "ISSUANCE_MAX_IN_FLIGHT": "4",
    "BEAT_LOCK_TIMEOUT_SECONDS": "3",
    "DEBUG": "1",
}


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str,
             interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class CeleryProcess:
    """``celery -A config ARGS`` in a session of its own, its output in ``workdir/name.log``."""

    def __init__(self, args: list[str], env: dict[str, str], workdir: Path, name: str) -> None:
        self.log = workdir / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([str(CELERY), "-A", "config", *args], cwd=ROOT,
                                            env={**os.environ, **env}, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def terminate(self) -> None:
        """SIGTERM to the main process alone, as ``docker stop`` or Kubernetes sends it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the whole group: no task gets to finish, nothing is acknowledged."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


class Worker(CeleryProcess):
    """``celery -A config worker -P prefork -c 2``, by default with beat embedded (``-B``)
    so that it ticks too."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str, *,
                 concurrency: int = 2, beat: bool = True) -> None:
        super().__init__([
            "worker", "-P", "prefork", "-c", str(concurrency), *(["-B"] if beat else []),
            "-n", f"{name}@%h", "--loglevel=INFO",
            "--without-mingle", "--without-gossip", "--without-heartbeat",
        ], env, workdir, name)


class Beat(CeleryProcess):
    """``celery -A config beat``: the scheduler, as deployed."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str) -> None:
        super().__init__(["beat", "--loglevel=INFO"], env, workdir, name)


class Gunicorn:
    """The real web server on a free port: gthread workers (two by default)."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str = "gunicorn", *,
                 workers: int = 2, options: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.log = workdir / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(ROOT / ".venv/bin/gunicorn"), "config.wsgi:application", "-b",
                 f"127.0.0.1:{self.port}", "-k", "gthread", "-w", str(workers), "--threads",
                 "4", *options],
                cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_for(lambda: self.status("/healthz") == 200, timeout=30,
                 what=f"gunicorn to start\n{self.log.read_text(errors='replace')[-2000:]}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def status(self, path: str) -> int | None:
        try:
            return requests.get(self.url(path), timeout=2).status_code
        except requests.RequestException:
            return None

    def workers(self) -> list[int]:
        """The worker processes' ids (the master's children)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


class PrivateCluster:
    """A throwaway cluster (initdb) on a free port, data under /tmp."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="iss-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(_as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A",
                                    "trust", "-U", "postgres", "--no-sync"),
                       check=True, capture_output=True)
        self.start()

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args),
                       check=True, capture_output=True)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        self._ctl("-l", str(self.dir / "server.log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class PgBouncer:
    """Debian's PgBouncer (``scripts/ensure-pgbouncer``) in transaction pooling mode, as
    deployed, on a free port in front of the PostgreSQL server at ``upstream``: every
    database of that server, user ``postgres``. Its config, log and pid file live in a
    directory of its own. ``server_round_robin`` hands a client's consecutive transactions
    to different server connections, so that session state (a session lock, a TEMP table,
    a ``SET``, a cursor or prepared statement kept across transactions) breaks here at
    once instead of once in a while in production."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432), *,
                 pool_size: int = 12) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        assert Path(binary).exists(), "pgbouncer is missing: run scripts/ensure-pgbouncer"
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        host, port = upstream
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(f"""\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 3
max_client_conn = 1000
server_round_robin = 1
ignore_startup_parameters = extra_float_digits
logfile = {self.dir}/pgbouncer.log
pidfile = {self.dir}/pgbouncer.pid
""")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.process = subprocess.Popen(_as_postgres(binary, str(self.dir / "pgbouncer.ini")),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for(self._answers, timeout=10, what=f"pgbouncer to start\n{self.tail()}")

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _answers(self) -> bool:
        return query(self.url("postgres"), "SELECT 1") == [(1,)]

    def tail(self, lines: int = 20) -> str:
        log = self.dir / "pgbouncer.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) \
            if log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # PgBouncer's immediate shutdown
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """``redis-server`` on a free port, keeping nothing on disk: a kill loses every key and
    every queued broker message, the worst case for a broker or cache outage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for(self._answers, timeout=10, what="redis-server to start")

    def _answers(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port),
                                                                     timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
        return False

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def database_url(settings_dict: dict) -> str:
    """The URL of a Django connection's database, for the processes a test starts."""
    s = settings_dict
    return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def query(url: str, sql: str) -> list[tuple] | None:
    """Rows of ``sql`` on the database at ``url``, or None while the server is down."""
    try:
        with psycopg.connect(url.replace("postgres://", "postgresql://"), connect_timeout=2) as c:
            return c.execute(sql).fetchall()
    except psycopg.OperationalError:
        return None


def manage(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def create_database(url: str) -> None:
    subprocess.run([sys.executable, "scripts/create_database.py", url], cwd=ROOT, check=True,
                   capture_output=True)
