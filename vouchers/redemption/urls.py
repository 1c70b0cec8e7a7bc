from django.urls import path

from vouchers.redemption import api

urlpatterns = [
    path("redemptions", api.RedemptionsView.as_view(), name="redemptions"),
    path("redemptions/<uuid:redemption_id>", api.RedemptionView.as_view(), name="redemption"),
    *[
        path(f"redemptions/<uuid:redemption_id>/{step}", api.RedemptionStepView.as_view(step=step),
             name=f"redemption-{step}")
        for step in ("capture", "void")
    ],
    path("redemptions/<uuid:redemption_id>/refund", api.RefundView.as_view(),
         name="redemption-refund"),
]
