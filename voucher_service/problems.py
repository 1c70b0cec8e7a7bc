"""RFC 9457 problem details for every error the service returns.

Each problem carries a stable snake_case ``code`` that clients and tests match on.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"
logger = logging.getLogger(__name__)


class ProblemError(exceptions.APIException):
    """A business error: raised by services, rendered as problem+json by the API layer."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        detail: str,
        errors: dict[str, list[str]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status
        self.code = code
        self.errors = errors
        self.extra = extra


def problem_body(
    *, status: int, code: str, detail: str, errors: Any = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://voucher-service.example/problems/{code.replace('_', '-')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def problem_response(*, status: int, code: str, detail: str, **extra: Any) -> JsonResponse:
    """A problem+json response for code outside DRF (middleware, Django's handlers)."""
    return JsonResponse(
        problem_body(status=status, code=code, detail=detail, **extra),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def _field_errors(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {
            str(field): [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])]
            if not isinstance(msgs, dict)
            else [str(v) for v in _flatten(msgs)]
            for field, msgs in detail.items()
        }
    if isinstance(detail, list):
        return {"non_field_errors": [str(m) for m in _flatten(detail)]}
    return {"non_field_errors": [str(detail)]}


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [item for v in value.values() for item in _flatten(v)]
    if isinstance(value, list):
        return [item for v in value for item in _flatten(v)]
    return [value]


_DRF_CODES: list[tuple[type[Exception], str]] = [
    (exceptions.ParseError, "malformed_request"),
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "authentication_failed"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
]


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every handled error becomes problem+json."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            problem_body(
                status=413, code="request_too_large", detail="Request bodies are limited to 1 MiB."
            ),
            status=413,
            content_type=PROBLEM_CONTENT_TYPE,
        )
    if not isinstance(exc, exceptions.APIException):
        return None

    headers: dict[str, str] = {}
    if isinstance(exc, ProblemError):
        body = problem_body(
            status=exc.status_code, code=exc.code, detail=str(exc.detail),
            errors=exc.errors, **exc.extra,
        )
    elif isinstance(exc, exceptions.ValidationError):
        body = problem_body(
            status=exc.status_code,
            code="validation_error",
            detail="The request has invalid fields.",
            errors=_field_errors(exc.detail),
        )
    else:
        code = next((c for cls, c in _DRF_CODES if isinstance(exc, cls)), "error")
        body = problem_body(status=exc.status_code, code=code, detail=str(exc.detail))
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
    return Response(
        body, status=exc.status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE
    )


def bad_request(request, exception=None):
    return problem_response(status=400, code="bad_request", detail="The request is malformed.")


def permission_denied(request, exception=None):
    return problem_response(status=403, code="permission_denied", detail="Not allowed.")


def page_not_found(request, exception=None):
    return problem_response(status=404, code="not_found", detail="No such resource.")


def server_error(request):
    return problem_response(
        status=500, code="internal_error", detail="An internal error occurred; it has been logged."
    )
