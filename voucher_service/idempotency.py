"""Idempotency keys for write endpoints, with Stripe's semantics.

``@idempotent`` wraps a DRF view method (``post``). The caller sends an
``Idempotency-Key`` header (required: 400 ``idempotency_key_required``); keys are kept per
caller. The first request with a key runs and its response is stored; a retry with the
same key and the same request (method, path, canonical JSON body) gets the stored response
again, marked ``Idempotent-Replayed: true``, without a second effect; the same key with
another request is 422 ``idempotency_key_reused``. Client errors (4xx) are stored and
replayed like successes; server errors (5xx) are not stored, so the retry runs afresh.

Why one transaction rather than a key row committed first: the key row is inserted with
the response in the same transaction as the request's effect, so the effect and its stored
answer commit together or not at all. There is no "in progress" row that a crash could
leave behind, and nothing to recover. Concurrent requests with one key meet on a
transaction-scoped advisory lock of (caller, key), tried without waiting, with the look-up
of a committed answer in the same round trip (a statement of its own, so that its snapshot
is taken once the lock is held: whoever held the lock before has committed or rolled back).
A request that finds it held waits for the holder's transaction to end, at most
``IDEMPOTENCY_KEY_WAIT_MS`` (else 409 ``idempotency_key_in_use``), and then replays the
committed answer, or runs itself if the holder rolled back. Only a request holding the lock
inserts the key row; the unique constraint on (caller, key) stays the guarantee, the lock
spares the waiting on it.

The view runs in that transaction without a savepoint of its own (two round trips fewer),
and the claim and the stored answer are raw SQL: on the checkout path, every statement
through the ORM costs several times its round trip in Python. The row is written once,
with its answer, at the end: one tuple and its index entries, where a row inserted at the
claim and updated with the answer wrote two.
When it raises a client error, the transaction is rolled back whole and the problem is
stored in a short transaction of its own, claiming the key again; should another request
with the same key have committed in between, its answer is the one replayed.

A hot endpoint can do all of that in one round trip: ``@idempotent(at_once=...)`` first
hands the request, with its ``Claim``, to a function that runs the effect as a routine
(``voucher_service.routines``) in a transaction of its own: the claim's guards (the key's
lock, tried without waiting, and no committed answer), the effect, and the key row
inserted with its answer (``store_statement``), which the database completes
(``answer_template``, ``Filled``). When that function returns None (the key is in use or
used, or the effect did not happen) the request takes the general path above, afresh; what
it raises is answered, and stored, as there. Inside a transaction of the caller's (tests)
only the general path runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request
from rest_framework.response import Response

from voucher_service.integrity import lock_not_available
from voucher_service.models import IdempotencyKey
from voucher_service.problems import PROBLEM_CONTENT_TYPE, ProblemError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Printable ASCII without spaces, as Stripe accepts (UUIDs, ULIDs, order ids).
_KEY_FORMAT = re.compile(r"[\x21-\x7e]{1,255}")
MIN_TTL_HOURS = 24

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name=HEADER, type=OpenApiTypes.STR, location=OpenApiParameter.HEADER, required=True,
    description="A unique key per intended operation (e.g. a UUID); retries reuse it.",
)

# pg_advisory_xact_lock(int, int) key space: (this constant, hash of caller and key).
_KEY_LOCK_CLASS = 0x4944  # "ID"
_LOCK_ARGUMENTS = ("%(idempotency_lock_class)s, "
                   "hashtext(%(idempotency_owner)s || ' ' || %(idempotency_key)s)")
_LOOKUP = """
    SELECT fingerprint, status_code, response_body FROM voucher_service_idempotencykey
    WHERE owner = %(idempotency_owner)s AND key = %(idempotency_key)s
"""
# One round trip on the common path: try the lock without waiting, then (a statement of its
# own, with its own snapshot) look up a committed answer.
_CLAIM = f"SELECT pg_try_advisory_xact_lock({_LOCK_ARGUMENTS}); {_LOOKUP}"
_WAIT = f"SELECT pg_advisory_xact_lock({_LOCK_ARGUMENTS})"
_INSERT = """
    INSERT INTO voucher_service_idempotencykey
        (owner, key, fingerprint, created_at, status_code, response_body)
