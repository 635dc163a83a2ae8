"""Reads of jobs, always scoped to the reader's teams."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from jobs.models import Job, JobLogLine
from studio.accounts.selectors import teams_for_user
from studio.errors import NotFound


def jobs_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Job]:
    return Job.objects.filter(team__in=teams_for_user(user)).select_related("team", "created_by")


def job_for_user(user: AbstractBaseUser | AnonymousUser, job_id: int) -> Job:
    job = jobs_for_user(user).filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def job_log_page(job: Job, *, after: int = 0, limit: int = 1000) -> QuerySet[JobLogLine]:
    return JobLogLine.objects.filter(job=job, seq__gt=after).order_by("seq")[:limit]
