"""Checkout, issuance, claims and the export through the production topology: two web
nodes, two workers and one beat, every connection through PgBouncer in transaction
pooling mode (``stack``, tests/topology/conftest.py)."""

from __future__ import annotations

import csv
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import settings

from accounts.services import create_principal
from tests.identity_provider import SigningKey
from tests.issuance.conftest import FOUR_VOUCHERS
from tests.processes import wait_for
from voucher_service.audit import verify_audit_chain
from voucher_service.phones import phone_hash
from vouchers.identifiers import public_voucher_id
from vouchers.issuance.chunk import issue_chunk
from vouchers.issuance.models import IssuanceChunk, IssuanceRun
from vouchers.ledger.verification import verify_ledger
from vouchers.models import RegistryEntry, Voucher
from vouchers.redemption.models import Redemption

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def issued_campaign(make_campaign, load_registry, slug: str, customers: int, **statuses):
    campaign = make_campaign(slug=slug)
    load_registry(campaign, {cid: statuses.get(str(cid), "active")
                             for cid in range(1, customers + 1)})
    issue_chunk(campaign_id=campaign.pk, lo=1, hi=customers + 1, run_id=None, chunk_id=None)
    return campaign


def checkout_body(voucher: Voucher, order: str, amount: int = 1_000) -> dict:
    return {"voucher_id": public_voucher_id(voucher.pk), "customer_id": voucher.customer_id,
            "order_id": order, "amount_krw": amount, "order_total_krw": amount,
            "merchant_category": "eats", "capture": True}


def test_each_checkout_sent_to_both_web_nodes_at_once_is_redeemed_once_and_exported(
        stack, make_campaign, load_registry):
    """Every order goes to both nodes at the same moment with one Idempotency-Key (a
    client retrying on the other node): both answer 201 with the same redemption, one
    redemption per order exists, the books balance, and the streamed export through the
    pooler lists every one."""
    campaign = issued_campaign(make_campaign, load_registry, "stack-checkout", 20)
    vouchers = list(Voucher.objects.filter(campaign=campaign).order_by("pk"))
    _, checkout = create_principal(role="checkout", name="stack-pos")
    _, finance = create_principal(role="finance", name="stack-finance")
    orders = [(f"order-{n}", vouchers[n % len(vouchers)]) for n in range(40)]

    def send(node, order: str, voucher: Voucher) -> requests.Response:
        return requests.post(node.url("/api/v1/redemptions"), timeout=30,
                             json=checkout_body(voucher, order),
                             headers=bearer(checkout, **{"Idempotency-Key": order}))

    with ThreadPoolExecutor(16) as pool:
        answers = {order: [pool.submit(send, node, order, voucher) for node in stack.web]
                   for order, voucher in orders}
        answers = {order: [f.result() for f in pair] for order, pair in answers.items()}

    for order, pair in answers.items():
        assert [a.status_code for a in pair] == [201, 201], (order, [a.text for a in pair])
        assert len({a.json()["id"] for a in pair}) == 1
    assert Redemption.objects.filter(campaign=campaign).count() == len(orders)
    spent = sum(50_000 - v.balance_krw for v in Voucher.objects.filter(campaign=campaign))
    assert spent == 1_000 * len(orders)
    assert verify_ledger(campaign_id=campaign.pk).ok
    assert verify_audit_chain().ok

    export = requests.get(stack.web[1].url("/api/v1/finance/redemptions/export"),
                          params={"campaign": campaign.slug}, headers=bearer(finance),
                          timeout=30)
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert sorted(r["order_id"] for r in rows) == sorted(order for order, _ in orders)


def test_a_run_created_on_one_node_and_approved_on_the_other_is_issued_by_both_workers(
        stack, make_campaign, load_registry):
    campaign = make_campaign(slug="stack-run", components=FOUR_VOUCHERS)
    customers = 3_000
    load_registry(campaign, {cid: "closed" if cid % 7 == 0 else "active"
                             for cid in range(1, customers + 1)})
    _, creator = create_principal(role="operations", name="stack-ops-1")
    _, approver = create_principal(role="operations", name="stack-ops-2")
    created = requests.post(stack.web[0].url(f"/api/v1/campaigns/{campaign.slug}/issuance-runs"),
                            json={"dry_run": False}, headers=bearer(creator), timeout=30)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    approved = requests.post(stack.web[1].url(f"/api/v1/issuance-runs/{run_id}/approve"),
                             headers=bearer(approver), timeout=30)
    assert approved.status_code == 200, approved.text

    wait_for(lambda: IssuanceRun.objects.get(pk=run_id).status == "completed", timeout=90,
             what=f"the run to complete\n{stack.logs()}", interval=0.3)
    assert Voucher.objects.filter(campaign=campaign).count() == customers * 4
    chunks = IssuanceChunk.objects.filter(run_id=run_id).count()
    issued_by = [len(re.findall(r"issuance\.issue_chunk\[[^]]+\] succeeded", worker.text()))
                 for worker in stack.workers]
    assert sum(issued_by) >= chunks and all(issued_by), issued_by
    assert verify_ledger(campaign_id=campaign.pk).ok


def test_a_closed_accounts_vouchers_are_claimed_across_nodes_with_a_key_set_token(
        stack, make_campaign, load_registry):
    """A customer signed in with a token of the identity provider's key set starts the
    claim on one node; a worker texts the code; the customer confirms on the other node."""
    campaign = issued_campaign(make_campaign, load_registry, "stack-claim", 10, **{"3": "closed"})
    phone = "010-5555-0003"
    RegistryEntry.objects.filter(campaign=campaign, customer_id=3).update(
        phone_hash=phone_hash(phone, key=settings.PHONE_HASH_KEY))
    token = stack.identity.token(900_003)
    started = requests.post(stack.web[0].url("/api/v1/claims/closed-account"), timeout=30,
                            json={"campaign": campaign.slug, "phone": phone},
                            headers=bearer(token))
    assert started.status_code == 202, started.text

    def code() -> str | None:
        for message in stack.sms.glob("*.json") if stack.sms.exists() else ():
            found = re.search(r"\b(\d{6})\b", json.loads(message.read_text())["body"])
            if found:
                return found.group(1)
        return None

    sent = wait_for(code, timeout=30, what=f"the claim code's message\n{stack.logs()}",
                    interval=0.2)
    confirmed = requests.post(
        stack.web[1].url(f"/api/v1/claims/closed-account/{started.json()['challenge_id']}"
                         "/confirm"), json={"code": sent}, headers=bearer(token), timeout=30)
    assert confirmed.status_code == 200, confirmed.text
    assert Voucher.objects.get(campaign=campaign, registry_customer_id=3).customer_id == 900_003
    assert verify_ledger(campaign_id=campaign.pk).ok


def test_a_token_of_an_unknown_key_is_refused_by_every_node(stack):
    stranger = SigningKey("not-published")
    for node in stack.web:
        answer = requests.get(node.url("/api/v1/me/vouchers"), timeout=30,
                              headers=bearer(stranger.token(5)))
        assert answer.status_code == 401
        assert requests.get(node.url("/api/v1/me/vouchers"), timeout=30,
                            headers=bearer(stack.identity.token(5))).status_code == 200

