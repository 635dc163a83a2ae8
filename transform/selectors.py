from __future__ import annotations

from collections.abc import Iterable

from jobs.models import ACTIVE_STATUSES, Job, JobKind


def transform_models_in_use() -> Iterable[str]:
    """The models (artifact URIs) of batch transforms that have not ended: a worker keeps
    them staged (`compute.staging.staged_models_prune`)."""
    for settings_ in Job.objects.filter(
        kind=JobKind.TRANSFORM, status__in=ACTIVE_STATUSES
    ).values_list("transform", flat=True):
        if isinstance(settings_, dict) and settings_.get("model_artifact_uri"):
            yield str(settings_["model_artifact_uri"])
