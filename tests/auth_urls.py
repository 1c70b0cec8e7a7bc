"""A test-only urlconf: one tiny view per role rule, a crashing view, an echo view."""

from django.http import Http404
from django.urls import include, path
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from voucher_service.fields import KrwField
from voucher_service.permissions import IsCustomer, IsFinance, roles


@api_view(["GET"])
@permission_classes([IsCustomer])
def customer_only(request):
    return Response({"customer_id": request.user.customer_id})


@api_view(["GET"])
@permission_classes([IsFinance])
def finance_only(request):
    return Response({"name": request.user.name})


@api_view(["GET"])
@permission_classes([IsCustomer])
def customer_object(request, owner_id: int):
    if owner_id != request.user.customer_id:
        raise Http404
    return Response({"owner_id": owner_id})


class EchoSerializer(serializers.Serializer):
    amount_krw = KrwField()


@api_view(["POST"])
@permission_classes([roles("checkout")])
def echo(request):
    serializer = EchoSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return Response(serializer.validated_data)


@api_view(["GET"])
@permission_classes([])
def crash(request):
    raise RuntimeError("secret internal detail")


urlpatterns = [
    path("t/customer", customer_only),
    path("t/finance", finance_only),
    path("t/objects/<int:owner_id>", customer_object),
    path("t/echo", echo),
    path("t/crash", crash),
    path("", include("config.urls")),
]
