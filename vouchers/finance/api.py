"""Finance endpoints: read-only, finance role (audit events also for operations)."""

import csv
import io
import json

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from voucher_service.models import AuditEvent
from voucher_service.pagination import CreatedAtCursorPagination, IdCursorPagination
from voucher_service.permissions import IsFinance, roles
from voucher_service.query_params import PAGINATION_PARAMS, parse_query
from vouchers.campaigns.selectors import campaign_by_slug
from vouchers.finance.selectors import (
    EXPORT_COLUMNS,
    campaign_summary,
    export_rows,
    redemptions,
)
from vouchers.finance.services import reconcile
from vouchers.identifiers import public_voucher_id
from vouchers.redemption.models import Redemption, RedemptionStatus


class CampaignQuery(serializers.Serializer):
    campaign = serializers.SlugField()


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
        summary = campaign_summary(campaign_by_slug(query["campaign"]))
        return Response(SummarySerializer(summary).data)


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
        report = reconcile(campaign=campaign_by_slug(query["campaign"]),
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
                  "payload", "chain", "prev_hash", "hash"]


class AuditEventListView(generics.ListAPIView):
    permission_classes = [roles("finance", "operations")]
    serializer_class = AuditEventSerializer
    pagination_class = IdCursorPagination

    @extend_schema(parameters=[AuditEventQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = parse_query(self.request, AuditEventQuery, extra=PAGINATION_PARAMS)
        # Sealed events: the tamper-evident trail, and what its indexes cover.
        events = AuditEvent.objects.filter(hash__isnull=False)
        for field in ("action", "actor", "target_type", "target_id"):
            if field in query:
                events = events.filter(**{field: query[field]})
        if "from" in query:
            events = events.filter(occurred_at__gte=query["from"])
        if "to" in query:
            events = events.filter(occurred_at__lt=query["to"])
        return events


# Built with type() for the same reason as AuditEventQuery.
RedemptionQuery = type(
    "RedemptionQuery",
    (serializers.Serializer,),
    {
        "campaign": serializers.SlugField(required=False),
        "from": serializers.DateTimeField(required=False),
        "to": serializers.DateTimeField(required=False),
        "status": serializers.ChoiceField(choices=RedemptionStatus.choices, required=False),
        "validate": _validate_range,
    },
)


def _redemptions(request, *, extra: frozenset[str] = frozenset()):
    query = parse_query(request, RedemptionQuery, extra=extra)
    return redemptions(
        campaign=campaign_by_slug(query["campaign"]) if "campaign" in query else None,
        start=query.get("from"), end=query.get("to"), status=query.get("status"),
    )


class FinanceRedemptionSerializer(serializers.ModelSerializer):
    campaign = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    voucher_id = serializers.SerializerMethodField()

    class Meta:
        model = Redemption
        fields = ["id", "campaign", "voucher_id", "customer_id", "order_id",
                  "merchant_category", "status", "amount_krw", "forfeited_krw", "refunded_krw",
                  "order_total_krw", "created_at", "updated_at"]
        read_only_fields = fields

    def get_voucher_id(self, redemption: Redemption) -> str:
        return public_voucher_id(redemption.voucher_id)


class RedemptionListView(generics.ListAPIView):
    permission_classes = [IsFinance]
    serializer_class = FinanceRedemptionSerializer
    pagination_class = CreatedAtCursorPagination

    @extend_schema(parameters=[RedemptionQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return _redemptions(self.request, extra=PAGINATION_PARAMS)


class CSVRenderer(BaseRenderer):
    """Lets clients ask for ``text/csv``; the export streams its own body, and a problem
    raised before streaming starts is still written as JSON."""

    media_type = "text/csv"
    format = "csv"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return json.dumps(data, default=str).encode()


def _csv_chunks(rows, *, rows_per_chunk: int = 1000):
    """CSV text in chunks of ``rows_per_chunk`` rows, header first: few, large writes
    to the client, and never more than one chunk in memory. The rows' text cells come
    neutralised for spreadsheets (``voucher_service.spreadsheets``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for count, row in enumerate(rows, start=1):
        writer.writerow(row)
        if count % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


class RedemptionExportView(APIView):
    permission_classes = [IsFinance]
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        parameters=[RedemptionQuery],
        responses={(200, "text/csv"): OpenApiResponse(
            OpenApiTypes.STR, description="Every matching redemption, header row first.")},
    )
    def get(self, request):
        rows = _redemptions(request)
        response = StreamingHttpResponse(_csv_chunks(export_rows(rows)),
                                         content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="redemptions-{stamp}.csv"'
        return response
