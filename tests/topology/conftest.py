"""The production topology on this machine (docs/DEPLOYMENT.md), started once for the
package: PgBouncer in transaction pooling mode in front of the test database, two gunicorn web
nodes on their own ports, two Celery workers and one beat, all through the pooler, with a
Redis of their own as broker and cache, and customer JWTs verified against a key set the
test serves as the shop's identity provider."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection

from tests.identity_provider import ISSUER, KeySetServer, SigningKey
from tests.processes import (
    FAST_RECOVERY,
    Beat,
    Gunicorn,
    PgBouncer,
    PrivateRedis,
    Worker,
    database_url,
)


@dataclass
class Stack:
    env: dict[str, str]
    workdir: Path
    pooler: PgBouncer
    broker: PrivateRedis
    identity: SigningKey
    web: tuple[Gunicorn, Gunicorn]
    workers: tuple[Worker, Worker]
    beat: Beat
    direct_url: str

    @property
    def sms(self) -> Path:
        return Path(self.env["SMS_FILE_PATH"])

    def logs(self) -> str:
        return "\n".join(f"--- {process.log.name}\n{process.tail()}"
                         for process in (*self.workers, self.beat))


@pytest.fixture(scope="package")
def stack(django_db_setup, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("stack")
    database = connection.settings_dict
    direct_url = database_url(database)
    pooler = PgBouncer((database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432)))
    broker = PrivateRedis()
    identity = SigningKey("stack-1")
    key_set = KeySetServer(identity)
    env = {
        **FAST_RECOVERY,
        # Recovery by the tick would hide a chunk a worker abandoned; and, rare, it leaves
        # the tables alone while a test's data is flushed.
        "ISSUANCE_TICK_SECONDS": "60",
        "DATABASE_URL": pooler.url(database["NAME"]), "LOG_LEVEL": "WARNING",
        "ISSUANCE_CHUNK_SIZE": "300",
        "CELERY_BROKER_URL": broker.url(0), "REDIS_URL": broker.url(1),
        "CUSTOMER_JWT_JWKS_URL": key_set.url, "CUSTOMER_JWT_ISSUER": ISSUER,
        "SMS_BACKEND": "file", "SMS_FILE_PATH": str(workdir / "sms"),
    }
    web = (Gunicorn(env, workdir, "web-a"), Gunicorn(env, workdir, "web-b"))
    workers = (Worker(env, workdir, "worker-a", beat=False),
               Worker(env, workdir, "worker-b", beat=False))
    beat = Beat(env, workdir, "beat")
    stack = Stack(env=env, workdir=workdir, pooler=pooler, broker=broker, identity=identity,
                  web=web, workers=workers, beat=beat, direct_url=direct_url)
    yield stack
    for process in (*stack.workers, beat):  # a test may have replaced a worker
        process.kill()
    for node in web:
        node.stop()
    key_set.stop()
    broker.kill()
    pooler.stop()
