"""The keys the platform writes for jobs, which users may not overwrite.

- a training job writes `<output path>/<job name>/output/model.tar.gz` and `output.tar.gz`
  (jobs.runner): its whole `<output path>/<job name>/output/` folder is the platform's;
- a batch transform writes `<output path>/<input's relative path>.out` (transform.runner):
  every `.out` object below a transform's output path is the platform's (other keys there
  stay the team's: an output path may be a folder users write to as well);
- and whatever key a job recorded as its model or output archive.

A job is matched whatever its status: a pending job's output folder is not a place to
prepare a swap in either. One query per checked key.
"""

from __future__ import annotations

from django.db.models import Q

from jobs.models import Job, JobKind
from studio.artifacts import get_store

OUTPUT_FOLDER = "output"
TRANSFORM_SUFFIX = ".out"


def job_output_write_refusal(key: str) -> str | None:
    """Why users may not write `key`: a job's output, or None."""
    segments = key.split("/")
    if len(segments) < 3 or segments[0] != "teams":
        return None
    store = get_store()
    uri = store.uri(key)
    match = Q(model_artifact_uri=uri) | Q(output_artifact_uri=uri)
    # <output path>/<name>/output/<...>: the output path is at least the team's folder.
    for index in range(3, len(segments) - 1):
        if segments[index] == OUTPUT_FOLDER:
            match |= Q(
                kind=JobKind.TRAINING,
                name=segments[index - 1],
                output_path=store.uri("/".join(segments[: index - 1])),
            )
    if key.endswith(TRANSFORM_SUFFIX):
        folders = [store.uri("/".join(segments[:end])) for end in range(2, len(segments))]
        match |= Q(kind=JobKind.TRANSFORM, output_path__in=folders)
    job = Job.objects.filter(team__slug=segments[1]).filter(match).only("name", "kind").first()
    if job is None:
        return None
    return (
        f"it is an output of {job.get_kind_display().lower()} job {job.name}, which only the "
        "platform writes"
    )
