"""REST for jobs: create (training; processing's is jobs/api/processing.py, batch
transform's the transform app's), list, describe, stop, logs (paged and as a download).
Creating takes an optional `Idempotency-Key` header: a retried request with the same key and
body gets the job the first one made (see docs/jobs.md)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import selectors
from jobs.models import JobKind, JobLogLine, JobStatus
from jobs.services.idempotency import Idempotency
from jobs.services.lifecycle import job_stop
from jobs.services.submission import ChannelRequest, JobRequest, MetricDefinition, job_create
from studio.accounts.models import Team
from studio.accounts.selectors import default_team_for_user, in_team, team_for_user
from studio.api.fields import Int64Field
from studio.api.pagination import CursorPagination
from studio.api.transitions import TransitionSerializer
from studio.api.views import StudioAPIView
from studio.errors import ValidationError


class JobTransitionSerializer(TransitionSerializer):
    """The shape of every transition log, with the job's secondary status; `status` is
    `to_status` (the name this API gave it first)."""

    class Meta:
        ref_name = "JobTransition"  # the schema's component; `Transition` alone is ambiguous

    status = serializers.CharField(source="to_status")
    secondary_status = serializers.CharField()


class ProgressSerializer(serializers.Serializer[Any]):
    """Batch transform progress; a record is a line (SplitType Line) or an object (None)."""

    records_done = Int64Field()
    records_total = Int64Field()
    files_done = Int64Field()
    files_total = Int64Field()


class JobSerializer(serializers.Serializer[Any]):
    id = Int64Field()
    name = serializers.CharField()
    team = serializers.CharField(source="team.slug")
    kind = serializers.CharField()
    image = serializers.CharField()
    framework = serializers.CharField()
    entry_point = serializers.CharField()
    source_uri = serializers.CharField()
    hyperparameters = serializers.DictField(child=serializers.CharField())
    environment = serializers.DictField(child=serializers.CharField())
    input_channels = serializers.ListField(child=serializers.DictField())
    output_path = serializers.CharField()
    metric_definitions = serializers.ListField(child=serializers.DictField())
    instance_type = serializers.CharField()
    instance_count = Int64Field()
    max_runtime_seconds = Int64Field()
    enable_network = serializers.BooleanField()
    container_entrypoint = serializers.ListField(child=serializers.CharField(), allow_null=True)
    container_arguments = serializers.ListField(child=serializers.CharField(), allow_null=True)
    # Batch transform jobs: the request (model, input, splitting, batching, output) and what
    # the runner settled on (`effective`); {} for other kinds.
    transform = serializers.DictField()
    # CheckpointConfig: {"uri": ..., "local_path": ...}, or {} when the job has none.
    checkpoint = serializers.DictField(child=serializers.CharField())
    # Processing jobs: every input and output with its `uri` and `local_path`, the script
    # of a script processor (`code`) and the container's exit message; {} for other kinds.
    processing = serializers.DictField()
    progress = ProgressSerializer(source="*")
    status = serializers.CharField()
    secondary_status = serializers.CharField()
    status_message = serializers.CharField()
    failure_reason = serializers.CharField()
    exit_code = Int64Field(allow_null=True)
    runtime = serializers.CharField()
    model_artifact_uri = serializers.CharField()
    output_artifact_uri = serializers.CharField()
    run_id = Int64Field(allow_null=True)
    log_line_count = Int64Field()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    training_started_at = serializers.DateTimeField(allow_null=True)
    training_ended_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)


class JobDetailSerializer(JobSerializer):
    transitions = JobTransitionSerializer(many=True)
    downloads = serializers.SerializerMethodField()

    def get_downloads(self, job: Any) -> dict[str, str]:
        return selectors.job_download_links(job)


IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    location=OpenApiParameter.HEADER,
    required=False,
    description="Any unique string (a UUID): retrying with the same key and body returns the "
    "same job instead of making a second one; the same key with another body is a 422.",
)


def idempotency_from_request(request: Request, operation: str) -> Idempotency | None:
    """The request's `Idempotency-Key` header, with a digest of what it asks for (the
    operation and the parsed body, so key order and spacing do not matter)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise ValidationError(
            "Idempotency-Key: 1-255 printable ASCII characters without spaces (a UUID will do)",
            field="Idempotency-Key",
        )
    body = json.dumps(
        [operation, request.data], sort_keys=True, separators=(",", ":"), default=str
    ).encode()
    return Idempotency(key=key, digest=hashlib.sha256(body).hexdigest())


