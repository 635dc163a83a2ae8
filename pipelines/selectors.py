"""Reads of pipelines, scoped to the reader's teams."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Max, QuerySet

from pipelines.models import Pipeline, PipelineExecution, PipelineVersion, StepExecution
from studio.accounts.models import Team
from studio.accounts.selectors import teams_for_user
from studio.errors import NotFound


def pipelines_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Pipeline]:
    """With `version_count` and `latest_version` (the number of the newest version)."""
    return (
        Pipeline.objects.filter(team__in=teams_for_user(user))
        .select_related("team", "created_by")
        .annotate(version_count=Count("versions"), latest_version=Max("versions__number"))
    )


def pipeline_for_user(user: AbstractBaseUser | AnonymousUser, *, team: Team, name: str) -> Pipeline:
    pipeline = pipelines_for_user(user).filter(team=team, name=name).first()
    if pipeline is None:
        raise NotFound(f"pipeline {name!r} not found", field="pipeline")
    return pipeline


def pipeline_versions(pipeline: Pipeline) -> QuerySet[PipelineVersion]:
    """Newest first."""
    return pipeline.versions.select_related("created_by").order_by("-number")


def pipeline_version(pipeline: Pipeline, number: int | None = None) -> PipelineVersion:
    """Version `number` of the pipeline, or its newest when None."""
    versions = pipeline_versions(pipeline)
    version = versions.first() if number is None else versions.filter(number=number).first()
    if version is None:
        raise NotFound(f"pipeline {pipeline.name!r} has no version {number}", field="version")
    return version


def executions_of(pipeline: Pipeline) -> QuerySet[PipelineExecution]:
    """Newest first."""
    return pipeline.executions.select_related("pipeline", "version", "started_by").order_by(
        "-started_at", "-id"
    )


def execution_for_user(
    user: AbstractBaseUser | AnonymousUser, execution_id: int
) -> PipelineExecution:
    execution = (
        PipelineExecution.objects.filter(pk=execution_id, pipeline__team__in=teams_for_user(user))
        .select_related("pipeline__team", "version", "started_by")
        .first()
    )
    if execution is None:
        raise NotFound(f"pipeline execution {execution_id} not found", field="execution")
    return execution


def execution_steps(execution: PipelineExecution) -> QuerySet[StepExecution]:
    """In the order the execution created them (the definition's DAG order)."""
    return execution.steps.select_related("job", "model_package__group").order_by("id")
