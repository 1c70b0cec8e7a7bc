"""Issuance run and revocation endpoints (operations): parse, authorise, call, render."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from voucher_service.fields import StrictIntegerField
from voucher_service.pagination import IdCursorPagination
from voucher_service.permissions import IsOperations
from voucher_service.problems import ProblemError
from vouchers.campaigns.selectors import campaign_by_slug
from vouchers.issuance import selectors, services
from vouchers.issuance.models import IssuanceRun, Revocation, RunStatus
from vouchers.issuance.revocations import revoke_customer


class RunSerializer(serializers.ModelSerializer):
    campaign = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    status = serializers.ChoiceField(choices=RunStatus.choices)
    vouchers_issued = serializers.SerializerMethodField()
    customers_done = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    eta_seconds = serializers.SerializerMethodField()

    class Meta:
        model = IssuanceRun
        fields = [
            "id", "campaign", "status", "dry_run", "max_customers", "created_by", "approved_by",
            "eligible_customers", "vouchers_issued", "customers_done", "progress",
            "started_at", "finished_at", "eta_seconds",
            "created_at", "approved_at", "chunk_size", "chunk_count", "dry_run_vouchers",
            "dry_run_total_krw", "failed_chunk", "failure_detail",
        ]
        read_only_fields = fields

    def _progress(self, run: IssuanceRun) -> selectors.Progress:
        return selectors.progress(run)

    def get_vouchers_issued(self, run: IssuanceRun) -> int:
        return self._progress(run).vouchers_issued

    def get_customers_done(self, run: IssuanceRun) -> int:
        return self._progress(run).customers_done

    def get_progress(self, run: IssuanceRun) -> float:
        return self._progress(run).progress

    def get_eta_seconds(self, run: IssuanceRun) -> int | None:
        return self._progress(run).eta_seconds


def _render(run_id, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(RunSerializer(selectors.get_run(run_id)).data, status=status_code)


class CreateRunSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(default=False)
    max_customers = StrictIntegerField(
        min_value=1, max_value=2**63 - 1, required=False, allow_null=True, default=None,
        help_text="A staged run: at most this many of the customers not yet issued, lowest "
                  "customer ids first. Absent or null: every eligible customer.")


class NewestFirst(IdCursorPagination):
    ordering = "-created_at"


class CampaignRunsView(generics.ListAPIView):
    permission_classes = [IsOperations]
    serializer_class = RunSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        return selectors.campaign_runs(campaign_by_slug(self.kwargs["slug"]))

    @extend_schema(request=CreateRunSerializer, responses={201: RunSerializer})
    def post(self, request, slug: str):
        body = CreateRunSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = services.create_run(campaign=campaign_by_slug(slug), actor=request.user.audit_name,
                                  dry_run_only=body.validated_data["dry_run"],
                                  max_customers=body.validated_data["max_customers"])
        return _render(run.pk, status.HTTP_201_CREATED)


class RunView(APIView):
    permission_classes = [IsOperations]

    @extend_schema(responses=RunSerializer)
    def get(self, request, run_id):
        run = selectors.get_run(run_id)
        if run is None:
            raise ProblemError(status=404, code="issuance_run_not_found",
                               detail="No such issuance run.")
        return Response(RunSerializer(run).data)


_ACTIONS = {
    "approve": services.approve_run,
    "pause": services.pause_run,
    "resume": services.resume_run,
    "cancel": services.cancel_run,
}


class RunActionView(APIView):
    permission_classes = [IsOperations]
    action_name = ""

    @extend_schema(request=None, responses=RunSerializer)
    def post(self, request, run_id):
        run = _ACTIONS[self.action_name](run_id=run_id, actor=request.user.audit_name)
        return _render(run.pk)


class RevocationSerializer(serializers.ModelSerializer):
    campaign = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Revocation
        fields = ["id", "campaign", "customer_id", "reason", "created_at", "created_by",
                  "vouchers_revoked", "revoked_krw"]
        read_only_fields = ["id", "campaign", "created_at", "created_by", "vouchers_revoked",
                            "revoked_krw"]
        extra_kwargs = {"customer_id": {"min_value": 1, "max_value": 2**63 - 1}}


class RevocationsView(generics.ListAPIView):
    """POST revokes; repeating it for the same customer returns the first revocation (200)."""

    permission_classes = [IsOperations]
    serializer_class = RevocationSerializer
    pagination_class = IdCursorPagination

    def get_queryset(self):
        return selectors.campaign_revocations(campaign_by_slug(self.kwargs["slug"]))

    @extend_schema(request=RevocationSerializer,
                   responses={201: RevocationSerializer, 200: RevocationSerializer})
    def post(self, request, slug: str):
        body = RevocationSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        revocation, created = revoke_customer(
            campaign=campaign_by_slug(slug), customer_id=body.validated_data["customer_id"],
            reason=body.validated_data["reason"], actor=request.user.audit_name,
        )
        return Response(RevocationSerializer(revocation).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