class JobListApi(StudioAPIView):
    pagination_class = CursorPagination

    class InputSerializer(serializers.Serializer[Any]):
        class ChannelSerializer(serializers.Serializer[Any]):
            name = serializers.CharField()
            uri = serializers.CharField()
            content_type = serializers.CharField(required=False, allow_blank=True, default="")
            input_mode = serializers.CharField(required=False, default="File")
            # S3DataDistributionType: FullyReplicated, or ShardedByS3Key (each instance a
            # disjoint share of the objects).
            distribution = serializers.CharField(required=False, default="FullyReplicated")

        class MetricSerializer(serializers.Serializer[Any]):
            name = serializers.CharField()
            regex = serializers.CharField()

        class CheckpointConfigSerializer(serializers.Serializer[Any]):
            """SageMaker's CheckpointConfig (S3Uri, LocalPath); the URI may be given as
            `s3_uri` or `uri`."""

            s3_uri = serializers.CharField(required=False, allow_blank=True)
            uri = serializers.CharField(required=False, allow_blank=True)
            local_path = serializers.CharField(required=False, allow_blank=True)

        team = serializers.CharField(required=False)
        name = serializers.CharField()
        instance_type = serializers.CharField()
        image = serializers.CharField(required=False, allow_blank=True, default="")
        framework = serializers.CharField(required=False, allow_blank=True, default="")
        entry_point = serializers.CharField(required=False, allow_blank=True, default="")
        source_uri = serializers.CharField(required=False, allow_blank=True, default="")
        hyperparameters = serializers.DictField(required=False, default=dict)
        environment = serializers.DictField(required=False, default=dict)
        input_channels = ChannelSerializer(many=True, required=False, default=list)
        output_path = serializers.CharField(required=False, allow_blank=True, default="")
        instance_count = Int64Field(required=False, default=1)
        max_runtime_seconds = Int64Field(required=False, default=86400)
        metric_definitions = MetricSerializer(many=True, required=False, default=list)
        container_entrypoint = serializers.ListField(
            child=serializers.CharField(), required=False, allow_null=True, default=None
        )
        container_arguments = serializers.ListField(
            child=serializers.CharField(), required=False, allow_null=True, default=None
        )
        enable_network = serializers.BooleanField(required=False, default=False)
        experiment = serializers.CharField(required=False, allow_blank=True, default="")
        checkpoint_config = CheckpointConfigSerializer(
            required=False, allow_null=True, default=None
        )

    class FilterSerializer(serializers.Serializer[Any]):
        team = serializers.CharField(required=False)
        status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
        kind = serializers.ChoiceField(choices=JobKind.choices, required=False)
        name = serializers.CharField(required=False)

    @extend_schema(
        parameters=[FilterSerializer], responses=JobSerializer(many=True), operation_id="jobs_list"
    )
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        jobs = in_team(
            selectors.jobs_filtered(
                request.user,
                statuses=[data["status"]] if data.get("status") else None,
                kind=data.get("kind"),
                name=data.get("name"),
            ),
            request.user,
            data.get("team"),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(JobSerializer(page, many=True).data)

    @extend_schema(
        request=InputSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: JobSerializer},
        operation_id="jobs_create",
    )
    def post(self, request: Request) -> Response:
        idempotency = idempotency_from_request(request, "jobs_create")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        team = team_from_request(request, values.pop("team", None))
        job = job_create(
            team=team,
            actor=request.user,
            idempotency=idempotency,
            request=JobRequest(
                **{
                    k: v
                    for k, v in values.items()
                    if k not in ("input_channels", "metric_definitions")
                },
                channels=[ChannelRequest(**c) for c in values["input_channels"]],
                metric_definitions=[MetricDefinition(**m) for m in values["metric_definitions"]],
            ),
        )
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)


def team_from_request(request: Request, slug: str | None) -> Team:
    team = team_for_user(request.user, slug) if slug else default_team_for_user(request.user)
    if team is None:
        raise ValidationError("team: you are not a member of any team", field="team")
    return team


class JobDetailApi(StudioAPIView):
    @extend_schema(responses=JobDetailSerializer, operation_id="jobs_describe")
    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.job_for_user(request.user, job_id)
        return Response(JobDetailSerializer(job).data)


class JobStopApi(StudioAPIView):
    @extend_schema(request=None, responses=JobSerializer, operation_id="jobs_stop")
    def post(self, request: Request, job_id: int) -> Response:
        job = job_stop(job=selectors.job_for_user(request.user, job_id), actor=request.user)
        return Response(JobSerializer(job).data)


class JobLogsApi(StudioAPIView):
    class FilterSerializer(serializers.Serializer[Any]):
        after = Int64Field(required=False, default=0, min_value=0)
        limit = Int64Field(required=False, default=1000, min_value=1, max_value=10000)

    class LineSerializer(serializers.Serializer[Any]):
        seq = Int64Field()
        stream = serializers.CharField()
        host = serializers.CharField(
            help_text="the instance that printed it (`algo-1`...); empty for the platform's lines"
        )
        at = serializers.DateTimeField()
        line = serializers.CharField()

    class OutputSerializer(serializers.Serializer[Any]):
        results = serializers.ListField(child=serializers.DictField())  # LineSerializer's
        next_after = Int64Field(help_text="`after` for the next page")
        status = serializers.CharField(help_text="the job's status")
        total = Int64Field(help_text="lines the job has logged so far")

    @extend_schema(
        parameters=[FilterSerializer], responses=OutputSerializer, operation_id="jobs_logs"
    )
    def get(self, request: Request, job_id: int) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        job = selectors.job_for_user(request.user, job_id)
        lines = list(selectors.job_log_page(job, **params.validated_data))
        return Response(
            {
                "results": self.LineSerializer(lines, many=True).data,
                "next_after": lines[-1].seq if lines else params.validated_data["after"],
                "status": job.status,
                "total": job.log_line_count,
            }
        )


class JobLogDownloadApi(StudioAPIView):
    """The whole log as text; in a job of several instances each instance's line starts
    with its host (`[algo-2] `), the platform's own lines with nothing."""

    @extend_schema(responses={(200, "text/plain"): str}, operation_id="jobs_logs_download")
    def get(self, request: Request, job_id: int) -> StreamingHttpResponse:
        job = selectors.job_for_user(request.user, job_id)
        labelled = job.instance_count > 1

        def text(row: JobLogLine) -> str:
            return f"[{row.host}] {row.line}\n" if labelled and row.host else f"{row.line}\n"

        def lines() -> Iterator[bytes]:
            after = 0
            while True:
                page = list(selectors.job_log_page(job, after=after, limit=5000))
                if not page:
                    return
                yield "".join(text(row) for row in page).encode()
                after = page[-1].seq

        response = StreamingHttpResponse(lines(), content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{job.name}.log"'
        return response
