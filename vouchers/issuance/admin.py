"""Admin for issuance runs: read-only, with a progress bar from the chunk table."""

from django.contrib import admin
from django.utils.html import format_html

from voucher_service.admin import ReadOnlyAdmin
from vouchers.issuance import selectors
from vouchers.issuance.models import (
    IssuanceChunk,
    IssuanceRun,
    IssuedNotice,
    Notification,
    Revocation,
)


def _bar(run: IssuanceRun) -> str:
    p = selectors.progress(run)
    percent = round(p.progress * 100, 1)
    eta = "" if p.eta_seconds is None else f", ETA {p.eta_seconds} s"
    return format_html(
        '<progress value="{}" max="100" style="width: 12em">{}%</progress> {}% '
        "({} customers, {} vouchers{})",
        percent, percent, percent, p.customers_done, p.vouchers_issued, eta,
    )


class ChunkInline(admin.TabularInline):
    model = IssuanceChunk
    fields = ["lo", "hi", "customers", "status", "attempts", "vouchers_issued", "finished_at",
              "last_error"]
    readonly_fields = fields
    can_delete = False
    extra = 0
    max_num = 0
    show_change_link = False

    def get_queryset(self, request):
        # Only what needs a look: chunks not done (a large run has thousands of done ones).
        return super().get_queryset(request).exclude(status="done").order_by("lo")


@admin.register(IssuanceRun)
class IssuanceRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "campaign", "status", "dry_run", "max_customers", "created_by",
                    "approved_by", "eligible_customers", "progress_bar", "started_at",
                    "finished_at"]
    list_filter = ["status", "dry_run"]
    readonly_fields = [f.name for f in IssuanceRun._meta.fields] + ["progress_bar"]
    inlines = [ChunkInline]

    def get_queryset(self, request):
        return selectors.runs_with_counters()

    @admin.display(description="progress")
    def progress_bar(self, run: IssuanceRun) -> str:
        return _bar(run)


@admin.register(Revocation)
class RevocationAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "customer_id", "vouchers_revoked", "revoked_krw", "created_by",
                    "created_at"]
    search_fields = ["customer_id"]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "customer_id", "kind", "created_at", "sent_at"]
    list_filter = ["kind"]
    search_fields = ["customer_id"]


@admin.register(IssuedNotice)
class IssuedNoticeAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "run_id", "lo", "hi", "next_customer_id", "created_at"]
    search_fields = ["run_id"]
