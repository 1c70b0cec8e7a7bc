"""Customer eligibility, own vouchers and closed-account claims; support's customer lookup;
the identity service's re-join reports. Thin views: parse, authorise, call, render."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from voucher_service.fields import StrictIntegerField
from voucher_service.pagination import IdCursorPagination
from voucher_service.permissions import IsCustomer, IsIdentity, IsSupport
from voucher_service.phones import InvalidPhone, normalize_phone
from voucher_service.problems import ProblemError
from voucher_service.query_params import PAGINATION_PARAMS, parse_query, refuse_query
from voucher_service.throttles import CheckThrottle, ClaimThrottle
from vouchers.api.serializers import VoucherSerializer
from vouchers.eligibility import cache, selectors, services
from vouchers.eligibility.selectors import CampaignFacts, Status
from vouchers.identifiers import voucher_id_from_public
from vouchers.models import AccountStatus, ExposedKind, VoucherStatus

_MAX_CUSTOMER_ID = 2**63 - 1


def _campaign(slug: str) -> CampaignFacts:
    """The campaign's facts, from the cache or (then cached) from PostgreSQL."""
    facts = cache.cached_campaign(slug)
    if facts is None:
        facts = selectors.campaign_facts(slug)
        if facts is None:
            raise ProblemError(status=404, code="campaign_not_found",
                               detail=f"No campaign {slug!r}.")
        cache.store_campaign(slug, facts)
    return facts


def _opened(campaign: CampaignFacts) -> CampaignFacts:
    if timezone.now() < campaign.eligibility_opens_at:
        raise ProblemError(
            status=403, code="eligibility_not_open",
            detail="Eligibility checks for this campaign have not opened yet.",
            opens_at=serializers.DateTimeField().to_representation(
                campaign.eligibility_opens_at),
        )
    return campaign


def _exposed_field(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=ExposedKind.choices),
        help_text="The kinds of this customer's data the leak exposed, sorted; empty for a "
                  "customer not in the registry.", **kwargs)


def _advice_field(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(),
        help_text="What to do: one plain sentence per exposed kind, in the order of "
                  "`exposed`. Never a link.", **kwargs)


def open_campaign(slug: str) -> CampaignFacts:
    """The campaign whose eligibility has opened: 404 ``campaign_not_found`` for an unknown
    slug, 403 ``eligibility_not_open`` before its opening time. What customers do in a
    campaign other than checking (claims, appeals) starts here."""
    return _opened(_campaign(slug))


class EligibilitySerializer(serializers.Serializer):
    campaign = serializers.SlugField()
    eligible = serializers.BooleanField()
    status = serializers.ChoiceField(choices=[
        Status.NOT_ELIGIBLE, Status.PENDING_ISSUANCE, Status.ISSUED, Status.CLAIMABLE,
        Status.CLAIMED])
    account_status = serializers.ChoiceField(choices=AccountStatus.choices, allow_null=True)
    amount_krw = serializers.IntegerField()
    exposed = _exposed_field()
    advice = _advice_field()
    vouchers = VoucherSerializer(many=True)

    def to_representation(self, answer: dict) -> dict:
        """What the generic loop over the fields renders, without building the fields (a
        deep copy of the nested voucher serializer per answer: a third of a first check's
        Python); tests/eligibility/test_voucher_rendering.py holds the two equal."""
        voucher = VoucherSerializer()
        return {**answer, "vouchers": [voucher.to_representation(v) for v in answer["vouchers"]]}


def eligibility_answer(campaign: CampaignFacts, found: selectors.Eligibility) -> dict:
    return {
        "campaign": campaign.slug,
        "eligible": found.eligible,
        "status": found.status,
        "account_status": found.account_status if found.registered else None,
        "amount_krw": found.amount_krw(campaign.amount_krw),
        "exposed": list(found.exposed),
        "advice": found.advice,
        "vouchers": found.vouchers,
    }


def _render_eligibility(campaign: CampaignFacts, found: selectors.Eligibility) -> bytes:
    """The answer as the JSON body it is sent (and cached) as."""
    return JSONRenderer().render(EligibilitySerializer(eligibility_answer(campaign, found)).data)


class EligibilityView(APIView):
    """A Redis hit answers without PostgreSQL; a miss is one indexed statement. The answer
    is cached as its rendered JSON body, so a hit sends the bytes Redis returned."""

    permission_classes = [IsCustomer]
    # Counted in ``get``, in the same Redis round trip as the cache read: a hit costs one.
    throttle_classes = []

    @extend_schema(responses=EligibilitySerializer)
    def get(self, request, slug: str):
        customer_id = request.user.customer_id
        found = CheckThrottle().enforce(request, self,
                                        reads=cache.lookup_keys(slug, customer_id))
        refuse_query(request)
        cached_campaign, answer = cache.lookup(slug, customer_id, found)
        if cached_campaign is None:
            cached_campaign = _campaign(slug)
        campaign = _opened(cached_campaign)
        if answer is None:
            standing = selectors.eligibility(campaign, customer_id)
            answer = _render_eligibility(campaign, standing)
            cache.store_answer(slug, customer_id, answer, changes_at=standing.next_expiry)
        return HttpResponse(answer, content_type="application/json")


class MyVouchersQuery(serializers.Serializer):
    campaign = serializers.SlugField(required=False)
    status = serializers.ChoiceField(choices=VoucherStatus.choices, required=False)


