from __future__ import annotations

from django.urls import path

from registry.api import views

PACKAGE = "teams/<slug:team>/model-groups/<str:name>/packages/<int:version>"

urlpatterns = [
    path("teams/<slug:team>/model-groups", views.GroupListApi.as_view(), name="api-model-groups"),
    path(
        "teams/<slug:team>/model-groups/<str:name>",
        views.GroupDetailApi.as_view(),
        name="api-model-group",
    ),
    path(
        "teams/<slug:team>/model-groups/<str:name>/packages",
        views.PackageRegisterApi.as_view(),
        name="api-model-packages",
    ),
    path(PACKAGE, views.PackageDetailApi.as_view(), name="api-model-package"),
    path(f"{PACKAGE}/approve", views.PackageApproveApi.as_view(), name="api-model-package-approve"),
    path(f"{PACKAGE}/reject", views.PackageRejectApi.as_view(), name="api-model-package-reject"),
    path(f"{PACKAGE}/lineage", views.PackageLineageApi.as_view(), name="api-model-package-lineage"),
    path(
        "model-packages/awaiting-review",
        views.AwaitingReviewApi.as_view(),
        name="api-model-packages-awaiting-review",
    ),
    path("teams/<slug:team>/settings", views.TeamSettingsApi.as_view(), name="api-team-settings"),
]
