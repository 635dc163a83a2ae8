"""Reads of jobs, always scoped to the reader's teams."""

from __future__ import annotations

from collections.abc import Collection

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from jobs.models import ACTIVE_STATUSES, Job, JobLogLine
from jobs.services.checkpoints import LOG_PREFIX as CHECKPOINT_LOG_PREFIX
from studio.accounts.models import Team
from studio.accounts.selectors import teams_for_user
from studio.errors import NotFound


def jobs_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Job]:
    return Job.objects.filter(team__in=teams_for_user(user)).select_related("team", "created_by")


def jobs_filtered(
    user: AbstractBaseUser | AnonymousUser,
    *,
    team: Team | None = None,
    statuses: Collection[str] | None = None,
    kind: str | None = None,
    name: str | None = None,
) -> QuerySet[Job]:
    """The reader's jobs as every list shows them (the REST API and so the CLI, the jobs
    page): of `team` when given, with a status among `statuses` (none given, or an empty
    collection: any status), of `kind`, and with `name` in their name, in any case."""
    jobs = jobs_for_user(user)
    if team is not None:
        jobs = jobs.filter(team=team)
    if statuses:
        jobs = jobs.filter(status__in=sorted(statuses))
    if kind:
        jobs = jobs.filter(kind=kind)
    if name:
        jobs = jobs.filter(name__icontains=name)
    return jobs


def job_for_user(user: AbstractBaseUser | AnonymousUser, job_id: int) -> Job:
    job = jobs_for_user(user).filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def job_log_page(job: Job, *, after: int = 0, limit: int = 1000) -> QuerySet[JobLogLine]:
    return JobLogLine.objects.filter(job=job, seq__gt=after).order_by("seq")[:limit]


def job_checkpoint_last_line(job: Job) -> JobLogLine | None:
    """The job's last log line about its checkpoints (restored, or a sync's files and
    bytes), or None: what the job page says of them."""
    if not job.checkpoint:
        return None
    return (
        JobLogLine.objects.filter(job=job, stream="system", line__startswith=CHECKPOINT_LOG_PREFIX)
        .order_by("-seq")
        .first()
    )


def job_download_links(job: Job) -> dict[str, str]:
    """Signed links, through the studio, to the job's model and output archives. An archive
    whose URI is not in the configured store any more (the store moved) gets no link."""
    from django.conf import settings

    from studio.artifacts import get_store, sign_download
    from studio.errors import StudioloError

    store = get_store()
    links: dict[str, str] = {}
    for name, uri in (("model", job.model_artifact_uri), ("output", job.output_artifact_uri)):
        if not uri:
            continue
        try:
            key = store.key_from_uri(uri)
        except StudioloError:
            continue
        links[name] = "/artifacts/download?" + sign_download(
            key, secret=settings.SECRET_KEY, filename=f"{job.name}-{name}.tar.gz"
        )
    return links


def runs_of_active_jobs() -> Q:
    """A condition on experiments' runs: the run of a job still going (its log writer records
    into the run). Retention keeps those past their retention period."""
    return Q(job__status__in=ACTIVE_STATUSES)


def processing_output_links(job: Job, *, limit: int = 20) -> list[dict[str, object]]:
    """Each output of a processing job with signed download links to the first `limit`
    files found below its URI (the job page's links; the CLI and API give the URI)."""
    from django.conf import settings

    from studio.artifacts import get_store, sign_download
    from studio.errors import StudioloError

    store = get_store()
    result: list[dict[str, object]] = []
    for output in (job.processing or {}).get("outputs", []):
        files: list[dict[str, str]] = []
        more = False
        try:
            prefix = store.key_from_uri(output["uri"]).rstrip("/") + "/"
            for info in store.list(prefix):
                if len(files) == limit:
                    more = True
                    break
                relative = info.key[len(prefix) :]
                files.append(
                    {
                        "name": relative,
                        "href": "/artifacts/download?"
                        + sign_download(
                            info.key,
                            secret=settings.SECRET_KEY,
                            filename=relative.rsplit("/", 1)[-1],
                        ),
                    }
                )
        except StudioloError:
            pass  # not in the configured store any more: the URI alone is shown
        result.append({**output, "files": files, "more": more})
    return result
