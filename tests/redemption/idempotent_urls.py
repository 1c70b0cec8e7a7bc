"""A test-only urlconf: idempotent views that write, then fail (4xx or crash)."""

from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from voucher_service.audit import record_event
from voucher_service.idempotency import idempotent
from voucher_service.models import AuditEvent
from voucher_service.permissions import IsCheckout
from voucher_service.problems import ProblemError


class WriteThenRefuse(APIView):
    """Writes an audit event, then refuses when the body says so."""

    permission_classes = [IsCheckout]

    @idempotent
    def post(self, request):
        record_event(actor="test", action="test.write", target_type="test", target_id="1")
        if request.data.get("fail") == "refuse":
            raise ProblemError(status=409, code="refused", detail="Refused after a write.")
        if request.data.get("fail") == "crash":
            raise RuntimeError("crash after a write")
        return Response({"events": AuditEvent.objects.filter(action="test.write").count()},
                        status=201)


urlpatterns = [
    path("t/write", WriteThenRefuse.as_view()),
    path("", include("config.urls")),
]
