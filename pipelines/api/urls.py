from __future__ import annotations

from django.urls import path

from pipelines.api import executions, views

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
    path(
        f"{PIPELINE}/executions",
        executions.ExecutionListApi.as_view(),
        name="api-pipeline-executions",
    ),
    path(
        "pipeline-executions/<int:execution_id>",
        executions.ExecutionDetailApi.as_view(),
        name="api-pipeline-execution",
    ),
    path(
        "pipeline-executions/<int:execution_id>/stop",
        executions.ExecutionStopApi.as_view(),
        name="api-pipeline-execution-stop",
    ),
]
