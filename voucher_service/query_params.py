"""Strict query parameters: validated by a serializer, unknown names refused with 400."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from voucher_service.problems import ProblemError

PAGINATION_PARAMS = frozenset({"cursor", "page_size"})


def _refuse_unknown(request, allowed: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ProblemError(
            status=400,
            code="unknown_query_parameter",
            detail=f"Unknown query parameter(s): {', '.join(unknown)}.",
            errors={name: ["Unknown query parameter."] for name in unknown},
        )


def refuse_query(request) -> None:
    """For views that take no query parameters: any is refused as unknown (without a query
    string, nothing is parsed: the eligibility check calls this on every hit)."""
    if request.META.get("QUERY_STRING"):
        _refuse_unknown(request, frozenset())


def parse_query(
    request, serializer_class: type[serializers.Serializer], *, extra: frozenset[str] = frozenset()
) -> dict[str, Any]:
    _refuse_unknown(request, set(serializer_class().fields) | extra)
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
