"""MLflow's routes, at the root (`/api/2.0/mlflow/...`) and below a team prefix
(`/mlflow/<team>/api/2.0/mlflow/...`, from MLFLOW_TRACKING_URI=http://<studio>/mlflow/<team>).
`/ajax-api/2.0/...` (the prefix MLflow's web UI uses) answers the same."""

from __future__ import annotations

from django.urls import URLPattern, path

from experiments.mlflow import views

TRACKING = {
    "experiments/create": views.experiments_create,
    "experiments/get": views.experiments_get,
    "experiments/get-by-name": views.experiments_get_by_name,
    "experiments/search": views.experiments_search,
    "experiments/update": views.experiments_update,
    "experiments/delete": views.experiments_delete,
    "experiments/restore": views.experiments_restore,
    "experiments/set-experiment-tag": views.experiments_set_tag,
    "experiments/delete-experiment-tag": views.experiments_delete_tag,
    "runs/create": views.runs_create,
    "runs/get": views.runs_get,
    "runs/update": views.runs_update,
    "runs/delete": views.runs_delete,
    "runs/restore": views.runs_restore,
    "runs/search": views.runs_search,
    "runs/log-metric": views.runs_log_metric,
    "runs/log-parameter": views.runs_log_parameter,
    "runs/set-tag": views.runs_set_tag,
    "runs/delete-tag": views.runs_delete_tag,
    "runs/log-batch": views.runs_log_batch,
    "metrics/get-history": views.metrics_get_history,
    "artifacts/list": views.artifacts_list,
    "logged-models/search": views.logged_models_search,
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
        routes.append(path(f"{prefix}{api}/2.0/mlflow/<path:rest>", views.not_found))
        routes.append(
            path(
                f"{prefix}{api}/2.0/mlflow-artifacts/artifacts",
                views.artifacts_proxy_list,
                name=f"mlflow{name}-{api}-artifacts-list",
            )
        )
        routes.append(
            path(
                f"{prefix}{api}/2.0/mlflow-artifacts/artifacts/<path:artifact_path>",
                views.artifacts_proxy_file,
                name=f"mlflow{name}-{api}-artifact",
            )
        )
    return routes


urlpatterns = _routes("", "") + _routes("mlflow/<slug:team>/", "-team")
