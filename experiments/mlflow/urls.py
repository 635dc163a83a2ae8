"""MLflow's routes, at the root (`/api/2.0/mlflow/...`) and below a team prefix
(`/mlflow/<team>/api/2.0/mlflow/...`, from MLFLOW_TRACKING_URI=http://<studio>/mlflow/<team>).
`/ajax-api/2.0/...` (the prefix MLflow's web UI uses) answers the same."""

from __future__ import annotations

from django.urls import URLPattern, path

from experiments.mlflow import artifacts, calls, experiments, runs

TRACKING = {
    "experiments/create": experiments.experiments_create,
    "experiments/get": experiments.experiments_get,
    "experiments/get-by-name": experiments.experiments_get_by_name,
    "experiments/search": experiments.experiments_search,
    "experiments/update": experiments.experiments_update,
    "experiments/delete": experiments.experiments_delete,
    "experiments/restore": experiments.experiments_restore,
    "experiments/set-experiment-tag": experiments.experiments_set_tag,
    "experiments/delete-experiment-tag": experiments.experiments_delete_tag,
    "runs/create": runs.runs_create,
    "runs/get": runs.runs_get,
    "runs/update": runs.runs_update,
    "runs/delete": runs.runs_delete,
    "runs/restore": runs.runs_restore,
    "runs/search": runs.runs_search,
    "runs/log-metric": runs.runs_log_metric,
    "runs/log-parameter": runs.runs_log_parameter,
    "runs/set-tag": runs.runs_set_tag,
    "runs/delete-tag": runs.runs_delete_tag,
    "runs/log-batch": runs.runs_log_batch,
    "metrics/get-history": runs.metrics_get_history,
    "artifacts/list": artifacts.artifacts_list,
    "logged-models/search": artifacts.logged_models_search,
}


def _routes(prefix: str, name: str) -> list[URLPattern]:
    routes = []
    for api in ("api", "ajax-api"):
        for route, view in TRACKING.items():
            routes.append(
                path(
                    f"{prefix}{api}/2.0/mlflow/{route}",
                    view,
                    name=f"mlflow{name}-{api}-{route.replace('/', '-')}",
                )
            )
        routes.append(path(f"{prefix}{api}/2.0/mlflow/<path:rest>", calls.not_found))
        routes.append(
            path(
                f"{prefix}{api}/2.0/mlflow-artifacts/artifacts",
                artifacts.artifacts_proxy_list,
                name=f"mlflow{name}-{api}-artifacts-list",
            )
        )
        routes.append(
            path(
                f"{prefix}{api}/2.0/mlflow-artifacts/artifacts/<path:artifact_path>",
                artifacts.artifacts_proxy_file,
                name=f"mlflow{name}-{api}-artifact",
            )
        )
    return routes


urlpatterns = _routes("", "") + _routes("mlflow/<slug:team>/", "-team")
