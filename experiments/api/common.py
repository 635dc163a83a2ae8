"""What the experiments API's views share: the team a request names, its run, and MLflow's
size limit for one logging request."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from experiments import selectors
from experiments.api.serializers import RunSerializer
from experiments.models import Run
from experiments.validation import MAX_BATCH_REQUEST_BYTES
from studio.accounts.models import Team
from studio.accounts.selectors import default_team_for_user, team_for_user
from studio.api.fields import Int64Field
from studio.errors import ValidationError


def request_team(request: Request, slug: str | None) -> Team:
    team = team_for_user(request.user, slug) if slug else default_team_for_user(request.user)
    if team is None:
        raise ValidationError("team: you are not a member of any team", field="team")
    return team


def request_run(request: Request, run_id: str, *, details: bool = True) -> Run:
    return selectors.run_for_user(request.user, run_id, details=details)


def run_data(run_id: str, request: Request) -> dict[str, Any]:
    """The run as it is now (re-read, so that prefetched params, tags and metrics are fresh)."""
    return dict(RunSerializer(request_run(request, run_id)).data)


def check_body_size(request: Request) -> None:
    """MLflow's 1 MB limit for one logging request, checked before the body is parsed."""
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > MAX_BATCH_REQUEST_BYTES:
        raise ValidationError(
            f"body: a logging request holds at most {MAX_BATCH_REQUEST_BYTES} bytes, "
            f"got {length}; split it across several requests",
            field="body",
        )


class BatchResultSerializer(serializers.Serializer[Any]):
    metrics = Int64Field()
    params = Int64Field()
    tags = Int64Field()
