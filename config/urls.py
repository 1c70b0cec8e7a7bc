from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from voucher_service.health import healthz, readyz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/v1/", include("vouchers.urls")),
    path("dashboard/", include("vouchers.finance.dashboard_urls")),
    path("admin/", admin.site.urls),
]

handler400 = "voucher_service.problems.bad_request"
handler403 = "voucher_service.problems.permission_denied"
handler404 = "voucher_service.problems.page_not_found"
handler500 = "voucher_service.problems.server_error"
