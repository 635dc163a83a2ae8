"""Handlers of MLflow's tracking routes: requests in MLflow's shapes, answers from the same
services and selectors as the native API.

Plain Django views rather than DRF: the MLflow client sends one small request per logged
value, and this path stays short (bearer token, team, one service call, JSON out).

Which team: a tracking URI of `http://studio/mlflow/<team>` puts every call in that team
(the client keeps the path prefix for tracking and artifact calls alike); an
`X-Studiolo-Team` header does the same; without either, the token's user must belong to
exactly one team.
"""

from __future__ import annotations

import functools
import json
import mimetypes
import posixpath
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from experiments import selectors, services
from experiments.mlflow import protocol
from experiments.mlflow.protocol import MlflowError
from experiments.models import Experiment, Run
from experiments.validation import MAX_BATCH_REQUEST_BYTES, parse_int64
from experiments.wire import metrics_from_json, pairs_from_json, points_json
from studio.accounts.models import Team
from studio.accounts.selectors import team_for_user, teams_for_user
from studio.accounts.services import token_authenticate, token_digest
from studio.api.parsers import parse_json, read_body
from studio.errors import NotFound, StudioloError, ValidationError

Result = dict[str, Any] | HttpResponseBase


@dataclass
class Call:
    request: HttpRequest
    user: User
    team: Team
    params: dict[str, Any] = field(default_factory=dict)
    body_size: int = 0

    def get(self, name: str, default: Any = None) -> Any:
        value = self.params.get(name)
        return default if value in (None, "") else value

    def required(self, name: str) -> Any:
        value = self.get(name)
        if value is None:
            raise MlflowError(
                "INVALID_PARAMETER_VALUE", f"Missing value for required parameter '{name}'."
            )
        return value

    def string(self, name: str) -> str:
        value = self.required(name)
        if not isinstance(value, str):
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                f"Invalid value for parameter '{name}': a string is required",
            )
        return value

    def items(self, name: str) -> list[Any]:
        value = self.params.get(name)
        if value in (None, ""):
            return []
        return value if isinstance(value, list) else [value]


def _authenticate(request: HttpRequest) -> User:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise MlflowError(
            "UNAUTHENTICATED",
            "Authentication required: set MLFLOW_TRACKING_TOKEN to a Studiolo API token",
        )
    user = token_authenticate(secret.strip())
    if user is None:
        raise MlflowError("UNAUTHENTICATED", "invalid, expired or revoked token")
    return user


# Who is calling, per (token, team prefix), kept CALLER_TTL_SECONDS as the data plane keeps
# its tokens: a script that logs a metric per call spends no query on its token and team
# while warm. A revoked or expired token is refused within that time; the caller's role is
# still read by the services at every call, so a member removed from a team is refused at
# once. Only successes are kept.
CALLER_TTL_SECONDS = 5.0
MAX_CALLERS = 10_000
_callers: dict[tuple[str, str], tuple[float, User, Team]] = {}
_callers_lock = threading.Lock()


def clear_callers() -> None:
    with _callers_lock:
        _callers.clear()


def _caller(request: HttpRequest, slug: str | None) -> tuple[User, Team]:
    header = request.headers.get("Authorization", "")
    key = (token_digest(header), slug or "")
    now = time.monotonic()
    hit = _callers.get(key)
    if hit is not None and hit[0] > now:
        return hit[1], hit[2]
    user = _authenticate(request)
    team = _team(user, slug)
    with _callers_lock:
        if len(_callers) >= MAX_CALLERS:
            _callers.clear()
        _callers[key] = (now + CALLER_TTL_SECONDS, user, team)
    return user, team


def _team(user: User, slug: str | None) -> Team:
    if slug:
        try:
            return team_for_user(user, slug)
        except NotFound:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"team {slug!r} not found") from None
    teams = list(teams_for_user(user).order_by("slug")[:2])
    if len(teams) == 1:
        return teams[0]
    if not teams:
        raise MlflowError("PERMISSION_DENIED", "you are not a member of any team")
    raise MlflowError(
        "INVALID_PARAMETER_VALUE",
        "you belong to several teams: name one in the tracking URI "
        "(MLFLOW_TRACKING_URI=http://<studio>/mlflow/<team>) or the X-Studiolo-Team header",
    )


