"""Cursor pagination in the shape API.md gives: ``{"results": [...], "next": url|null}``."""

from rest_framework.pagination import CursorPagination
from rest_framework.response import Response


class IdCursorPagination(CursorPagination):
    """Newest first by primary key: stable under concurrent inserts, cheap on big tables."""

    ordering = "-pk"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "format": "uri", "nullable": True},
            },
        }


class CreatedAtCursorPagination(IdCursorPagination):
    """Oldest first by creation time (ties broken by the cursor's offset): rows added
    while a client pages through land after its last page, never inside it."""

    ordering = ("created_at", "id")
