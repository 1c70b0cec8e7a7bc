"""Fault tests with real processes: a worker SIGKILLed mid-run (a full run and a stage),
PostgreSQL restarted mid-run. Each must end with exactly one voucher set per customer the
run was for (every eligible one, or the stage's lowest ids) and a balanced ledger."""

from __future__ import annotations

import psycopg
import pytest
from celery import current_app
from django.db import connection
from django.db.models import Count

from tests.issuance.conftest import FOUR_VOUCHERS
from tests.processes import (
    FAST_RECOVERY,
    Worker,
    create_database,
    database_url,
    manage,
    query,
    wait_for,
)
from vouchers.issuance import services
from vouchers.issuance.models import IssuanceChunk, IssuanceRun
from vouchers.ledger.verification import verify_ledger
from vouchers.models import Exclusion, Voucher

pytestmark = pytest.mark.slow
CUSTOMERS = 24_000


@pytest.fixture
def workers(tmp_path):
    started: list[Worker] = []

    def start(env: dict[str, str], name: str) -> Worker:
        worker = Worker(env, tmp_path, name)
        started.append(worker)
        return worker

    current_app.control.purge()  # messages of earlier tests name rows that are gone
    yield start
    for worker in started:
        worker.kill()


def _sessions(*, issuing: bool = False) -> int:
    """Other sessions on the test database (only those running a chunk statement)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity"
                       " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                       " AND (NOT %s OR (state = 'active' AND query LIKE '%%WITH issued AS%%'))",
                       [issuing])
        return cursor.fetchone()[0]


@pytest.mark.parametrize("stage", [None, 15_000], ids=["full", "stage"])
@pytest.mark.django_db(transaction=True)
def test_sigkilled_worker_mid_run(make_campaign, load_registry, settings, workers, stage):
    settings.ISSUANCE_CHUNK_SIZE = 1000
    campaign = make_campaign(slug="kill", components=FOUR_VOUCHERS)
    load_registry(campaign, {cid: ("closed" if cid % 7 == 0 else "active")
                             for cid in range(1, CUSTOMERS + 1)})
    Exclusion.objects.create(campaign=campaign, customer_id=42, reason="x", created_by="t")
    due = sorted(set(range(1, CUSTOMERS + 1)) - {42})[:stage]
    run = services.create_run(campaign=campaign, actor="alice", dry_run_only=False,
                              max_customers=stage)
    services.approve_run(run_id=run.pk, actor="bob")  # commits: the dispatch message goes out
    env = {**FAST_RECOVERY, "DATABASE_URL": database_url(connection.settings_dict)}
    chunks = IssuanceChunk.objects.filter(run=run)

    first = workers(env, "kill-a")
    # Killed while a chunk statement runs, not while a COMMIT is under way: a COMMIT the
    # worker sent before it died still lands.
    wait_for(lambda: chunks.filter(status="done").count() >= 3 and _sessions(issuing=True),
             timeout=60, what=f"chunks being issued\n{first.tail()}", interval=0.01)
    first.kill()
    wait_for(lambda: _sessions() == 0, timeout=20, what="the killed worker's sessions to end")
    orphans = list(chunks.filter(status="running").values_list("pk", flat=True))
    assert orphans, "the kill landed between chunks"
    assert chunks.exclude(status="done").exists()

    second = workers(env, "kill-b")
    wait_for(lambda: IssuanceRun.objects.get(pk=run.pk).status == "completed", timeout=90,
             what=f"the run to complete\n{second.tail()}", interval=0.2)

    sets = dict(Voucher.objects.filter(campaign=campaign).values("registry_customer_id")
                .annotate(n=Count("pk")).values_list("registry_customer_id", "n"))
    assert sorted(sets) == due
    assert set(sets.values()) == {4}
    for chunk in chunks.filter(pk__in=orphans):
        assert chunk.status == "done" and chunk.attempts >= 2
    assert verify_ledger(campaign_id=campaign.pk).ok


_SEED = """
WITH c AS (
    INSERT INTO vouchers_campaign (slug, name, eligibility_opens_at, created_at, created_by)
    VALUES ('restart', 'Restart', now(), now(), 'test') RETURNING id
), comps AS (
    INSERT INTO vouchers_component
        (campaign_id, category, amount_krw, expires_at, min_order_krw, single_use)
    SELECT c.id, x.category, x.amount, now() + interval '90 days', 0, true
    FROM c, (VALUES ('all', 5000), ('eats', 5000), ('travel', 20000), ('luxury', 20000))
         AS x(category, amount)
)
INSERT INTO vouchers_registryentry (campaign_id, customer_id, account_status, imported_at)
SELECT c.id, g, CASE WHEN g %% 7 = 0 THEN 'closed' ELSE 'active' END, now()
FROM c, generate_series(1, %(n)s) g
"""


def test_postgres_restart_mid_run(cluster, workers):
    url = cluster.url("restart")
    env = {**FAST_RECOVERY, "DATABASE_URL": url, "ISSUANCE_CHUNK_SIZE": "500"}
    create_database(url)
    manage("migrate", "--noinput", env=env)
    with psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True) as c:
        c.execute(_SEED, {"n": CUSTOMERS})
    worker = workers(env, "restart")
    run_id = manage("issue_vouchers", "--campaign", "restart", env=env).strip().splitlines()[-1]
    done = ("SELECT count(*) FROM issuance_issuancechunk "
            f"WHERE run_id = '{run_id}' AND status = 'done'")
    wait_for(lambda: (query(url, done) or [[0]])[0][0] >= 8, timeout=60,
             what=f"chunks being issued\n{worker.tail()}", interval=0.02)

    cluster.stop("fast")  # connections of busy chunks die mid-transaction
    wait_for(lambda: "OperationalError" in worker.log.read_text(errors="replace"), timeout=20,
             what="the worker to notice the outage", interval=0.2)
    cluster.start()

    status = f"SELECT status FROM issuance_issuancerun WHERE id = '{run_id}'"
    wait_for(lambda: (query(url, status) or [[None]])[0][0] in ("completed", "failed"),
             timeout=120, what=f"the run to end\n{worker.tail()}", interval=0.3)
    assert query(url, status)[0][0] == "completed"
    sets = query(url, "SELECT count(*), min(n), max(n) FROM (SELECT count(*) n FROM "
                       "vouchers_voucher GROUP BY registry_customer_id) s")
    assert sets == [(CUSTOMERS, 4, 4)]
    assert "ledger ok" in manage("verify_ledger", env=env)
    assert "retry: Retry in" in worker.log.read_text(errors="replace")  # backoff was used
