"""The outboxes: one issued notice per chunk, each customer told at most once per kind, at
the configured rate, never with a link, closed accounts never."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest
from django.db.models import F
from django.utils import timezone

from tests.issuance.conftest import EXCLUDED, STATUSES, drive
from vouchers.issuance import notifications, services
from vouchers.issuance.models import IssuanceChunk, IssuedNotice, Notification
from vouchers.models import Component, Voucher

pytestmark = pytest.mark.django_db
LINKISH = re.compile(r"https?:|www\.|://|\.(com|kr|net|org|ly)\b", re.IGNORECASE)
TOLD = {c for c, s in STATUSES.items() if s != "closed" and c not in EXCLUDED}


@pytest.fixture
def outbox_file(settings, tmp_path):
    settings.CUSTOMER_MESSAGING_BACKEND = "file"
    settings.CUSTOMER_MESSAGING_FILE_PATH = str(tmp_path / "messages.jsonl")
    settings.ISSUANCE_NOTIFY_RATE_PER_SECOND = 10_000
    return tmp_path / "messages.jsonl"


def _sent(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _drain_all() -> int:
    total = 0
    while sent := notifications.drain(limit=7):
        total += sent
    return total


def _second_run(campaign):
    run = services.create_run(campaign=campaign, actor="ops-a", dry_run_only=False)
    services.approve_run(run_id=run.pk, actor="ops-b")
    return drive(run.pk)


def test_one_notice_per_chunk_telling_active_and_dormant_only(campaign, approved_run,
                                                              outbox_file):
    run = drive(approved_run)
    assert IssuedNotice.objects.count() == IssuanceChunk.objects.filter(run=run).count() > 1
    assert not Notification.objects.exists()
    assert _drain_all() == len(TOLD)
    assert {m["customer_id"] for m in _sent(outbox_file)} == TOLD


def test_drain_sends_each_once_without_links(campaign, approved_run, outbox_file):
    drive(approved_run)
    assert notifications.drain(limit=10) == 10
    assert notifications.drain() == len(TOLD) - 10
    assert notifications.drain() == 0
    sent = _sent(outbox_file)
    assert len(sent) == len(TOLD) == len({m["customer_id"] for m in sent})
    for message in sent:
        assert set(message) == {"customer_id", "body", "sent_at"}
        assert "50,000 won" in message["body"] and "open the shop's app yourself" in message["body"]
        assert not LINKISH.search(message["body"]), message["body"]
    assert not IssuedNotice.objects.filter(next_customer_id__lt=F("hi")).exists()


def test_a_failed_hand_over_loses_the_batch_rather_than_repeating_it(
        campaign, approved_run, outbox_file, settings, tmp_path):
    drive(approved_run)
    (tmp_path / "blocked").write_text("a file where the messenger wants a directory")
    settings.CUSTOMER_MESSAGING_FILE_PATH = str(tmp_path / "blocked" / "messages.jsonl")
    with pytest.raises(OSError):
        notifications.drain(limit=5)
    settings.CUSTOMER_MESSAGING_FILE_PATH = str(outbox_file)
    assert _drain_all() == len(TOLD) - 5
    assert len({m["customer_id"] for m in _sent(outbox_file)}) == len(TOLD) - 5


def test_later_runs_tell_only_customers_new_to_the_campaign(campaign, approved_run,
                                                            load_registry, outbox_file):
    drive(approved_run)
    assert _drain_all() == len(TOLD)
    load_registry(campaign, {61: "active", 62: "closed", 63: "dormant"})
    Component.objects.create(campaign=campaign, category="extra", amount_krw=1_000,
                             expires_at=timezone.now() + dt.timedelta(days=90))
    _second_run(campaign)  # issues "extra" to everyone and all five to 61..63
    assert Voucher.objects.filter(category="extra").count() == len(STATUSES) - len(EXCLUDED) + 3
    assert _drain_all() == 2
    assert [m["customer_id"] for m in _sent(outbox_file)[len(TOLD):]] == [61, 63]


def test_claimed_closed_accounts_are_not_told(campaign, approved_run, outbox_file):
    drive(approved_run)
    # Customer 3's account is closed: a claim moves its vouchers to the new account.
    Voucher.objects.filter(registry_customer_id=3).update(customer_id=9_003, status="active")
    assert _drain_all() == len(TOLD)
    assert {m["customer_id"] for m in _sent(outbox_file)} == TOLD


def test_drain_keeps_the_rate_limit(campaign, approved_run, outbox_file, settings):
    drive(approved_run)
    settings.ISSUANCE_NOTIFY_RATE_PER_SECOND = 20
    started = time.monotonic()
    assert notifications.drain(limit=11) == 11
    assert time.monotonic() - started >= 10 / 20


def test_expiry_reminders_for_unspent_active_vouchers(campaign, approved_run, outbox_file):
    drive(approved_run)
    _drain_all()
    outbox_file.unlink()
    soon = timezone.now() + dt.timedelta(days=20)
    Voucher.objects.filter(registry_customer_id__in=[1, 2, 3], category="all").update(
        expires_at=soon)
    Voucher.objects.filter(registry_customer_id=2, category="all").update(
        balance_krw=0, status="exhausted")
    Voucher.objects.filter(registry_customer_id=4, category="all").update(
        expires_at=timezone.now() + dt.timedelta(days=40))
    # 1: active, unspent, due -> reminded. 2: spent. 3: closed (unclaimed). 4: not due yet.
    assert notifications.enqueue_expiry_reminders() == 1
    assert notifications.enqueue_expiry_reminders() == 0
    assert notifications.drain() == 1
    assert notifications.drain() == 0
    [message] = _sent(outbox_file)
    assert message["customer_id"] == 1
    assert "5,000 won" in message["body"] and soon.astimezone().date().isoformat()[:4] in \
        message["body"]
    assert not LINKISH.search(message["body"])
