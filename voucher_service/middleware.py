"""Request-level guards: request ids, the body size limit, problem+json for crashes."""

import logging
import re
import uuid

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404

from voucher_service.logging import request_id_var
from voucher_service.problems import problem_response

logger = logging.getLogger("voucher_service.request")
# Client errors that Django's own handlers (our problem+json handler400/403/404) render.
_HANDLED_BY_DJANGO = (Http404, PermissionDenied, SuspiciousOperation, BadRequest)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Takes a well-formed ``X-Request-ID`` from the caller or makes one, logs each request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                },
            )
            return response
        finally:
            request_id_var.reset(token)


class BodySizeLimitMiddleware:
    """Refuses request bodies over ``MAX_REQUEST_BODY_BYTES`` with 413 before reading them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return problem_response(
                status=400, code="bad_request", detail="Content-Length is not a number."
            )
        if length > settings.MAX_REQUEST_BODY_BYTES:
            return problem_response(
                status=413, code="request_too_large", detail="Request bodies are limited to 1 MiB."
            )
        return self.get_response(request)


class ProblemExceptionMiddleware:
    """An unhandled exception becomes a 500 problem without a stack trace, even with DEBUG on."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, _HANDLED_BY_DJANGO):
            return None
        logger.exception("unhandled error", extra={"path": request.path})
        return problem_response(
            status=500,
            code="internal_error",
            detail="An internal error occurred; it has been logged.",
        )
