"""The outbox: filled with the chunk, drained once per customer and kind, never a link."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.utils import timezone

from tests.issuance.conftest import EXCLUDED, STATUSES, drive
from vouchers.issuance import notifications
from vouchers.issuance.models import Notification
from vouchers.models import Voucher

pytestmark = pytest.mark.django_db
LINKISH = re.compile(r"https?:|www\.|://|\.(com|kr|net|org|ly)\b", re.IGNORECASE)


@pytest.fixture
def outbox_file(settings, tmp_path):
    settings.CUSTOMER_MESSAGING_BACKEND = "file"
    settings.CUSTOMER_MESSAGING_FILE_PATH = str(tmp_path / "messages.jsonl")
    settings.ISSUANCE_NOTIFY_RATE_PER_SECOND = 10_000
    return tmp_path / "messages.jsonl"


def _sent(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_issued_outbox_holds_active_and_dormant_only(campaign, approved_run):
    drive(approved_run)
    queued = set(Notification.objects.filter(kind="issued").values_list("customer_id", flat=True))
    expected = {c for c, s in STATUSES.items() if s != "closed" and c not in EXCLUDED}
    assert queued == expected


def test_drain_sends_each_once_without_links(campaign, approved_run, outbox_file):
    drive(approved_run)
    total = Notification.objects.count()
    assert notifications.drain(limit=10) == 10
    assert notifications.drain() == total - 10
    assert notifications.drain() == 0
    sent = _sent(outbox_file)
    assert len(sent) == total == len({m["customer_id"] for m in sent})
    for message in sent:
        assert set(message) == {"customer_id", "body", "sent_at"}
        assert "50,000 won" in message["body"] and "open the shop's app yourself" in message["body"]
        assert not LINKISH.search(message["body"]), message["body"]
    assert not Notification.objects.filter(sent_at__isnull=True).exists()


def test_expiry_reminders_for_unspent_active_vouchers(campaign, approved_run, outbox_file):
    drive(approved_run)
    Notification.objects.update(sent_at=timezone.now())
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
    [message] = _sent(outbox_file)
    assert message["customer_id"] == 1
    assert "5,000 won" in message["body"] and soon.astimezone().date().isoformat()[:4] in \
        message["body"]
    assert not LINKISH.search(message["body"])