class MyVouchersView(generics.ListAPIView):
    permission_classes = [IsCustomer]
    serializer_class = VoucherSerializer
    pagination_class = IdCursorPagination

    def get_queryset(self):
        query = parse_query(self.request, MyVouchersQuery, extra=PAGINATION_PARAMS)
        return selectors.customer_vouchers(self.request.user.customer_id,
                                           campaign_slug=query.get("campaign"),
                                           status=query.get("status"))


class MyVoucherView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(responses=VoucherSerializer)
    def get(self, request, voucher_id: str):
        refuse_query(request)
        pk = voucher_id_from_public(voucher_id)
        voucher = None if pk is None else selectors.customer_voucher(request.user.customer_id,
                                                                      pk)
        if voucher is None:
            raise ProblemError(status=404, code="voucher_not_found", detail="No such voucher.")
        return Response(VoucherSerializer(voucher).data)


class ClaimSerializer(serializers.Serializer):
    campaign = serializers.SlugField(source="campaign.slug")
    registry_customer_id = serializers.IntegerField()
    customer_id = serializers.IntegerField()
    via = serializers.CharField()
    vouchers_moved = serializers.IntegerField()
    amount_krw = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField()


class CampaignStandingSerializer(serializers.Serializer):
    campaign = serializers.SlugField(source="campaign.slug")
    eligible = serializers.BooleanField(source="eligibility.eligible")
    status = serializers.CharField(source="eligibility.status")
    registered = serializers.BooleanField(source="eligibility.registered")
    account_status = serializers.CharField(source="eligibility.account_status", allow_null=True)
    account_closed_at = serializers.DateTimeField(allow_null=True)
    excluded = serializers.BooleanField(source="eligibility.excluded")
    vouchers_issued = serializers.IntegerField(source="eligibility.issued")
    amount_krw = serializers.SerializerMethodField()
    exposed = _exposed_field(source="eligibility.exposed")
    advice = _advice_field(source="eligibility.advice")
    claims = ClaimSerializer(many=True)

    def get_amount_krw(self, standing: selectors.CampaignStanding) -> int:
        return standing.eligibility.amount_krw(standing.campaign.amount_krw)


class SupportCustomerSerializer(serializers.Serializer):
    customer_id = serializers.IntegerField()
    campaigns = CampaignStandingSerializer(many=True)
    vouchers = VoucherSerializer(many=True)


class SupportCustomerView(APIView):
    """Every lookup is audited; the registry's phone hash is never shown."""

    permission_classes = [IsSupport]

    @extend_schema(responses=SupportCustomerSerializer)
    def get(self, request, customer_id: int):
        refuse_query(request)
        if not 0 < customer_id <= _MAX_CUSTOMER_ID:
            raise ProblemError(status=404, code="customer_not_found", detail="No such customer.")
        services.record_customer_lookup(customer_id=customer_id, actor=request.user.audit_name)
        return Response(SupportCustomerSerializer({
            "customer_id": customer_id,
            "campaigns": selectors.support_overview(customer_id),
            "vouchers": selectors.customer_vouchers(customer_id).order_by("pk"),
        }).data)


class PhoneField(serializers.CharField):
    """A Korean mobile number in any common format; errors never echo it."""

    default_error_messages = {"invalid_phone": "Not a Korean mobile number."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 32)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            normalize_phone(value)
        except InvalidPhone:
            self.fail("invalid_phone")
        return value


class ClaimStartSerializer(serializers.Serializer):
    campaign = serializers.SlugField()
    phone = PhoneField()


class ChallengeSerializer(serializers.Serializer):
    challenge_id = serializers.UUIDField(source="pk")
    expires_at = serializers.DateTimeField()


class ClaimStartView(APIView):
    """The answer is the same whether or not the phone matches (see services.start_claim)."""

    permission_classes = [IsCustomer]
    throttle_classes = [ClaimThrottle]

    @extend_schema(request=ClaimStartSerializer, responses={202: ChallengeSerializer})
    def post(self, request):
        body = ClaimStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        challenge = services.start_claim(
            campaign=open_campaign(body.validated_data["campaign"]),
            customer_id=request.user.customer_id, phone=body.validated_data["phone"],
            actor=request.user.audit_name)
        return Response(ChallengeSerializer(challenge).data, status=status.HTTP_202_ACCEPTED)


class ConfirmSerializer(serializers.Serializer):
    code = serializers.RegexField(r"^[0-9]{6}$")


class ClaimedSerializer(serializers.Serializer):
    claimed_vouchers = VoucherSerializer(many=True)


class ClaimConfirmView(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(request=ConfirmSerializer, responses=ClaimedSerializer)
    def post(self, request, challenge_id):
        body = ConfirmSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        moved = services.confirm_claim(challenge_id=challenge_id,
                                       customer_id=request.user.customer_id,
                                       code=body.validated_data["code"],
                                       actor=request.user.audit_name)
        return Response(ClaimedSerializer({"claimed_vouchers": moved}).data)


class RejoinedSerializer(serializers.Serializer):
    customer_id = StrictIntegerField(min_value=1, max_value=_MAX_CUSTOMER_ID)
    phone = PhoneField()


class AcceptedSerializer(serializers.Serializer):
    status = serializers.CharField()


class RejoinedView(APIView):
    """202 with the same body whether or not anything moved."""

    permission_classes = [IsIdentity]

    @extend_schema(request=RejoinedSerializer, responses={202: AcceptedSerializer})
    def post(self, request):
        body = RejoinedSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.report_rejoined(customer_id=body.validated_data["customer_id"],
                                 phone=body.validated_data["phone"],
                                 actor=request.user.audit_name)
        return Response({"status": "accepted"}, status=status.HTTP_202_ACCEPTED)
