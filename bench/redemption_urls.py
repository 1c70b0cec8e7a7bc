"""The checkout bench's URLconf: the test one (``tests.auth_urls``: every API route and the
bare baseline ``POST /t/echo``) plus the bare+commit baseline ``POST /t/commit``.

``/t/commit`` authenticates, authorises and validates as ``/t/echo`` does, then commits one
row in a transaction of its own: the floor of any request that writes, against which a
checkout's own work shows. Its table, ``bench_commit``, is the bench's alone: created by
``create_commit_table`` in the bench database, never by a migration.
"""

from django.db import connection, transaction
from django.urls import include, path
from django.utils import timezone
from rest_framework import status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from tests.auth_urls import EchoSerializer
from voucher_service.permissions import roles

_CREATE = """
    CREATE TABLE IF NOT EXISTS bench_commit (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        amount_krw bigint NOT NULL,
        created_at timestamptz NOT NULL
    )
"""


def create_commit_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(_CREATE)


@api_view(["POST"])
@permission_classes([roles("checkout")])
def commit(request):
    body = EchoSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_commit (amount_krw, created_at) VALUES (%s, %s)",
                       [body.validated_data["amount_krw"], timezone.now()])
    return Response(body.validated_data, status=status.HTTP_201_CREATED)


urlpatterns = [
    path("t/commit", commit),
    path("", include("tests.auth_urls")),
]
