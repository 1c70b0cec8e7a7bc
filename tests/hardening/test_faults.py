"""Fault matrix, with real processes: Redis (broker and cache) lost mid-run.

The issuance faults (worker SIGKILL, PostgreSQL restart mid-run) live in
tests/issuance/test_faults.py. After each fault: no voucher doubled or lost, the ledger
balanced, the audit chain intact, and the service answering again without a restart.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Count

from tests.issuance.conftest import FOUR_VOUCHERS
from tests.processes import FAST_RECOVERY, PrivateRedis, Worker, manage, wait_for
from voucher_service.audit import verify_audit_chain
from vouchers.issuance.models import IssuanceChunk, IssuanceRun
from vouchers.ledger.verification import verify_ledger
from vouchers.models import Voucher

pytestmark = pytest.mark.slow
CUSTOMERS = 12_000


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


@pytest.fixture
def redis_server():
    server = PrivateRedis()
    yield server
    server.kill()


@pytest.mark.django_db(transaction=True)
def test_redis_lost_mid_run_then_back(make_campaign, load_registry, redis_server, tmp_path):
    campaign = make_campaign(slug="redis-fault", components=FOUR_VOUCHERS)
    load_registry(campaign, {cid: ("closed" if cid % 7 == 0 else "active")
                             for cid in range(1, CUSTOMERS + 1)})
    env = {**FAST_RECOVERY, "DATABASE_URL": _database_url(), "ISSUANCE_CHUNK_SIZE": "300",
           "CELERY_BROKER_URL": redis_server.url(0), "REDIS_URL": redis_server.url(1)}
    worker = Worker(env, tmp_path, "redis-fault")
    try:
        run_id = manage("issue_vouchers", "--campaign", "redis-fault",
                        env=env).strip().splitlines()[-1]
        chunks = IssuanceChunk.objects.filter(run_id=run_id)
        wait_for(lambda: chunks.filter(status="done").count() >= 4, timeout=60,
                 what=f"chunks being issued\n{worker.tail()}", interval=0.02)

        redis_server.kill()  # every queued dispatch and chunk message is lost with it
        wait_for(lambda: "Connection refused" in worker.log.read_text(errors="replace")
                 or "Error 111" in worker.log.read_text(errors="replace"),
                 timeout=30, what=f"the worker to notice the outage\n{worker.tail()}",
                 interval=0.2)
        assert chunks.exclude(status="done").exists(), "the run ended before the fault"
        redis_server.start()

        wait_for(lambda: IssuanceRun.objects.get(pk=run_id).status in ("completed", "failed"),
                 timeout=150, what=f"the run to end\n{worker.tail()}", interval=0.3)
    finally:
        worker.kill()

    assert IssuanceRun.objects.get(pk=run_id).status == "completed"
    sets = Voucher.objects.filter(campaign=campaign).values("registry_customer_id").annotate(
        n=Count("pk"))
    assert sets.count() == CUSTOMERS
    assert {s["n"] for s in sets} == {4}
    assert verify_ledger(campaign_id=campaign.pk).ok
    assert verify_audit_chain().ok