"""
_STORE = f"{_INSERT} VALUES (%s, %s, %s, %s, %s, %s)"


@dataclass(frozen=True)
class Claim:
    """A request's claim of its key: who sent it, the key, the request's fingerprint."""

    owner: str
    key: str
    fingerprint: str

    # A routine's guards: the key's lock, tried without waiting, then (a statement of its
    # own) no committed answer under the key.
    GUARDS = (f"pg_try_advisory_xact_lock({_LOCK_ARGUMENTS})",
              f"NOT EXISTS ({' '.join(_LOOKUP.split())})")

    def params(self, **stored: Any) -> dict[str, Any]:
        """The parameters of ``GUARDS`` and of ``store_statement`` (``stored``: its
        ``status`` and ``answer``)."""
        return {"idempotency_lock_class": _KEY_LOCK_CLASS, "idempotency_owner": self.owner,
                "idempotency_key": self.key, "idempotency_fingerprint": self.fingerprint,
                **{f"idempotency_{name}": value for name, value in stored.items()}}


def store_statement(*, answer: str, source: str) -> str:
    """The key row's insert, for a routine that runs the request: ``answer`` is an SQL
    expression of the answer's text over ``source``, a FROM clause that yields one row
    when the request had its effect (none otherwise: nothing is stored)."""
    # This module's SQL and the caller's: no value is written into the text.
    values = ("%(idempotency_owner)s, %(idempotency_key)s, %(idempotency_fingerprint)s, "
              "now(), %(idempotency_status)s")
    sql = f"{_INSERT} SELECT {values}, {answer} FROM {source}"  # noqa: S608  # nosec B608
    return " ".join(sql.split())


class Filled:
    """A value of an answer that the database fills in as it stores the answer: the
    ``position``-th argument of the ``format()`` over ``answer_template``."""

    def __init__(self, position: int) -> None:
        self.position = position

    def mark(self) -> str:
        return f"\0{self.position}\0"


class _TemplateEncoder(DjangoJSONEncoder):
    def default(self, o: Any) -> Any:
        return o.mark() if isinstance(o, Filled) else super().default(o)


def answer_template(data: Any) -> str:
    """The answer's JSON text, as stored, for PostgreSQL's ``format()``: each ``Filled``
    value written ``%n$s``, every other '%' doubled."""
    text = json.dumps(data, cls=_TemplateEncoder).replace("%", "%%")
    return re.sub(r'"\\u0000(\d+)\\u0000"', r"%\1$s", text)


def request_fingerprint(request: Request) -> str:
    """SHA-256 over method, path and the body as canonical JSON (sorted keys, no spaces)."""
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      cls=DjangoJSONEncoder)
    return hashlib.sha256(f"{request.method}\n{request.path}\n{body}".encode()).hexdigest()


def _key_from(request: Request) -> str:
    key = request.headers.get(HEADER)
    if not key:
        raise ProblemError(status=400, code="idempotency_key_required",
                           detail=f"Send an {HEADER} header with every POST here.")
    if not _KEY_FORMAT.fullmatch(key):
        raise ProblemError(status=400, code="idempotency_key_invalid",
                           detail=f"{HEADER} must be 1 to 255 printable ASCII characters.")
    return key


def _wait_for_other_request(cursor, params: dict[str, Any]) -> None:
    """Blocks until the request holding the key's lock ends, at most the configured wait;
    the lock is then ours until this transaction ends."""
    cursor.execute("SELECT set_config('lock_timeout', %s, true)",
                   [f"{settings.IDEMPOTENCY_KEY_WAIT_MS}ms"])
    try:
        cursor.execute(_WAIT, params)
    except OperationalError as exc:
        if lock_not_available(exc):
            raise ProblemError(
                status=409, code="idempotency_key_in_use",
                detail="A request with this idempotency key is still being processed; "
                       "retry shortly.",
            ) from exc
        raise
    cursor.execute("SET LOCAL lock_timeout TO DEFAULT")


def claim_key(*, owner: str, key: str) -> IdempotencyKey | None:
    """Holds the key's lock until this transaction ends (waiting first while another request
    with the key is in flight) and returns what a committed request stored under the key,
    or None: the key is this request's. Call inside the request's transaction."""
    params = Claim(owner=owner, key=key, fingerprint="").params()
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM, params)
        held = cursor.fetchone()[0]
        cursor.nextset()
        row = cursor.fetchone()
        if not held:
            _wait_for_other_request(cursor, params)
            cursor.execute(_LOOKUP, params)
            row = cursor.fetchone()
    if row is None:
        return None
    fingerprint, status_code, response_body = row
    return IdempotencyKey(owner=owner, key=key, fingerprint=fingerprint,
                          status_code=status_code, response_body=response_body)


def _claim(claim: Claim) -> IdempotencyKey | None:
    """Claims the key for this request (None), or returns the committed row to replay."""
    row = claim_key(owner=claim.owner, key=claim.key)
    if row is not None and row.fingerprint != claim.fingerprint:
        raise ProblemError(status=422, code="idempotency_key_reused",
                           detail="This idempotency key was used with another request.")
    return row


def _store(claim: Claim, response: Response) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_STORE, [claim.owner, claim.key, claim.fingerprint, timezone.now(),
                                response.status_code,
                                json.dumps(response.data, cls=DjangoJSONEncoder)])


def _replay(row: IdempotencyKey) -> Response:
    return Response(
        json.loads(row.response_body), status=row.status_code,
        headers={REPLAYED_HEADER: "true"},
        content_type=PROBLEM_CONTENT_TYPE if row.status_code >= 400 else None,
    )


def _run(method: Callable[..., Response], view, request: Request, claim: Claim,
         *args: Any, **kwargs: Any) -> Response:
    """The general path: the claim, the view and its stored answer in one transaction."""
    with transaction.atomic():
        stored = _claim(claim)
        if stored is not None:
            return _replay(stored)
        try:
            response = method(view, request, *args, **kwargs)
        except Exception as exc:  # answered below, once this transaction is rolled back
            transaction.set_rollback(True)
            failure = exc
        else:
            if response.status_code >= 500:
                transaction.set_rollback(True)
            else:
                _store(claim, response)
            return response
    return _answer_failure(view, claim, failure)


def _answer_failure(view, claim: Claim, failure: Exception) -> Response:
    """The problem a failed request answers, stored (a client error) in a transaction of its
    own, unless another request with the key has committed its answer meanwhile. Raises
    again what DRF cannot render as a problem: a 500, never stored."""
    response = view.handle_exception(failure)
    if response.status_code < 500:
        with transaction.atomic():
            stored = _claim(claim)
            if stored is not None:
                return _replay(stored)
            _store(claim, response)
    return response


AtOnce = Callable[[Any, Request, Claim], Response | None]


def idempotent(method: Callable[..., Response] | None = None, *,
               at_once: AtOnce | None = None) -> Any:
    """Decorates a DRF view method (after authentication: the key is per caller), as
    ``@idempotent`` or ``@idempotent(at_once=...)`` (see the module's docstring)."""
    if method is None:
        return functools.partial(idempotent, at_once=at_once)

    @functools.wraps(method)
    def wrapper(view, request: Request, *args: Any, **kwargs: Any) -> Response:
        claim = Claim(owner=request.user.audit_name, key=_key_from(request),
                      fingerprint=request_fingerprint(request))
        if at_once is not None and not connection.in_atomic_block:
            try:
                response = at_once(view, request, claim)
            except Exception as exc:
                return _answer_failure(view, claim, exc)
            if response is not None:
                return response
        return _run(method, view, request, claim, *args, **kwargs)

    return wrapper


def purge_expired_keys(*, batch_size: int = 10_000) -> int:
    """Deletes keys older than ``IDEMPOTENCY_KEY_TTL_HOURS`` (never under 24 hours), in
    batches of short transactions; returns how many."""
    hours = max(settings.IDEMPOTENCY_KEY_TTL_HOURS, MIN_TTL_HOURS)
    cutoff = timezone.now() - timedelta(hours=hours)
    purged = 0
    while True:
        ids = list(IdempotencyKey.objects.filter(created_at__lt=cutoff)
                   .order_by("created_at").values_list("id", flat=True)[:batch_size])
        if not ids:
            return purged
        purged += IdempotencyKey.objects.filter(id__in=ids).delete()[0]
