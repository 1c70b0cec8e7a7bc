"""SIGTERM mid-work, with real processes through the pooler: a gunicorn worker or master
stopped while a checkout waits inside its transaction answers that checkout, and the
client's retry with the same Idempotency-Key replays it; a Celery worker stopped while a
chunk waits inside its transaction finishes and acknowledges that chunk before it exits,
and the other worker issues the rest. Nothing is doubled, nothing answers 5xx."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import psycopg
import pytest
import requests
from django.db.models import Count

from accounts.services import create_principal
from tests.processes import Gunicorn, Worker, query, wait_for
from tests.topology.test_stack import bearer, checkout_body, issued_campaign
from vouchers.eligibility.registered import _ISSUANCE_LOCK_CLASS
from vouchers.issuance import services
from vouchers.issuance.models import IssuanceChunk, IssuanceRun
from vouchers.ledger.verification import verify_ledger
from vouchers.models import Voucher
from vouchers.redemption.models import Redemption

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def waiting_on_a_lock(url: str) -> int:
    """Sessions of the test database waiting for a lock (the pooler's server connections
    included)."""
    return query(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                      "current_database() AND wait_event_type = 'Lock'")[0][0]


@pytest.mark.parametrize("stopped", ["worker", "master"])
def test_sigterm_to_gunicorn_mid_checkout_answers_it_and_the_retry_replays_it(
        stack, make_campaign, load_registry, tmp_path, stopped):
    """The checkout waits for its voucher's row lock (held here) when its gunicorn worker,
    or the node's master (a deployment stopping the node), gets SIGTERM. Once the lock is
    let go, the checkout answers 201; the client's retry with the same key, on the same
    node's next worker or on the other node, replays it."""
    campaign = issued_campaign(make_campaign, load_registry, f"sigterm-{stopped}", 2)
    voucher = Voucher.objects.filter(campaign=campaign).order_by("pk").first()
    _, token = create_principal(role="checkout", name=f"sigterm-pos-{stopped}")
    node = Gunicorn(stack.env, tmp_path, f"web-{stopped}", workers=1)
    body = checkout_body(voucher, "order-1")
    headers = bearer(token, **{"Idempotency-Key": "order-1"})
    answers: list[requests.Response | Exception] = []

    def checkout() -> None:
        try:
            answers.append(requests.post(node.url("/api/v1/redemptions"), json=body,
                                         headers=headers, timeout=60))
        except requests.RequestException as exc:
            answers.append(exc)

    try:
        with psycopg.connect(stack.direct_url.replace("postgres://", "postgresql://")) as held:
            held.execute("SELECT 1 FROM vouchers_voucher WHERE id = %s FOR UPDATE",
                         [voucher.pk])
            client = threading.Thread(target=checkout)
            client.start()
            wait_for(lambda: waiting_on_a_lock(stack.direct_url), timeout=30,
                     what="the checkout to wait for the voucher's lock")
            (worker,) = node.workers()
            target = worker if stopped == "worker" else node.process.pid
            os.kill(target, signal.SIGTERM)
            client.join(timeout=1)
            assert client.is_alive(), "the checkout ended before the lock was let go"
        client.join(timeout=30)
        (first,) = answers
        assert isinstance(first, requests.Response), f"the checkout was cut off: {first}"
        assert first.status_code == 201, first.text
        if stopped == "worker":
            wait_for(lambda: node.workers() and worker not in node.workers()
                     and node.status("/healthz") == 200, timeout=30,
                     what="the master to replace its worker")
            retry_node = node
        else:
            node.process.wait(timeout=30)
            retry_node = stack.web[0]
        retry = requests.post(retry_node.url("/api/v1/redemptions"), json=body,
                              headers=headers, timeout=30)
    finally:
        node.stop()
    assert retry.status_code == 201
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json()["id"] == first.json()["id"]
    assert Redemption.objects.filter(order_id="order-1").count() == 1
    assert verify_ledger(campaign_id=campaign.pk).ok


def test_sigterm_to_a_celery_worker_mid_chunk_finishes_its_chunks_before_it_exits(
        stack, make_campaign, load_registry, settings):
    """The stack's workers each hold chunks waiting for the campaign's issuance lock (held
    here) when one of them gets SIGTERM (a deployment stopping it). It takes no new message,
    finishes every chunk it had started once the lock is let go, acknowledges them and
    exits cleanly; the other worker issues the rest. Stale-chunk recovery is minutes away
    in this stack, so the run completes only if no chunk was abandoned."""
    settings.ISSUANCE_CHUNK_SIZE = int(stack.env["ISSUANCE_CHUNK_SIZE"])
    campaign = make_campaign(slug="sigterm-chunk")
    customers = 3_000
    load_registry(campaign, {cid: "active" for cid in range(1, customers + 1)})
    run = services.create_run(campaign=campaign, actor="alice", dry_run_only=False)
    _, approver = create_principal(role="operations", name="sigterm-approver")
    chunks = IssuanceChunk.objects.filter(run=run)
    stopping, other = stack.workers
    try:
        with psycopg.connect(stack.direct_url.replace("postgres://", "postgresql://")) as held:
            held.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                         [_ISSUANCE_LOCK_CLASS, campaign.pk])
            approved = requests.post(stack.web[0].url(f"/api/v1/issuance-runs/{run.pk}/approve"),
                                     headers=bearer(approver), timeout=30)
            assert approved.status_code == 200, approved.text
            wait_for(lambda: chunks.filter(status="running").count() >= 2
                     and all(_chunks_received(worker) for worker in stack.workers),
                     timeout=60, what=f"both workers to wait for the lock\n{stack.logs()}")
            stopping.terminate()
            time.sleep(2)
            assert stopping.process.poll() is None, "the worker exited with its chunks open"
        assert stopping.process.wait(timeout=60) == 0, stopping.tail()
        started = _chunks_received(stopping)
        assert started and started == set(re.findall(
            r"issuance\.issue_chunk\[([^]]+)\] succeeded", stopping.text())), stopping.tail()
        wait_for(lambda: IssuanceRun.objects.get(pk=run.pk).status == "completed",
                 timeout=60, what=f"the run to complete\n{other.tail()}", interval=0.3)
    finally:
        stopping.kill()
        stack.workers = (Worker(stack.env, stack.workdir, "worker-a-again", beat=False), other)
    per_customer = Voucher.objects.filter(campaign=campaign).values(
        "registry_customer_id").annotate(n=Count("pk"))
    assert per_customer.count() == customers and {row["n"] for row in per_customer} == {1}
    assert verify_ledger(campaign_id=campaign.pk).ok


def _chunks_received(worker: Worker) -> set[str]:
    return set(re.findall(r"issuance\.issue_chunk\[([^]]+)\] received", worker.text()))
