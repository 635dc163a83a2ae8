"""MLflow's artifact routes: the tracking API's listing, the logged-models search (always
empty), and the mlflow-artifacts proxy (list, upload, download)."""

from __future__ import annotations

import mimetypes
import posixpath
from typing import Any, BinaryIO, cast

from django.http import FileResponse

from experiments import selectors, services
from experiments.mlflow import protocol
from experiments.mlflow.calls import Call, Result, endpoint, lookup_run
from experiments.mlflow.protocol import MlflowError
from experiments.models import Run
from studio.errors import ValidationError


@endpoint("GET")
def artifacts_list(call: Call) -> Result:
    """The tracking API's own listing (`/mlflow/artifacts/list`), paths relative to the run."""
    run = lookup_run(call, details=False)
    entries = services.run_artifact_list(run=run, path=call.get("path", ""))
    return {
        "root_uri": protocol.run_artifact_uri(run),
        "files": [_file_json(e.path, e.is_dir, e.size) for e in entries],
    }


def _file_json(path: str, is_dir: bool, size: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "is_dir": is_dir}
    if size is not None:
        entry["file_size"] = size
    return entry


@endpoint("POST")
def logged_models_search(call: Call) -> Result:
    """MLflow 3's logged models are not stored by Studiolo; the client searches them whenever
    it lists or downloads `runs:/` artifacts, so the honest answer is "none"."""
    return {"models": []}


# --- the mlflow-artifacts proxy -------------------------------------------------------------


def _artifact_target(call: Call, path: str) -> tuple[Run, str]:
    """`<experiment id>/<run id>/artifacts[/<path in the run>]` → the run and the path."""
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or parts[2] != "artifacts":
        raise MlflowError(
            "RESOURCE_DOES_NOT_EXIST",
            f"{path!r} is not a run's artifact path (<experiment id>/<run id>/artifacts/...)",
        )
    run = selectors.run_for_user(call.user, parts[1], team=call.team, details=False)
    if str(run.experiment_id) != parts[0]:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"{path!r} not found")
    return run, parts[3] if len(parts) == 4 else ""


@endpoint("GET")
def artifacts_proxy_list(call: Call) -> Result:
    run, relative = _artifact_target(call, call.string("path"))
    entries = services.run_artifact_list(run=run, path=relative)
    return {"files": [_file_json(posixpath.basename(e.path), e.is_dir, e.size) for e in entries]}


@endpoint("GET", "PUT", raw_body=True)
def artifacts_proxy_file(call: Call, artifact_path: str) -> Result:
    run, relative = _artifact_target(call, artifact_path)
    if not relative:
        raise ValidationError("path: a file path below the run's artifacts is required")
    if call.request.method == "PUT":
        services.run_artifact_put(
            run=run, actor=call.user, path=relative, data=cast(BinaryIO, call.request)
        )
        return {}
    stream, info = services.run_artifact_open(run=run, path=relative)
    content_type = mimetypes.guess_type(relative)[0] or "application/octet-stream"
    response = FileResponse(stream, content_type=content_type)
    response["Content-Length"] = str(info.size)
    return response