def _params(request: HttpRequest) -> tuple[dict[str, Any], int]:
    """The call's parameters (the query string of a GET, else the JSON body) and the body's
    size; a body is read up to DATA_UPLOAD_MAX_MEMORY_SIZE (413 past it)."""
    if request.method == "GET":
        query = {
            key: values if len(values) > 1 else values[0] for key, values in request.GET.lists()
        }
        return query, 0
    body = read_body(request, request.META)
    if not body:
        return {}, 0
    try:
        # NaN and Infinity literals are accepted, as they always were here.
        data = parse_json(body, strict=False)
    except ValidationError as exc:
        raise MlflowError("MALFORMED_REQUEST", exc.message) from None
    if not isinstance(data, dict):
        raise MlflowError("MALFORMED_REQUEST", "the request body must be a JSON object")
    return data, len(body)


def endpoint(
    *methods: str, raw_body: bool = False
) -> Callable[[Callable[..., Result]], Callable[..., HttpResponseBase]]:
    """Authenticate, resolve the team, parse the request, translate errors to MLflow's."""

    def decorate(handler: Callable[..., Result]) -> Callable[..., HttpResponseBase]:
        @csrf_exempt
        @login_not_required
        @functools.wraps(handler)
        def view(request: HttpRequest, team: str | None = None, **kwargs: Any) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    raise MlflowError(
                        "ENDPOINT_NOT_FOUND",
                        f"{request.method} is not allowed here; use {' or '.join(methods)}",
                    )
                user, call_team = _caller(request, team or request.headers.get("X-Studiolo-Team"))
                params, body_size = ({}, 0) if raw_body else _params(request)
                call = Call(
                    request=request, user=user, team=call_team, params=params, body_size=body_size
                )
                result = handler(call, **kwargs)
            except MlflowError as error:
                return JsonResponse(error.body(), status=error.status)
            except StudioloError as error:
                translated = protocol.from_domain_error(error)
                return JsonResponse(translated.body(), status=translated.status)
            except SuspiciousOperation as error:  # Django's limits: a query of 1,000+ fields
                translated = MlflowError("MALFORMED_REQUEST", str(error))
                return JsonResponse(translated.body(), status=translated.status)
            return result if isinstance(result, HttpResponseBase) else JsonResponse(result)

        return view

    return decorate


