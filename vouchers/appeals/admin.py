"""The appeals queue in the admin: filters by status and campaign with their counts, a
date hierarchy, read-only. Decisions go through the API, which audits who made them (the
admin's users are superusers, not operations principals)."""

from django.contrib import admin

from voucher_service.admin import ReadOnlyAdmin
from vouchers.appeals.models import Appeal


@admin.register(Appeal)
class AppealAdmin(ReadOnlyAdmin):
    list_display = ["id", "campaign", "customer_id", "status", "created_at", "decided_at",
                    "decided_by", "account_status"]
    list_filter = ["status", "campaign"]
    # Each filter choice shows how many appeals it holds (within the other filters).
    show_facets = admin.ShowFacets.ALWAYS
    date_hierarchy = "created_at"
    search_fields = ["=customer_id"]
    ordering = ["created_at"]
    list_select_related = ["campaign"]
    readonly_fields = [f.name for f in Appeal._meta.fields]
