"""Finance endpoints: read-only, finance role (audit events also for operations)."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from voucher_service.models import AuditEvent
from voucher_service.pagination import IdCursorPagination
from voucher_service.permissions import IsFinance, roles
from voucher_service.problems import ProblemError
from voucher_service.query_params import PAGINATION_PARAMS, parse_query
from vouchers.finance.selectors import campaign_summary
from vouchers.finance.services import reconcile
from vouchers.models import Campaign


class CampaignQuery(serializers.Serializer):
    campaign = serializers.SlugField()


def _campaign(slug: str) -> Campaign:
    try:
        return Campaign.objects.get(slug=slug)
    except Campaign.DoesNotExist as exc:
        raise ProblemError(status=404, code="campaign_not_found",
                           detail=f"No campaign {slug!r}.") from exc


class FiguresSerializer(serializers.Serializer):
    issued_krw = serializers.IntegerField()
    issued_count = serializers.IntegerField()
    redeemed_krw = serializers.IntegerField()
    refunded_krw = serializers.IntegerField()
    authorized_krw = serializers.IntegerField()
    forfeited_krw = serializers.IntegerField()
    expired_krw = serializers.IntegerField()
    revoked_krw = serializers.IntegerField()
    outstanding_krw = serializers.IntegerField()


class CategorySummarySerializer(FiguresSerializer):
    category = serializers.CharField()


class SummarySerializer(FiguresSerializer):
    campaign = serializers.SlugField()
    by_category = CategorySummarySerializer(many=True)
    as_of = serializers.DateTimeField()


class SummaryView(APIView):
    permission_classes = [IsFinance]

    @extend_schema(parameters=[CampaignQuery], responses=SummarySerializer)
    def get(self, request):
        query = parse_query(request, CampaignQuery)
        return Response(SummarySerializer(campaign_summary(_campaign(query["campaign"]))).data)


class ReconciliationCheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField()
    expected = serializers.JSONField()
    actual = serializers.JSONField()


class ReconciliationSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    checks = ReconciliationCheckSerializer(many=True)
    created_at = serializers.DateTimeField()


class ReconciliationView(APIView):
    permission_classes = [IsFinance]

    @extend_schema(parameters=[CampaignQuery], responses=ReconciliationSerializer)
    def get(self, request):
        query = parse_query(request, CampaignQuery)
        report = reconcile(campaign=_campaign(query["campaign"]),
                           actor=request.user.audit_name)
        return Response(ReconciliationSerializer(report).data)


def _validate_range(self, attrs):
    if "from" in attrs and "to" in attrs and attrs["from"] > attrs["to"]:
        raise serializers.ValidationError({"from": ["Must not be after 'to'."]})
    return attrs


# Built with type() because ``from`` cannot be written as a class attribute.
AuditEventQuery = type(
    "AuditEventQuery",
    (serializers.Serializer,),
    {
        "action": serializers.CharField(required=False, max_length=80),
        "actor": serializers.CharField(required=False, max_length=120),
        "target_type": serializers.CharField(required=False, max_length=40),
        "target_id": serializers.CharField(required=False, max_length=80),
        "from": serializers.DateTimeField(required=False),
        "to": serializers.DateTimeField(required=False),
        "validate": _validate_range,
    },
)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "occurred_at", "actor", "action", "target_type", "target_id",
                  "payload", "prev_hash", "hash"]


class AuditEventListView(generics.ListAPIView):
    permission_classes = [roles("finance", "operations")]
    serializer_class = AuditEventSerializer
    pagination_class = IdCursorPagination

    @extend_schema(parameters=[AuditEventQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = parse_query(self.request, AuditEventQuery, extra=PAGINATION_PARAMS)
        events = AuditEvent.objects.all()
        for field in ("action", "actor", "target_type", "target_id"):
            if field in query:
                events = events.filter(**{field: query[field]})
        if "from" in query:
            events = events.filter(occurred_at__gte=query["from"])
        if "to" in query:
            events = events.filter(occurred_at__lt=query["to"])
        return events
