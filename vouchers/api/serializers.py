"""Representations shared by every API that shows vouchers."""

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from vouchers.identifiers import public_voucher_id, voucher_code_last4
from vouchers.models import Voucher, VoucherStatus

# Renders a time as a ModelSerializer's DateTimeField does (current time zone, ISO 8601),
# for serializers that render their fields directly.
render_time = serializers.DateTimeField().to_representation


def optional_time(value):
    return None if value is None else render_time(value)


class DirectSerializer(serializers.ModelSerializer):
    """A read-only serializer that renders directly what DRF's generic loop over its fields
    renders, without building the fields: a ModelSerializer makes them anew for every
    instance, most of the rendering's CPU on the hot paths. ``rendered`` maps each output
    field, in order, to how it is read from the instance; ``Meta.fields`` is that same
    list (``list(rendered)``), the declared fields only give the schema their types.
    Tests hold each subclass equal to the generic rendering."""

    rendered: dict[str, Callable[[Any], Any]] = {}

    def to_representation(self, instance) -> dict:
        return {name: render(instance) for name, render in self.rendered.items()}


_VOUCHER_FIELDS: dict[str, Callable[[Voucher], Any]] = {
    "id": lambda v: public_voucher_id(v.pk),
    "campaign": lambda v: v.campaign.slug,
    "category": attrgetter("category"),
    "amount_krw": attrgetter("amount_krw"),
    "balance_krw": attrgetter("current_balance_krw"),
    "single_use": attrgetter("single_use"),
    "min_order_krw": attrgetter("min_order_krw"),
    "status": attrgetter("current_status"),
    "issued_at": lambda v: render_time(v.issued_at),
    "expires_at": lambda v: render_time(v.expires_at),
    "code_last4": lambda v: voucher_code_last4(v.pk),
}


class VoucherSerializer(DirectSerializer):
    rendered = _VOUCHER_FIELDS
    id = serializers.SerializerMethodField()
    campaign = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    balance_krw = serializers.IntegerField(source="current_balance_krw", read_only=True)
    status = serializers.ChoiceField(choices=VoucherStatus.choices, source="current_status",
                                     read_only=True)
    code_last4 = serializers.SerializerMethodField()

    class Meta:
        model = Voucher
        fields = read_only_fields = list(_VOUCHER_FIELDS)

    @extend_schema_field(serializers.CharField())
    def get_id(self, voucher: Voucher) -> str:
        return _VOUCHER_FIELDS["id"](voucher)

    @extend_schema_field(serializers.CharField(min_length=4, max_length=4))
    def get_code_last4(self, voucher: Voucher) -> str:
        return _VOUCHER_FIELDS["code_last4"](voucher)
