"""Routes of eligibility checks, own vouchers, closed-account claims and support lookups."""

from django.urls import path

from vouchers.eligibility import api

urlpatterns = [
    path("campaigns/<slug:slug>/eligibility", api.EligibilityView.as_view(), name="eligibility"),
    path("me/vouchers", api.MyVouchersView.as_view(), name="my-vouchers"),
    path("me/vouchers/<str:voucher_id>", api.MyVoucherView.as_view(), name="my-voucher"),
    path("claims/closed-account", api.ClaimStartView.as_view(), name="claim-start"),
    path("claims/closed-account/<uuid:challenge_id>/confirm", api.ClaimConfirmView.as_view(),
         name="claim-confirm"),
    path("accounts/rejoined", api.RejoinedView.as_view(), name="accounts-rejoined"),
    path("support/customers/<int:customer_id>", api.SupportCustomerView.as_view(),
         name="support-customer"),
]
