"""Campaign endpoints: operations create; operations, finance and support read."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from voucher_service.fields import (
    AwareDateTimeField,
    KrwField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
)
from voucher_service.pagination import IdCursorPagination
from voucher_service.permissions import IsOperations, roles
from voucher_service.problems import ProblemError
from voucher_service.query_params import PAGINATION_PARAMS, parse_query
from vouchers.campaigns import selectors, services
from vouchers.models import Campaign, Component

IsReader = roles("operations", "finance", "support")
_LOWER_SLUG = RegexValidator(services.SLUG_PATTERN,
                             "Lower-case letters, digits, '-' or '_', starting with no symbol.")


class ComponentInSerializer(serializers.Serializer):
    category = StrictCharField(max_length=32, validators=[_LOWER_SLUG])
    amount_krw = KrwField()
    expires_at = AwareDateTimeField(required=False, allow_null=True, default=None)
    valid_days = StrictIntegerField(required=False, allow_null=True, default=None,
                                    min_value=1, max_value=3650)
    valid_from = AwareDateTimeField(required=False, allow_null=True, default=None)
    min_order_krw = StrictIntegerField(min_value=0, max_value=10**12, default=0)
    single_use = StrictBooleanField(default=False)

    def validate(self, attrs):
        if (attrs["expires_at"] is None) == (attrs["valid_days"] is None):
            raise serializers.ValidationError(
                {"expires_at": ["Give exactly one of expires_at and valid_days."]})
        valid_from, expires_at = attrs["valid_from"], attrs["expires_at"]
        if valid_from and expires_at and valid_from >= expires_at:
            raise serializers.ValidationError({"valid_from": ["Must be before expires_at."]})
        return attrs


class CreateCampaignSerializer(serializers.Serializer):
    slug = StrictCharField(max_length=64, validators=[_LOWER_SLUG])
    name = StrictCharField(max_length=200)
    eligibility_opens_at = AwareDateTimeField()
    components = ComponentInSerializer(
        many=True, required=False, min_length=1, max_length=20,
        help_text="One voucher each per customer; one `all` 50,000 won voucher valid "
                  f"{services.DEFAULT_VALID_DAYS} days when omitted.",
    )

    def validate(self, attrs):
        components = attrs.get("components", [])
        categories = [c["category"] for c in components]
        errors = {}
        if len(set(categories)) != len(categories):
            errors["components"] = ["Each category may appear only once."]
        for i, component in enumerate(components):
            expires_at = component["expires_at"]
            if expires_at is not None and expires_at <= attrs["eligibility_opens_at"]:
                errors[f"components.{i}.expires_at"] = ["Must be after eligibility_opens_at."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ComponentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Component
        fields = ["category", "amount_krw", "expires_at", "valid_days", "valid_from",
                  "min_order_krw", "single_use"]
        read_only_fields = fields


class CampaignSerializer(serializers.ModelSerializer):
    amount_krw = serializers.IntegerField(read_only=True,
                                          help_text="Owed per customer: the components' sum.")
    components = ComponentSerializer(many=True, read_only=True)

    class Meta:
        model = Campaign
        fields = ["slug", "name", "eligibility_opens_at", "amount_krw", "components",
                  "created_at", "created_by"]
        read_only_fields = fields


def _dotted_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors flattened to dotted paths: ``{"components.1.amount_krw": [...]}``;
    a nested object's own errors (not of one field) go under the object's path."""
    if isinstance(errors, dict):
        flat: dict[str, list[str]] = {}
        for key, value in errors.items():
            path = (prefix if key == api_settings.NON_FIELD_ERRORS_KEY
                    else f"{prefix}.{key}") if prefix else str(key)
            flat.update(_dotted_errors(value, path))
        return flat
    if isinstance(errors, list) and any(isinstance(item, dict | list) for item in errors):
        flat = {}
        for i, item in enumerate(errors):
            flat.update(_dotted_errors(item, f"{prefix}.{i}"))
        return flat
    messages = errors if isinstance(errors, list) else [errors]
    return {prefix or "non_field_errors": [str(m) for m in messages]}


def _validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    body = serializer_class(data=data)
    if not body.is_valid():
        raise ProblemError(status=400, code="validation_error",
                           detail="The request has invalid fields.",
                           errors=_dotted_errors(body.errors))
    return body.validated_data


class CampaignsView(generics.ListAPIView):
    serializer_class = CampaignSerializer
    pagination_class = IdCursorPagination

    def get_permissions(self):
        return [IsOperations() if self.request.method == "POST" else IsReader()]

    def get_queryset(self):
        return selectors.campaigns()

    def list(self, request, *args, **kwargs):
        parse_query(request, serializers.Serializer, extra=PAGINATION_PARAMS)
        return super().list(request, *args, **kwargs)

    @extend_schema(request=CreateCampaignSerializer, responses={201: CampaignSerializer})
    def post(self, request):
        body = _validated(CreateCampaignSerializer, request.data)
        campaign = services.create_campaign(
            slug=body["slug"], name=body["name"],
            eligibility_opens_at=body["eligibility_opens_at"],
            components=[services.ComponentSpec(**c) for c in body.get("components", [])],
            actor=request.user.audit_name,
        )
        return Response(CampaignSerializer(selectors.campaign_by_slug(campaign.slug)).data,
                        status=status.HTTP_201_CREATED,
                        headers={"Location": reverse("campaign", args=[campaign.slug])})


class CampaignView(APIView):
    permission_classes = [IsReader]

    @extend_schema(responses=CampaignSerializer)
    def get(self, request, slug: str):
        parse_query(request, serializers.Serializer)
        return Response(CampaignSerializer(selectors.campaign_by_slug(slug)).data)
