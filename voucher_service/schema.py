"""OpenAPI: every operation documents the problem+json errors the service can answer.

drf-spectacular documents success responses only; clients (and the schemathesis fuzz in
the test suite) hold us to the error contract too, so a postprocessing hook adds one
``Problem`` component and, to each operation, the error statuses any request may get.
"""

from __future__ import annotations

from typing import Any

PROBLEM_MEDIA_TYPE = "application/problem+json"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; `code` is a stable machine word.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["type", "title", "status", "code"],
}

# What any operation may answer: bad input, authentication, authorisation, missing
# objects, conflicts, gone challenges, oversize bodies, media types, replays, throttles.
ERROR_STATUSES = {
    "400": "Malformed request or invalid fields.",
    "401": "Missing or invalid token.",
    "403": "The token's role may not do this, or it is not open yet.",
    "404": "No such object (or not yours).",
    "405": "Method not allowed.",
    "406": "Not acceptable.",
    "409": "Conflicts with the object's current state.",
    "410": "Gone (expired).",
    "413": "Request body over 1 MiB.",
    "415": "Unsupported media type.",
    "422": "Idempotency key reused with another request.",
    "429": "Too many requests; see Retry-After.",
}


def add_problem_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular ``POSTPROCESSING_HOOKS`` entry."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    reference = {"$ref": "#/components/schemas/Problem"}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_STATUSES.items():
                responses.setdefault(status, {
                    "description": description,
                    "content": {PROBLEM_MEDIA_TYPE: {"schema": reference}},
                })
    return result
