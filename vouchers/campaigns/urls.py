from django.urls import path

from vouchers.campaigns import api

urlpatterns = [
    path("campaigns", api.CampaignsView.as_view(), name="campaigns"),
    path("campaigns/<slug:slug>", api.CampaignView.as_view(), name="campaign"),
]
