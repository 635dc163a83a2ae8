from __future__ import annotations

from django.urls import path

from experiments.api import artifacts, experiments, metrics, runs

RUN = "runs/<str:run_id>"

urlpatterns = [
    path("experiments", experiments.ExperimentListApi.as_view(), name="api-experiments"),
    path(
        "experiments/<int:experiment_id>",
        experiments.ExperimentDetailApi.as_view(),
        name="api-experiment",
    ),
    path(
        "experiments/<int:experiment_id>/restore",
        experiments.ExperimentRestoreApi.as_view(),
        name="api-experiment-restore",
    ),
    path(
        "experiments/<int:experiment_id>/runs",
        runs.ExperimentRunsApi.as_view(),
        name="api-experiment-runs",
    ),
    path("runs", runs.RunListApi.as_view(), name="api-runs"),
    path("runs/search", runs.RunSearchApi.as_view(), name="api-runs-search"),
    path(RUN, runs.RunDetailApi.as_view(), name="api-run"),
    path(f"{RUN}/restore", runs.RunRestoreApi.as_view(), name="api-run-restore"),
    path(f"{RUN}/batch", runs.RunBatchApi.as_view(), name="api-run-batch"),
    path(f"{RUN}/metrics", metrics.RunMetricsApi.as_view(), name="api-run-metrics"),
    path(
        f"{RUN}/metric-history", metrics.MetricHistoryApi.as_view(), name="api-run-metric-history"
    ),
    path(f"{RUN}/params", runs.RunParamsApi.as_view(), name="api-run-params"),
    path(f"{RUN}/tags", runs.RunTagsApi.as_view(), name="api-run-tags"),
    path(f"{RUN}/tags/<path:key>", runs.RunTagDetailApi.as_view(), name="api-run-tag"),
    path(f"{RUN}/artifacts", artifacts.RunArtifactListApi.as_view(), name="api-run-artifacts"),
    path(
        f"{RUN}/artifacts/<path:path>", artifacts.RunArtifactApi.as_view(), name="api-run-artifact"
    ),
]
