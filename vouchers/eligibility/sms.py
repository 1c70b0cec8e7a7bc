"""The claim code's text message: its wording, its sealed outbox envelope, its delivery.

Starting a claim does the same work whether or not the phone matches: it renders the
message, seals ``{"to", "body", "send"}`` with Fernet (AES-128-CBC + HMAC, from
``cryptography``) under a key derived from ``SECRET_KEY``, stores the envelope in the
challenge row and, after the commit, names the challenge to a Celery task. Only the task
opens the envelope and, where ``send`` is set, talks to the SMS provider, so the
provider's latency never shows in the claim's response time, and the broker carries
challenge ids only. The envelope is cleared when the task takes it (before sending: a
crash loses a message, the customer asks again, rather than texting twice) and is
unreadable once the code has expired (Fernet's own timestamp check).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
from uuid import UUID

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from requests import RequestException

from voucher_service.sms import sms_backend
from vouchers.eligibility.models import ClaimChallenge

logger = logging.getLogger(__name__)
# A challenge whose task has not taken its envelope this long after creation lost it.
LOST_AFTER = dt.timedelta(seconds=30)


def claim_code_message(code: str) -> str:
    """No link, no name of a site: people who were just harmed by a leak are the target of
    phishing texts that carry both."""
    minutes = settings.CLAIM_CODE_TTL_SECONDS // 60
    return (
        f"Your compensation voucher claim code is {code}. It expires in {minutes} minutes. "
        "Open the shop's app yourself and enter it there. We never send links and never "
        "ask for this code by phone. If you did not ask for it, ignore this message."
    )


def _fernet() -> Fernet:
    key = hmac.new(settings.SECRET_KEY.encode(), b"claim-sms-outbox", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(*, to: str, body: str, send: bool) -> bytes:
    # "send" as 0/1 keeps both envelopes the same length.
    plain = json.dumps({"to": to, "body": body, "send": int(send)}, separators=(",", ":"))
    return _fernet().encrypt(plain.encode())


def unseal(envelope: bytes) -> dict | None:
    """The message, or None once the code it carries has expired."""
    try:
        return json.loads(_fernet().decrypt(envelope, ttl=settings.CLAIM_CODE_TTL_SECONDS))
    except InvalidToken:
        return None


def deliver(*, challenge_id: UUID) -> bool:
    """Takes the challenge's envelope and sends it if it is to be sent; True if sent."""
    with transaction.atomic():
        challenge = (ClaimChallenge.objects.select_for_update(skip_locked=True)
                     .filter(pk=challenge_id, outbox__isnull=False).first())
        if challenge is None:
            return False
        envelope = bytes(challenge.outbox)
        challenge.outbox = None
        challenge.save(update_fields=["outbox"])
    message = unseal(envelope)
    if message is None or not message["send"]:
        return False
    try:
        sms_backend().send(to=message["to"], body=message["body"], message_id=str(challenge_id))
    except (RequestException, OSError):
        # Ids only: the exception text could carry the request (and so the number).
        logger.error("claim code SMS failed", extra={"challenge_id": str(challenge_id)})
        return False
    return True


def sweep() -> int:
    """Periodic: delivers envelopes whose task message was lost (or clears expired ones)."""
    stale = (ClaimChallenge.objects
             .filter(outbox__isnull=False, created_at__lt=timezone.now() - LOST_AFTER)
             .order_by("created_at").values_list("pk", flat=True)[:1000])
    return sum(deliver(challenge_id=challenge_id) for challenge_id in stale)
