from __future__ import annotations

from django.urls import path

from pipelines.api import views

PIPELINE = "pipelines/<str:name>"

urlpatterns = [
    path("pipelines", views.PipelineListApi.as_view(), name="api-pipelines"),
    path(PIPELINE, views.PipelineDetailApi.as_view(), name="api-pipeline"),
    path(f"{PIPELINE}/versions", views.VersionListApi.as_view(), name="api-pipeline-versions"),
    path(
        f"{PIPELINE}/versions/<int:number>",
        views.VersionDetailApi.as_view(),
        name="api-pipeline-version",
    ),
    path(
        f"{PIPELINE}/versions/<int:a>/diff/<int:b>",
        views.VersionDiffApi.as_view(),
        name="api-pipeline-version-diff",
    ),
]
