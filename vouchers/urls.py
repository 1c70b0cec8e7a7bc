from django.urls import include, path

# The customers' routes first: the eligibility check is the busiest route of all, and the
# resolver tries the patterns in order (the routes do not overlap, so order is free).
urlpatterns = [
    path("", include("vouchers.eligibility.customer_urls")),
    path("", include("vouchers.campaigns.urls")),
    path("", include("vouchers.eligibility.urls")),
    path("", include("vouchers.issuance.urls")),
    path("", include("vouchers.redemption.urls")),
    path("", include("vouchers.finance.urls")),
    path("", include("vouchers.appeals.urls")),
]
