"""Appeal routes under /api/v1/."""

from django.urls import path

from vouchers.appeals import api

urlpatterns = [
    path("campaigns/<slug:slug>/appeals", api.FileAppealView.as_view(), name="appeal-file"),
    path("me/appeals", api.MyAppealsView.as_view(), name="my-appeals"),
    path("appeals", api.AppealQueueView.as_view(), name="appeals"),
    path("appeals/<uuid:appeal_id>/accept", api.AcceptAppealView.as_view(),
         name="appeal-accept"),
    path("appeals/<uuid:appeal_id>/reject", api.RejectAppealView.as_view(),
         name="appeal-reject"),
]
