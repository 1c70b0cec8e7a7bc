"""Fault matrix, with real processes: Redis (broker and cache) lost mid-run, PostgreSQL
restarted under checkout traffic.

The issuance faults (worker SIGKILL, PostgreSQL restart mid-run) live in
tests/issuance/test_faults.py. After each fault: no voucher doubled or lost, the ledger
balanced, the audit chain intact, and the service answering again without a restart.
"""

from __future__ import annotations

import ast
import threading
import time

import pytest
import requests
from django.db import connection
from django.db.models import Count

from tests.issuance.conftest import FOUR_VOUCHERS
from tests.processes import (
    FAST_RECOVERY,
    Gunicorn,
    PrivateRedis,
    Worker,
    create_database,
    database_url,
    manage,
    query,
    wait_for,
)
from voucher_service.audit import verify_audit_chain
from vouchers.issuance.models import IssuanceChunk, IssuanceRun
from vouchers.ledger.verification import verify_ledger
from vouchers.models import Voucher

pytestmark = pytest.mark.slow
CUSTOMERS = 12_000


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
    env = {**FAST_RECOVERY, "DATABASE_URL": database_url(connection.settings_dict),
           "ISSUANCE_CHUNK_SIZE": "300", "CELERY_BROKER_URL": redis_server.url(0),
           "REDIS_URL": redis_server.url(1)}
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


_SEED_VOUCHERS = """
from vouchers.issuance.chunk import issue_chunk
from vouchers.models import Campaign
issue_chunk(campaign_id=Campaign.objects.get(slug="pg-fault").pk, lo=1, hi={customers} + 1,
            run_id=None, chunk_id=None)
"""


def test_postgres_restart_mid_redemption(cluster, tmp_path):
    """Checkout keeps redeeming (and retrying with the same Idempotency-Key, as a checkout
    must) while PostgreSQL restarts: every order is redeemed exactly once."""
    customers, orders_per_client, clients = 40, 25, 8
    url = cluster.url("redeem")
    env = {"DEBUG": "1", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    create_database(url)
    manage("migrate", "--noinput", env=env)
    manage("create_campaign", "--slug", "pg-fault", "--name", "PG fault",
           "--component", "all:50000", "--eligibility-opens-at", "2026-01-01T00:00:00+09:00",
           "--expires-at", "2099-01-01T00:00:00+09:00", env=env)
    registry = tmp_path / "registry.csv"
    registry.write_text("customer_id,account_status,account_closed_at,phone\n" + "".join(
        f"{cid},active,,010-5555-{cid:04d}\n" for cid in range(1, customers + 1)))
    manage("import_eligibility", "--campaign", "pg-fault", str(registry), env=env)
    manage("shell", "-c", _SEED_VOUCHERS.format(customers=customers), env=env)
    token = manage("create_principal", "--role", "checkout", "--name", "pos",
                   env=env).strip().splitlines()[-1]
    vouchers = query(url, "SELECT id, customer_id FROM vouchers_voucher ORDER BY id")
    public_ids = manage("shell", "-c", "from vouchers.identifiers import public_voucher_id; "
                        f"print([public_voucher_id(v) for v in {[v[0] for v in vouchers]}])",
                        env=env).strip().splitlines()[-1]
    targets = list(zip(ast.literal_eval(public_ids), [v[1] for v in vouchers], strict=True))

    server = Gunicorn(env, tmp_path)
    outcomes: dict[str, int] = {}
    retries = []
    lock = threading.Lock()

    def checkout(client: int) -> None:
        session = requests.Session()
        for n in range(orders_per_client):
            voucher, customer_id = targets[(client * orders_per_client + n) % len(targets)]
            key = f"order-{client}-{n}"
            body = {"voucher_id": voucher, "customer_id": customer_id, "order_id": key,
                    "amount_krw": 100, "order_total_krw": 1000, "merchant_category": "eats",
                    "capture": True}
            deadline = time.monotonic() + 90
            while True:
                try:
                    response = session.post(server.url("/api/v1/redemptions"), json=body,
                                            timeout=10, headers={
                                                "Authorization": f"Bearer {token}",
                                                "Idempotency-Key": key})
                    if response.status_code < 500 and response.status_code != 409:
                        break
                except requests.RequestException:
                    pass
                with lock:
                    retries.append(key)
                assert time.monotonic() < deadline, f"{key} never went through"
                time.sleep(0.2)
            with lock:
                outcomes[key] = response.status_code

    try:
        threads = [threading.Thread(target=checkout, args=(c,)) for c in range(clients)]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(outcomes) >= 30, timeout=60, what="redemptions before the fault")
        cluster.stop("fast")
        time.sleep(2)
        cluster.start()
        for thread in threads:
            thread.join(timeout=120)
        assert retries, "the restart landed after every order"
        assert wait_for(lambda: server.status("/readyz") == 200, timeout=30,
                        what="the service to answer again without a restart")
    finally:
        server.stop()

    assert set(outcomes.values()) == {201}, outcomes
    redeemed = query(url, "SELECT count(*), count(DISTINCT order_id), sum(amount_krw) "
                           "FROM redemption_redemption")
    orders = clients * orders_per_client
    assert redeemed == [(orders, orders, orders * 100)]
    balances = query(url, "SELECT sum(amount_krw - balance_krw) FROM vouchers_voucher")
    assert balances == [(orders * 100,)]
    assert "ledger ok" in manage("verify_ledger", env=env)
    assert "intact" in manage("verify_audit_chain", env=env).lower()
