from django.urls import include, path

urlpatterns = [
    path("", include("vouchers.campaigns.urls")),
    path("", include("vouchers.eligibility.urls")),
    path("", include("vouchers.eligibility.customer_urls")),
    path("", include("vouchers.issuance.urls")),
    path("", include("vouchers.redemption.urls")),
    path("", include("vouchers.finance.urls")),
    path("", include("vouchers.appeals.urls")),
]
