"""How a call to MLflow's tracking routes is taken: who calls (a bearer token, kept a few
seconds), for which team, with which parameters, and MLflow's errors out; and the lookups
every handler shares. The handlers (`experiments`, `runs`, `artifacts`) answer from the same
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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from experiments import selectors, services
from experiments.mlflow import protocol
from experiments.mlflow.protocol import MlflowError
from experiments.models import Experiment, Run
from experiments.validation import parse_int64
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


def lookup_experiment(
    call: Call, experiment_id: Any, *, create_default: bool = False
) -> Experiment:
    if str(experiment_id) == protocol.DEFAULT_EXPERIMENT_ID:
        if create_default:
            services.experiment_get_or_create(
                team=call.team, name=protocol.DEFAULT_EXPERIMENT_NAME, actor=call.user
            )
        return selectors.experiment_by_name(
            call.user, team=call.team, name=protocol.DEFAULT_EXPERIMENT_NAME
        )
    return selectors.experiment_for_user(call.user, str(experiment_id), team=call.team)


def lookup_run(call: Call, *, details: bool = True) -> Run:
    run_id = call.get("run_id") or call.get("run_uuid")
    if run_id is None:
        raise MlflowError(
            "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'run_id'."
        )
    return selectors.run_for_user(call.user, str(run_id), team=call.team, details=details)


def view_type_of(value: Any) -> str:
    if value in (None, ""):
        return selectors.ViewType.ACTIVE_ONLY
    text = str(value)
    return protocol.VIEW_TYPES.get(text, text)


def max_results_of(call: Call, default: int) -> int:
    value = call.get("max_results")
    return default if value is None else parse_int64(value, field="max_results")
