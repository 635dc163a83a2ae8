from __future__ import annotations

from django.urls import path

from experiments.api import views

RUN = "runs/<str:run_id>"

urlpatterns = [
    path("experiments", views.ExperimentListApi.as_view(), name="api-experiments"),
    path(
        "experiments/<int:experiment_id>",
        views.ExperimentDetailApi.as_view(),
        name="api-experiment",
    ),
    path(
        "experiments/<int:experiment_id>/restore",
        views.ExperimentRestoreApi.as_view(),
        name="api-experiment-restore",
    ),
    path(
        "experiments/<int:experiment_id>/runs",
        views.ExperimentRunsApi.as_view(),
        name="api-experiment-runs",
    ),
    path("runs", views.RunListApi.as_view(), name="api-runs"),
    path("runs/search", views.RunSearchApi.as_view(), name="api-runs-search"),
    path(RUN, views.RunDetailApi.as_view(), name="api-run"),
    path(f"{RUN}/restore", views.RunRestoreApi.as_view(), name="api-run-restore"),
    path(f"{RUN}/batch", views.RunBatchApi.as_view(), name="api-run-batch"),
    path(f"{RUN}/metrics", views.RunMetricsApi.as_view(), name="api-run-metrics"),
    path(f"{RUN}/metric-history", views.MetricHistoryApi.as_view(), name="api-run-metric-history"),
    path(f"{RUN}/params", views.RunParamsApi.as_view(), name="api-run-params"),
    path(f"{RUN}/tags", views.RunTagsApi.as_view(), name="api-run-tags"),
    path(f"{RUN}/tags/<path:key>", views.RunTagDetailApi.as_view(), name="api-run-tag"),
    path(f"{RUN}/artifacts", views.RunArtifactListApi.as_view(), name="api-run-artifacts"),
    path(f"{RUN}/artifacts/<path:path>", views.RunArtifactApi.as_view(), name="api-run-artifact"),
]
