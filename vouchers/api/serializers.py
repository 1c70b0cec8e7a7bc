"""Representations shared by every API that shows vouchers."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from vouchers.identifiers import public_voucher_id, voucher_code_last4
from vouchers.models import Voucher, VoucherStatus

# Renders a time as a ModelSerializer's DateTimeField does (current time zone, ISO 8601),
# for serializers that render their fields directly.
render_time = serializers.DateTimeField().to_representation


class VoucherSerializer(serializers.ModelSerializer):
    id = serializers.SerializerMethodField()
    campaign = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    status = serializers.ChoiceField(choices=VoucherStatus.choices, read_only=True)
    code_last4 = serializers.SerializerMethodField()

    class Meta:
        model = Voucher
        fields = [
            "id", "campaign", "category", "amount_krw", "balance_krw", "single_use",
            "min_order_krw", "status", "issued_at", "expires_at", "code_last4",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_id(self, voucher: Voucher) -> str:
        return public_voucher_id(voucher.pk)

    @extend_schema_field(serializers.CharField(min_length=4, max_length=4))
    def get_code_last4(self, voucher: Voucher) -> str:
        return voucher_code_last4(voucher.pk)

    def to_representation(self, voucher: Voucher) -> dict:
        """What the generic loop over the fields renders, without building the fields: a
        ModelSerializer makes them anew for every instance, most of a first eligibility
        check's rendering (tests/eligibility/test_voucher_rendering.py holds the two
        equal)."""
        return {
            "id": self.get_id(voucher), "campaign": voucher.campaign.slug,
            "category": voucher.category, "amount_krw": voucher.amount_krw,
            "balance_krw": voucher.balance_krw, "single_use": voucher.single_use,
            "min_order_krw": voucher.min_order_krw, "status": voucher.status,
            "issued_at": render_time(voucher.issued_at),
            "expires_at": render_time(voucher.expires_at),
            "code_last4": self.get_code_last4(voucher),
        }
