"""MLflow's wire format: JSON shapes of experiments, runs and metrics, and its errors.

Facts from MLflow's protocol (mlflow/protos/service.proto, mlflow/exceptions.py): ids are
strings, times are int64 milliseconds, enums travel by name, doubles that are not finite
are the strings "NaN", "Infinity" and "-Infinity", and an error is
`{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}` with the HTTP status the
client expects for that code.
"""

from __future__ import annotations

from typing import Any

from experiments.models import Experiment, Lifecycle, MetricSummary, Run
from experiments.validation import json_float
from studio.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    StudioloError,
    Unavailable,
)

# MLflow keeps an experiment's description in this tag and a run's name in this one.
NOTE_TAG = "mlflow.note.content"
RUN_NAME_TAG = "mlflow.runName"
# MLflow's id of the "Default" experiment; Studiolo maps it to the team's experiment of that
# name (created on first use), so `mlflow.start_run()` without `set_experiment` works.
DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"

VIEW_TYPES = {"1": "ACTIVE_ONLY", "2": "DELETED_ONLY", "3": "ALL"}

HTTP_STATUS = {
    "INVALID_PARAMETER_VALUE": 400,
    "MALFORMED_REQUEST": 400,
    "BAD_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_STATE": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "TEMPORARILY_UNAVAILABLE": 503,
    "INTERNAL_ERROR": 500,
}


class MlflowError(Exception):
    def __init__(self, error_code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self._status = status

    @property
    def status(self) -> int:
        return self._status or HTTP_STATUS.get(self.error_code, 500)

    def body(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}


def from_domain_error(error: StudioloError) -> MlflowError:
    if isinstance(error, NotFound):
        return MlflowError("RESOURCE_DOES_NOT_EXIST", error.message)
    if isinstance(error, PermissionDenied):
        return MlflowError("PERMISSION_DENIED", error.message)
    if isinstance(error, Conflict):
        return MlflowError("RESOURCE_ALREADY_EXISTS", error.message)
    if isinstance(error, Unavailable):
        return MlflowError("TEMPORARILY_UNAVAILABLE", error.message)
    if isinstance(error, PayloadTooLarge):
        # MLflow has no code of its own for it; its batch limit says INVALID_PARAMETER_VALUE.
        return MlflowError("INVALID_PARAMETER_VALUE", error.message, status=413)
    return MlflowError("INVALID_PARAMETER_VALUE", error.message)


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000)


def lifecycle_stage(lifecycle: str) -> str:
    return "active" if lifecycle == Lifecycle.ACTIVE else "deleted"


def artifact_root(experiment_id: int) -> str:
    return f"mlflow-artifacts:/{experiment_id}"


def run_artifact_uri(run: Run) -> str:
    """What the client resolves against its tracking URI to reach our artifacts proxy."""
    return f"mlflow-artifacts:/{run.experiment_id}/{run.run_uuid}/artifacts"


def experiment_json(experiment: Experiment) -> dict[str, Any]:
    tags = [{"key": t.key, "value": t.value} for t in experiment.tags.all()]
    if experiment.description and all(t["key"] != NOTE_TAG for t in tags):
        tags.append({"key": NOTE_TAG, "value": experiment.description})
    return {
        "experiment_id": str(experiment.pk),
        "name": experiment.name,
        "artifact_location": artifact_root(experiment.pk),
        "lifecycle_stage": lifecycle_stage(experiment.lifecycle),
        "creation_time": _ms(experiment.created_at),
        "last_update_time": _ms(experiment.updated_at),
        "tags": tags,
    }


def run_info_json(run: Run) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": run.run_uuid,
        "run_uuid": run.run_uuid,
        "run_name": run.name,
        "experiment_id": str(run.experiment_id),
        "user_id": run.created_by.username if run.created_by else "",
        "status": run.status,
        "start_time": run.start_time,
        "artifact_uri": run_artifact_uri(run),
        "lifecycle_stage": lifecycle_stage(run.lifecycle),
    }
    if run.end_time is not None:
        info["end_time"] = run.end_time
    return info


def summary_json(summary: MetricSummary) -> dict[str, Any]:
    return {
        "key": summary.key,
        "value": json_float(summary.last_value),
        "timestamp": summary.last_timestamp,
        "step": summary.last_step,
    }


def run_json(run: Run) -> dict[str, Any]:
    """A run read with its details prefetched (`selectors.run_for_user`)."""
    tags = [{"key": t.key, "value": t.value} for t in run.tags.all() if t.key != RUN_NAME_TAG]
    tags.append({"key": RUN_NAME_TAG, "value": run.name})
    return {
        "info": run_info_json(run),
        "data": {
            "metrics": [summary_json(s) for s in run.metric_summaries.all()],
            "params": [{"key": p.key, "value": p.value} for p in run.params.all()],
            "tags": tags,
        },
        "inputs": {},
    }
