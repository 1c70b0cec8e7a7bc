"""Telling a customer something, by customer id.

We hold no phone number (the registry keeps only a keyed hash), so the outbox hands the
shop's messaging a customer id and a body; the shop resolves how to reach that customer.
The backend is chosen by ``CUSTOMER_MESSAGING_BACKEND``: ``log`` (default) writes one JSON
log line per message, ``file`` appends ``{"customer_id", "body", "sent_at"}`` as a JSON
line to ``CUSTOMER_MESSAGING_FILE_PATH``. A production backend calls the shop's service.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)


class CustomerMessenger(Protocol):
    def send(self, *, customer_id: int, body: str) -> None: ...


def _record(customer_id: int, body: str) -> dict:
    return {"customer_id": customer_id, "body": body, "sent_at": timezone.now().isoformat()}


class LogMessenger:
    def send(self, *, customer_id: int, body: str) -> None:
        logger.info("customer message", extra={"message": _record(customer_id, body)})


class FileMessenger:
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def send(self, *, customer_id: int, body: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(_record(customer_id, body), ensure_ascii=False) + "\n")


def messenger() -> CustomerMessenger:
    backend = settings.CUSTOMER_MESSAGING_BACKEND
    if backend == "log":
        return LogMessenger()
    if backend == "file":
        return FileMessenger(settings.CUSTOMER_MESSAGING_FILE_PATH)
    raise ValueError(f"unknown CUSTOMER_MESSAGING_BACKEND {backend!r} (log, file)")
