"""Sending a text message: the backend named by ``SMS_BACKEND``.

* ``console`` (development): one log line with the number masked to its last two digits
  and the body (the developer needs the code; never use it in production).
* ``file``: one JSON file ``{"to", "body", "sent_at"}`` per message in ``SMS_FILE_PATH``,
  written to a temporary name and renamed, so a reader never sees half a message.
* ``http``: ``POST SMS_HTTP_URL`` with ``{"to", "body"}``, a bearer token and the message
  id as ``Idempotency-Key`` (a retried POST must not text twice where the provider
  honours it), through a ``requests`` session whose urllib3 ``Retry`` retries connection
  errors, read timeouts and 429/5xx answers with exponential backoff, each try bounded by
  (connect, read) timeouts.

Backends are told the number only to send to it: none stores or logs it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Protocol

import requests
from django.conf import settings
from django.utils import timezone
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

logger = logging.getLogger(__name__)


class SmsBackend(Protocol):
    def send(self, *, to: str, body: str, message_id: str) -> None: ...


def mask_phone(phone: str) -> str:
    return "*" * max(0, len(phone) - 2) + phone[-2:]


class ConsoleBackend:
    def send(self, *, to: str, body: str, message_id: str) -> None:
        logger.info("sms", extra={"to": mask_phone(to), "body": body, "message_id": message_id})


class FileBackend:
    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def send(self, *, to: str, body: str, message_id: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        sent_at = timezone.now()
        record = {"to": to, "body": body, "sent_at": sent_at.isoformat()}
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(record, out, ensure_ascii=False)
        os.replace(temporary, self.directory / f"{sent_at:%Y%m%dT%H%M%S%f}-{message_id}.json")


class HttpBackend:
    def __init__(self, url: str, token: str, *, connect_timeout: float, read_timeout: float,
                 retries: int, backoff_factor: float) -> None:
        self.url = url
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        retry = Retry(total=retries, connect=retries, read=retries, status=retries,
                      backoff_factor=backoff_factor, status_forcelist=(429, 500, 502, 503, 504),
                      allowed_methods=frozenset({"POST"}), respect_retry_after_header=True)
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))

    def send(self, *, to: str, body: str, message_id: str) -> None:
        """Raises ``requests.RequestException`` once the retries are spent."""
        response = self.session.post(self.url, json={"to": to, "body": body},
                                     headers={"Idempotency-Key": message_id},
                                     timeout=self.timeout)
        response.raise_for_status()


def sms_backend() -> SmsBackend:
    name = settings.SMS_BACKEND
    if name == "console":
        return ConsoleBackend()
    if name == "file":
        return FileBackend(settings.SMS_FILE_PATH)
    if name == "http":
        return HttpBackend(
            settings.SMS_HTTP_URL, settings.SMS_HTTP_TOKEN,
            connect_timeout=settings.SMS_HTTP_CONNECT_TIMEOUT_SECONDS,
            read_timeout=settings.SMS_HTTP_READ_TIMEOUT_SECONDS,
            retries=settings.SMS_HTTP_RETRIES,
            backoff_factor=settings.SMS_HTTP_BACKOFF_SECONDS,
        )
    raise ValueError(f"unknown SMS_BACKEND {name!r} (console, file, http)")
