"""The finance and operations dashboard: server-rendered, signed in with Django's login."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin, UserPassesTestMixin
from django.views.generic import TemplateView

from accounts.dashboard_users import dashboard_roles
from vouchers.finance.chart import chart
from vouchers.finance.models import ReconciliationReport
from vouchers.finance.selectors import campaign_summary, daily_series, today_figures
from vouchers.issuance.selectors import runs_in_progress
from vouchers.models import Campaign


def _latest_reconciliation(campaign: Campaign) -> dict[str, Any] | None:
    report = (
        ReconciliationReport.objects.filter(campaign=campaign).order_by("-created_at").first()
    )
    if report is None:
        return None
    return {"ok": report.ok, "created_at": report.created_at, "checks": report.checks}


class DashboardView(LoginRequiredMixin, UserPassesTestMixin, TemplateView):
    template_name = "finance/dashboard.html"
    login_url = "dashboard-login"

    def test_func(self) -> bool:
        return bool(dashboard_roles(self.request.user))

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        campaigns = list(Campaign.objects.order_by("-created_at").values("slug", "name"))
        slug = self.request.GET.get("campaign") or (campaigns[0]["slug"] if campaigns else None)
        campaign = Campaign.objects.filter(slug=slug).first() if slug else None
        context: dict[str, Any] = {"campaigns": campaigns, "campaign": None}
        if campaign is not None:
            context.update(
                campaign={"slug": campaign.slug, "name": campaign.name},
                summary=campaign_summary(campaign),
                today=today_figures(campaign),
                chart=chart(daily_series(campaign)),
                reconciliation=_latest_reconciliation(campaign),
                runs=runs_in_progress(campaign),
            )
        return context
