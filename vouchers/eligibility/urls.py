"""Eligibility routes under /api/v1/: operations' exclusions (customer routes join here)."""

from django.urls import path

from vouchers.eligibility import exclusions_api

urlpatterns = [
    path("campaigns/<slug:slug>/exclusions", exclusions_api.ExclusionsView.as_view(),
         name="exclusions"),
    path("campaigns/<slug:slug>/exclusions/<int:exclusion_id>/lift",
         exclusions_api.LiftExclusionView.as_view(), name="exclusion-lift"),
]
