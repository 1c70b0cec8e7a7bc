"""Appeal endpoints: customers file and read their own; operations decide; operations and
support read the queue. Thin views: parse, authorise, call a service, render."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from voucher_service.fields import StrictCharField
from voucher_service.pagination import CreatedAtCursorPagination
from voucher_service.permissions import IsCustomer, IsOperations, roles
from voucher_service.query_params import PAGINATION_PARAMS, parse_query
from voucher_service.throttles import AppealThrottle
from vouchers.appeals import selectors, services
from vouchers.appeals.models import MAX_REASON, Appeal, AppealStatus
from vouchers.campaigns.selectors import campaign_by_slug
from vouchers.eligibility.api import open_campaign
from vouchers.models import AccountStatus


class AppealSerializer(serializers.ModelSerializer):
    """What the customer sees of their appeal."""

    campaign = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    status = serializers.ChoiceField(choices=AppealStatus.choices)
    decision_reason = serializers.SerializerMethodField()

    class Meta:
        model = Appeal
        fields = ["id", "campaign", "status", "reason", "created_at", "decision_reason",
                  "decided_at"]
        read_only_fields = fields

    def get_decision_reason(self, appeal: Appeal) -> str | None:
        """A rejection's reason; null while open and for an acceptance."""
        return appeal.decision_reason or None


class StaffAppealSerializer(AppealSerializer):
    """The queue's view: whose appeal, and the decision's details."""

    account_status = serializers.SerializerMethodField()

    class Meta(AppealSerializer.Meta):
        fields = [*AppealSerializer.Meta.fields, "customer_id", "account_status", "note",
                  "decided_by"]
        read_only_fields = fields

    def get_account_status(self, appeal: Appeal) -> str | None:
        """An acceptance's registry account status; null otherwise."""
        return appeal.account_status or None


class FileAppealSerializer(serializers.Serializer):
    reason = StrictCharField(max_length=MAX_REASON)


class AcceptSerializer(serializers.Serializer):
    account_status = serializers.ChoiceField(choices=AccountStatus.choices)
    note = StrictCharField(max_length=MAX_REASON, required=False, allow_blank=True, default="")


class RejectSerializer(serializers.Serializer):
    reason = StrictCharField(max_length=MAX_REASON)


class AppealQuery(serializers.Serializer):
    campaign = serializers.SlugField(required=False)
    status = serializers.ChoiceField(choices=AppealStatus.choices, required=False)


class QueueQuery(AppealQuery):
    customer_id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


def _filtered(request, query_class: type[AppealQuery], **fixed: int):
    query = parse_query(request, query_class, extra=PAGINATION_PARAMS)
    campaign = campaign_by_slug(query.pop("campaign")) if "campaign" in query else None
    return selectors.appeals(campaign=campaign, **{**query, **fixed})


class FileAppealView(APIView):
    permission_classes = [IsCustomer]
    throttle_classes = [AppealThrottle]

    @extend_schema(request=FileAppealSerializer, responses={201: AppealSerializer})
    def post(self, request, slug: str):
        campaign = open_campaign(slug)
        body = FileAppealSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        appeal = services.file_appeal(campaign=campaign, customer_id=request.user.customer_id,
                                      reason=body.validated_data["reason"],
                                      actor=request.user.audit_name)
        return Response(AppealSerializer(appeal).data, status=status.HTTP_201_CREATED)


class MyAppealsView(generics.ListAPIView):
    """The customer's own appeals, oldest first; nobody else's."""

    permission_classes = [IsCustomer]
    serializer_class = AppealSerializer
    pagination_class = CreatedAtCursorPagination

    @extend_schema(parameters=[AppealQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return _filtered(self.request, AppealQuery, customer_id=self.request.user.customer_id)


class AppealQueueView(generics.ListAPIView):
    """The queue, oldest first: ``?status=open`` is what waits for a decision."""

    permission_classes = [roles("operations", "support")]
    serializer_class = StaffAppealSerializer
    pagination_class = CreatedAtCursorPagination

    @extend_schema(parameters=[QueueQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return _filtered(self.request, QueueQuery)


class AcceptAppealView(APIView):
    permission_classes = [IsOperations]

    @extend_schema(request=AcceptSerializer, responses=StaffAppealSerializer)
    def post(self, request, appeal_id):
        body = AcceptSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        appeal = services.accept_appeal(appeal_id=appeal_id, actor=request.user.audit_name,
                                        **body.validated_data)
        return Response(StaffAppealSerializer(appeal).data)


class RejectAppealView(APIView):
    permission_classes = [IsOperations]

    @extend_schema(request=RejectSerializer, responses=StaffAppealSerializer)
    def post(self, request, appeal_id):
        body = RejectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        appeal = services.reject_appeal(appeal_id=appeal_id, actor=request.user.audit_name,
                                        reason=body.validated_data["reason"])
        return Response(StaffAppealSerializer(appeal).data)
