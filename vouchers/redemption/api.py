"""Checkout endpoints: create, capture, void, refund and read redemptions.

Every POST is idempotent per ``Idempotency-Key`` (``voucher_service.idempotency``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from voucher_service.fields import (
    KrwField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
)
from voucher_service.idempotency import (
    IDEMPOTENCY_KEY_PARAMETER,
    Claim,
    answer_template,
    idempotent,
)
from voucher_service.permissions import IsCheckout, roles
from voucher_service.problems import ProblemError
from vouchers.api.serializers import DirectSerializer, optional_time, render_time
from vouchers.identifiers import public_voucher_id, voucher_id_from_public
from vouchers.redemption import selectors, services
from vouchers.redemption.models import Redemption, RedemptionStatus

_CATEGORY_FORMAT = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class _SharedFieldsSerializer(serializers.Serializer):
    """Binds shallow copies of the declared fields to each instance.

    DRF deep-copies them instead, which rebuilds every field with its validators and error
    messages: about 0.4 ms of CPU per checkout, more than validating the body takes. A
    shallow copy shares only what validation never changes (validators, messages, options);
    each copy gets its own binding (name, parent, source).
    """

    def get_fields(self):
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}


class CreateRedemptionSerializer(_SharedFieldsSerializer):
    voucher_id = StrictCharField(max_length=40)
    customer_id = StrictIntegerField(min_value=1, max_value=2**63 - 1)
    order_id = StrictCharField(max_length=100)
    amount_krw = KrwField()
    order_total_krw = KrwField()
    merchant_category = StrictCharField(max_length=32, validators=[RegexValidator(
        _CATEGORY_FORMAT, "A category: lower-case letters, digits, '-' or '_'.")])
    capture = StrictBooleanField(default=True)

    def validate(self, attrs):
        if attrs["amount_krw"] > attrs["order_total_krw"]:
            raise serializers.ValidationError(
                {"amount_krw": ["Must not exceed order_total_krw."]})
        return attrs


class RefundSerializer(_SharedFieldsSerializer):
    amount_krw = KrwField(required=False, help_text="Defaults to all that is left to refund.")


_REDEMPTION_FIELDS: dict[str, Callable[[Redemption], Any]] = {
    "id": lambda r: str(r.id),
    "voucher_id": lambda r: public_voucher_id(r.voucher_id),
    "order_id": attrgetter("order_id"),
    "amount_krw": attrgetter("amount_krw"),
    "forfeited_krw": attrgetter("forfeited_krw"),
    "status": attrgetter("status"),
    "refunded_krw": attrgetter("refunded_krw"),
    "voucher_balance_krw": lambda r: r.voucher.current_balance_krw,
    "created_at": lambda r: render_time(r.created_at),
    "customer_id": attrgetter("customer_id"),
    "order_total_krw": attrgetter("order_total_krw"),
    "merchant_category": attrgetter("merchant_category"),
    "authorized_until": lambda r: optional_time(r.authorized_until),
    "updated_at": lambda r: render_time(r.updated_at),
}


class RedemptionSerializer(DirectSerializer):
    rendered = _REDEMPTION_FIELDS
    voucher_id = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=RedemptionStatus.choices)
    voucher_balance_krw = serializers.IntegerField(source="voucher.current_balance_krw")

    class Meta:
        model = Redemption
        fields = read_only_fields = list(_REDEMPTION_FIELDS)

    @extend_schema_field(serializers.CharField())
    def get_voucher_id(self, redemption: Redemption) -> str:
        return _REDEMPTION_FIELDS["voucher_id"](redemption)


class RefundResponseSerializer(RedemptionSerializer):
    """The redemption after the refund, with what this refund did (the schema of
    ``RefundView``'s answer, which it builds from ``RedemptionSerializer``'s data)."""

    voucher_restored = serializers.BooleanField()
    refund_amount_krw = serializers.IntegerField()

    class Meta(RedemptionSerializer.Meta):
        fields = [*RedemptionSerializer.Meta.fields, "voucher_restored", "refund_amount_krw"]
        read_only_fields = fields


def _order(request) -> dict[str, Any]:
    """The order the request sends, validated (400) and its voucher found by its public id
    (404): ``services.Checkout``'s arguments."""
    body = CreateRedemptionSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    data = dict(body.validated_data)
    voucher_id = voucher_id_from_public(data.pop("voucher_id"))
    if voucher_id is None:
        raise ProblemError(status=404, code="voucher_not_found", detail="No such voucher.")
    return {**data, "voucher_id": voucher_id, "actor": request.user.audit_name}


def _created(redemption: Redemption) -> Response:
    return Response(RedemptionSerializer(redemption).data, status=status.HTTP_201_CREATED)


def _checkout_at_once(view, request, claim: Claim) -> Response | None:
    """The checkout, its key's claim and its stored answer in one round trip
    (``services.create_redemption_at_once``); None leaves the request to ``post``."""
    checkout = services.Checkout(**_order(request))
    answer = answer_template(RedemptionSerializer(checkout.pending()).data)
    redemption = services.create_redemption_at_once(checkout, claim=claim, answer=answer)
    return None if redemption is None else _created(redemption)


class RedemptionsView(APIView):
    permission_classes = [IsCheckout]

    @extend_schema(request=CreateRedemptionSerializer, responses={201: RedemptionSerializer},
                   parameters=[IDEMPOTENCY_KEY_PARAMETER])
    @idempotent(at_once=_checkout_at_once)
    def post(self, request):
        return _created(services.create_redemption(**_order(request)))


class RedemptionView(APIView):
    permission_classes = [roles("checkout", "finance")]

    @extend_schema(responses=RedemptionSerializer)
    def get(self, request, redemption_id):
        redemption = selectors.get_redemption(redemption_id)
        if redemption is None:
            raise ProblemError(status=404, code="redemption_not_found",
                               detail="No such redemption.")
        return Response(RedemptionSerializer(redemption).data)


_STEPS = {"capture": services.capture_redemption, "void": services.void_redemption}


class RedemptionStepView(APIView):
    """Capture or void a hold."""

    permission_classes = [IsCheckout]
    step = ""

    @extend_schema(request=None, responses=RedemptionSerializer,
                   parameters=[IDEMPOTENCY_KEY_PARAMETER])
    @idempotent
    def post(self, request, redemption_id):
        redemption = _STEPS[self.step](redemption_id=redemption_id,
                                       actor=request.user.audit_name)
        return Response(RedemptionSerializer(redemption).data)


class RefundView(APIView):
    permission_classes = [IsCheckout]

    @extend_schema(request=RefundSerializer, responses=RefundResponseSerializer,
                   parameters=[IDEMPOTENCY_KEY_PARAMETER])
    @idempotent
    def post(self, request, redemption_id):
        body = RefundSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        refund = services.refund_redemption(redemption_id=redemption_id,
                                            amount_krw=body.validated_data.get("amount_krw"),
                                            actor=request.user.audit_name)
        return Response({**RedemptionSerializer(refund.redemption).data,
                         "voucher_restored": refund.voucher_restored,
                         "refund_amount_krw": refund.amount_krw})
