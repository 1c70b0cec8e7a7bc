"""Exclusion endpoints (operations): exclude a customer, list, lift."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from voucher_service.fields import StrictCharField, StrictIntegerField
from voucher_service.pagination import IdCursorPagination
from voucher_service.permissions import IsOperations
from voucher_service.query_params import PAGINATION_PARAMS, parse_query
from vouchers.campaigns.selectors import campaign_by_slug
from vouchers.eligibility import exclusions
from vouchers.models import Exclusion

CUSTOMER_ID_RANGE = {"min_value": 1, "max_value": 2**63 - 1}


class ExclusionSerializer(serializers.ModelSerializer):
    campaign = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    in_force = serializers.SerializerMethodField()

    class Meta:
        model = Exclusion
        fields = ["id", "campaign", "customer_id", "reason", "in_force", "created_at",
                  "created_by", "lifted_at", "lifted_by"]
        read_only_fields = fields

    def get_in_force(self, exclusion: Exclusion) -> bool:
        return exclusion.lifted_at is None


class ExcludeSerializer(serializers.Serializer):
    customer_id = StrictIntegerField(**CUSTOMER_ID_RANGE)
    reason = StrictCharField(max_length=500)


class LiftSerializer(serializers.Serializer):
    reason = StrictCharField(max_length=500, required=False, default="")


class ExclusionQuery(serializers.Serializer):
    customer_id = serializers.IntegerField(required=False, **CUSTOMER_ID_RANGE)
    in_force = serializers.BooleanField(required=False, allow_null=True, default=None)


@extend_schema_view(get=extend_schema(parameters=[ExclusionQuery]))
class ExclusionsView(generics.ListAPIView):
    """POST excludes; repeating it while the exclusion is in force returns that one (200)."""

    permission_classes = [IsOperations]
    serializer_class = ExclusionSerializer
    pagination_class = IdCursorPagination

    def get_queryset(self):
        query = parse_query(self.request, ExclusionQuery, extra=PAGINATION_PARAMS)
        return exclusions.campaign_exclusions(
            campaign_by_slug(self.kwargs["slug"]),
            customer_id=query.get("customer_id"), in_force=query.get("in_force"),
        )

    @extend_schema(request=ExcludeSerializer,
                   responses={201: ExclusionSerializer, 200: ExclusionSerializer})
    def post(self, request, slug: str):
        body = ExcludeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        exclusion, created = exclusions.exclude_customer(
            campaign=campaign_by_slug(slug), actor=request.user.audit_name, **body.validated_data
        )
        return Response(ExclusionSerializer(exclusion).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class LiftExclusionView(APIView):
    permission_classes = [IsOperations]

    @extend_schema(request=LiftSerializer, responses=ExclusionSerializer)
    def post(self, request, slug: str, exclusion_id: int):
        body = LiftSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        exclusion = exclusions.lift_exclusion(
            campaign=campaign_by_slug(slug), exclusion_id=exclusion_id,
            actor=request.user.audit_name, reason=body.validated_data["reason"],
        )
        return Response(ExclusionSerializer(exclusion).data)
