from django.urls import path

from vouchers.issuance import api

urlpatterns = [
    path("campaigns/<slug:slug>/issuance-runs", api.CampaignRunsView.as_view(),
         name="issuance-runs"),
    path("issuance-runs/<uuid:run_id>", api.RunView.as_view(), name="issuance-run"),
    *[
        path(f"issuance-runs/<uuid:run_id>/{action}",
             api.RunActionView.as_view(action_name=action), name=f"issuance-run-{action}")
        for action in ("approve", "pause", "resume", "cancel")
    ],
    path("campaigns/<slug:slug>/revocations", api.RevocationsView.as_view(),
         name="revocations"),
]
