"""Admin for redemptions: read-only, with their event history (the database refuses edits)."""

from django.contrib import admin

from voucher_service.admin import ReadOnlyAdmin
from vouchers.redemption.models import Redemption, RedemptionEvent


class EventInline(admin.TabularInline):
    model = RedemptionEvent
    fields = ["kind", "amount_krw", "restored_krw", "created_at", "actor"]
    readonly_fields = fields
    can_delete = False
    extra = 0
    max_num = 0


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyAdmin):
    list_display = ["id", "campaign", "voucher_id", "order_id", "amount_krw", "forfeited_krw",
                    "refunded_krw", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["=id", "=order_id", "=customer_id"]
    readonly_fields = [f.name for f in Redemption._meta.fields]
    inlines = [EventInline]
