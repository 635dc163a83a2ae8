"""Output shapes of the native tracking API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from experiments.models import Experiment, Run
from experiments.validation import json_float
from studio.api.fields import Int64Field


class ExperimentSerializer(serializers.Serializer[Any]):
    id = Int64Field()
    team = serializers.CharField(source="team.slug")
    name = serializers.CharField()
    description = serializers.CharField()
    lifecycle = serializers.CharField()
    tags = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    deleted_at = serializers.DateTimeField(allow_null=True)

    def get_tags(self, experiment: Experiment) -> dict[str, str]:
        return {tag.key: tag.value for tag in experiment.tags.all()}


class RunSerializer(serializers.Serializer[Any]):
    """A run with its params, tags and each metric's summary (latest value, step and
    timestamp, min, max, count). Non-finite values are "NaN" / "Infinity" / "-Infinity"."""

    run_id = serializers.CharField(source="run_uuid")
    id = Int64Field()
    experiment_id = Int64Field()
    experiment = serializers.CharField(source="experiment.name")
    team = serializers.CharField(source="experiment.team.slug")
    name = serializers.CharField()
    status = serializers.CharField()
    lifecycle = serializers.CharField()
    start_time = Int64Field()
    end_time = Int64Field(allow_null=True)
    # DRF pops declared fields off the class, so this name does not shadow Field.source.
    source = serializers.CharField()  # type: ignore[assignment]
    job = serializers.SerializerMethodField()
    user = serializers.CharField(source="created_by.username", default=None)
    artifact_uri = serializers.CharField()
    deleted_at = serializers.DateTimeField(allow_null=True)
    params = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()

    def get_job(self, run: Run) -> dict[str, Any] | None:
        job = getattr(run, "job", None)  # the reverse one-to-one, joined by the selectors
        return None if job is None else {"id": job.pk, "name": job.name}

    def get_params(self, run: Run) -> dict[str, str]:
        return {param.key: param.value for param in run.params.all()}

    def get_tags(self, run: Run) -> dict[str, str]:
        return {tag.key: tag.value for tag in run.tags.all()}

    def get_metrics(self, run: Run) -> dict[str, dict[str, Any]]:
        return {
            summary.key: {
                "value": json_float(summary.last_value),
                "step": summary.last_step,
                "timestamp": summary.last_timestamp,
                "min": None if summary.min_value is None else json_float(summary.min_value),
                "max": None if summary.max_value is None else json_float(summary.max_value),
                "count": summary.count,
            }
            for summary in run.metric_summaries.all()
        }


class ArtifactEntrySerializer(serializers.Serializer[Any]):
    path = serializers.CharField()
    is_dir = serializers.BooleanField()
    size = Int64Field(allow_null=True)
