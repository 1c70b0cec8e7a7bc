from django.urls import path

from vouchers.finance import api

urlpatterns = [
    path("finance/summary", api.SummaryView.as_view(), name="finance-summary"),
    path("finance/reconciliation", api.ReconciliationView.as_view(),
         name="finance-reconciliation"),
    path("finance/redemptions", api.RedemptionListView.as_view(), name="finance-redemptions"),
    path("finance/redemptions/export", api.RedemptionExportView.as_view(),
         name="finance-redemptions-export"),
    path("audit-events", api.AuditEventListView.as_view(), name="audit-events"),
]