@csrf_exempt
@login_not_required
def not_found(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return JsonResponse(
        {
            "error_code": "ENDPOINT_NOT_FOUND",
            "message": f"{request.path} is not part of Studiolo's MLflow API (see docs/experiments.md)",
        },
        status=404,
    )


# --- lookups --------------------------------------------------------------------------------


def _experiment(call: Call, experiment_id: Any, *, create_default: bool = False) -> Experiment:
    if str(experiment_id) == protocol.DEFAULT_EXPERIMENT_ID:
        if create_default:
            services.experiment_get_or_create(
                team=call.team, name=protocol.DEFAULT_EXPERIMENT_NAME, actor=call.user
            )
        return selectors.experiment_by_name(
            call.user, team=call.team, name=protocol.DEFAULT_EXPERIMENT_NAME
        )
    return selectors.experiment_for_user(call.user, str(experiment_id), team=call.team)


def _run(call: Call, *, details: bool = True) -> Run:
    run_id = call.get("run_id") or call.get("run_uuid")
    if run_id is None:
        raise MlflowError(
            "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'run_id'."
        )
    return selectors.run_for_user(call.user, str(run_id), team=call.team, details=details)


def _run_json(call: Call, run_id: str) -> dict[str, Any]:
    return protocol.run_json(selectors.run_for_user(call.user, run_id, team=call.team))


def _view_type(value: Any) -> str:
    if value in (None, ""):
        return selectors.ViewType.ACTIVE_ONLY
    text = str(value)
    return protocol.VIEW_TYPES.get(text, text)


def _max_results(call: Call, default: int) -> int:
    value = call.get("max_results")
    return default if value is None else parse_int64(value, field="max_results")


# --- experiments ----------------------------------------------------------------------------


@endpoint("POST")
def experiments_create(call: Call) -> Result:
    if call.get("artifact_location"):
        raise MlflowError(
            "INVALID_PARAMETER_VALUE",
            "artifact_location is not supported: run artifacts go to Studiolo's artifact store",
        )
    tags = dict(pairs_from_json(call.items("tags"), field="tags"))
    description = tags.pop(protocol.NOTE_TAG, "")
    experiment = services.experiment_create(
        team=call.team,
        name=call.string("name"),
        description=description,
        tags=tags,
        actor=call.user,
    )
    return {"experiment_id": str(experiment.pk)}


@endpoint("GET")
def experiments_get(call: Call) -> Result:
    experiment = _experiment(call, call.required("experiment_id"))
    return {"experiment": protocol.experiment_json(experiment)}


@endpoint("GET")
def experiments_get_by_name(call: Call) -> Result:
    name = call.string("experiment_name")
    try:
        experiment = selectors.experiment_by_name(call.user, team=call.team, name=name)
    except NotFound:
        raise MlflowError(
            "RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name '{name}'"
        ) from None
    return {"experiment": protocol.experiment_json(experiment)}


@endpoint("GET", "POST")
def experiments_search(call: Call) -> Result:
    page = selectors.experiments_search(
        call.user,
        team=call.team,
        filter_string=call.get("filter", ""),
        order_by=call.items("order_by"),
        view=_view_type(call.get("view_type")),
        max_results=_max_results(call, 1000),
        page_token=call.get("page_token"),
    )
    response: dict[str, Any] = {"experiments": [protocol.experiment_json(e) for e in page.items]}
    if page.next_page_token:
        response["next_page_token"] = page.next_page_token
    return response


@endpoint("POST")
def experiments_update(call: Call) -> Result:
    experiment = _experiment(call, call.required("experiment_id"))
    services.experiment_update(experiment=experiment, actor=call.user, name=call.get("new_name"))
    return {}


@endpoint("POST")
def experiments_delete(call: Call) -> Result:
    experiment = _experiment(call, call.required("experiment_id"))
    services.experiment_delete(experiment=experiment, actor=call.user)
    return {}


@endpoint("POST")
def experiments_restore(call: Call) -> Result:
    experiment = _experiment(call, call.required("experiment_id"))
    services.experiment_restore(experiment=experiment, actor=call.user)
    return {}


@endpoint("POST")
def experiments_set_tag(call: Call) -> Result:
    experiment = _experiment(call, call.required("experiment_id"))
    key, value = call.string("key"), str(call.get("value", ""))
    if key == protocol.NOTE_TAG:
        services.experiment_update(experiment=experiment, actor=call.user, description=value)
    else:
        services.experiment_set_tags(experiment=experiment, actor=call.user, tags={key: value})
    return {}


@endpoint("POST")
def experiments_delete_tag(call: Call) -> Result:
    experiment = _experiment(call, call.required("experiment_id"))
    services.experiment_delete_tag(experiment=experiment, actor=call.user, key=call.string("key"))
    return {}


# --- runs -----------------------------------------------------------------------------------


@endpoint("POST")
def runs_create(call: Call) -> Result:
    experiment = _experiment(call, call.required("experiment_id"), create_default=True)
    tags = dict(pairs_from_json(call.items("tags"), field="tags"))
    name = call.get("run_name") or tags.get(protocol.RUN_NAME_TAG, "")
    if call.get("run_name") and tags.get(protocol.RUN_NAME_TAG, name) != name:
        raise MlflowError(
            "INVALID_PARAMETER_VALUE",
            f"run_name {name!r} and tag {protocol.RUN_NAME_TAG} "
            f"{tags[protocol.RUN_NAME_TAG]!r} differ",
        )
    tags.pop(protocol.RUN_NAME_TAG, None)
    start_time = call.get("start_time")
    run = services.run_create(
        experiment=experiment,
        name=str(name),
        tags=tags,
        start_time=None if start_time is None else parse_int64(start_time, field="start_time"),
        actor=call.user,
    )
    return {"run": _run_json(call, run.run_uuid)}


@endpoint("GET")
def runs_get(call: Call) -> Result:
    return {"run": protocol.run_json(_run(call))}


@endpoint("POST")
def runs_update(call: Call) -> Result:
    run = _run(call, details=False)
    status = call.get("status")
    end_time = call.get("end_time")
    services.run_update(
        run=run,
        actor=call.user,
        name=call.get("run_name"),
        status=None if status is None else str(status),
        end_time=None if end_time is None else parse_int64(end_time, field="end_time"),
    )
    return {"run_info": protocol.run_info_json(selectors.run_for_user(call.user, run.run_uuid))}


@endpoint("POST")
def runs_delete(call: Call) -> Result:
    services.run_delete(run=_run(call, details=False), actor=call.user)
    return {}


@endpoint("POST")
def runs_restore(call: Call) -> Result:
    services.run_restore(run=_run(call, details=False), actor=call.user)
    return {}


@endpoint("POST")
def runs_search(call: Call) -> Result:
    experiment_ids = []
    for value in call.items("experiment_ids"):
        if str(value) == protocol.DEFAULT_EXPERIMENT_ID:
            try:
                experiment_ids.append(_experiment(call, value).pk)
            except NotFound:
                continue
        else:
            experiment_ids.append(value)
    page = selectors.runs_search(
        call.user,
        experiment_ids=experiment_ids,
        team=call.team,
        filter_string=call.get("filter", ""),
        order_by=call.items("order_by"),
        view=_view_type(call.get("run_view_type")),
        max_results=_max_results(call, 1000),
        page_token=call.get("page_token"),
    )
    response: dict[str, Any] = {"runs": [protocol.run_json(r) for r in page.items]}
    if page.next_page_token:
        response["next_page_token"] = page.next_page_token
    return response


def _rename_from_tags(call: Call, run: Run, tags: list[tuple[str, str]]) -> None:
    for key, value in tags:
        if key == protocol.RUN_NAME_TAG and value and value != run.name:
            services.run_update(run=run, actor=call.user, name=value)


@endpoint("POST")
def runs_log_metric(call: Call) -> Result:
    run = _run(call, details=False)
    metric = {
        "key": call.get("key"),
        "value": call.required("value"),
        "timestamp": call.get("timestamp"),
        "step": call.get("step"),
    }
    services.run_log_batch(run=run, actor=call.user, metrics=metrics_from_json([metric]))
    return {}


@endpoint("POST")
def runs_log_parameter(call: Call) -> Result:
    run = _run(call, details=False)
    pairs = pairs_from_json([{"key": call.get("key"), "value": call.get("value")}], field="params")
    services.run_log_batch(run=run, actor=call.user, params=pairs)
    return {}


@endpoint("POST")
def runs_set_tag(call: Call) -> Result:
    run = _run(call, details=False)
    pairs = pairs_from_json([{"key": call.get("key"), "value": call.get("value")}], field="tags")
    services.run_log_batch(run=run, actor=call.user, tags=pairs)
    _rename_from_tags(call, run, pairs)
    return {}


@endpoint("POST")
def runs_delete_tag(call: Call) -> Result:
    services.run_delete_tag(run=_run(call, details=False), actor=call.user, key=call.string("key"))
    return {}


@endpoint("POST")
def runs_log_batch(call: Call) -> Result:
    if call.body_size > MAX_BATCH_REQUEST_BYTES:
        raise MlflowError(
            "INVALID_PARAMETER_VALUE",
            f"Batched logging API requests must be at most {MAX_BATCH_REQUEST_BYTES} bytes, "
            f"got a request of size {call.body_size}.",
        )
    run = _run(call, details=False)
    tags = pairs_from_json(call.items("tags"), field="tags")
    services.run_log_batch(
        run=run,
        actor=call.user,
        metrics=metrics_from_json(call.items("metrics")),
        params=pairs_from_json(call.items("params"), field="params"),
        tags=tags,
    )
    _rename_from_tags(call, run, tags)
    return {}


@endpoint("GET")
def metrics_get_history(call: Call) -> Result:
    run = _run(call, details=False)
    key = call.string("metric_key")
    max_results = call.get("max_results")
    page = selectors.metric_history_rows(
        run_id=run.pk,
        key=key,
        max_results=None if max_results is None else parse_int64(max_results, field="max_results"),
        page_token=call.get("page_token"),
        order=selectors.HistoryOrder.TIME,  # MLflow's server's order, not the charts' step order
    )
    # Encoded from the rows directly: a 25,000-point page is most of this request's work.
    body = '{"metrics":' + points_json(page.items, key=key)
    if page.next_page_token:
        body += ',"next_page_token":' + json.dumps(page.next_page_token)
    return HttpResponse(body + "}", content_type="application/json")


@endpoint("GET")
def artifacts_list(call: Call) -> Result:
    """The tracking API's own listing (`/mlflow/artifacts/list`), paths relative to the run."""
    run = _run(call, details=False)
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
