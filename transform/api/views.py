"""REST for batch transform: SageMaker's CreateTransformJob. The job it makes is a job like
any other: read, stopped and followed through the jobs API (`/api/v1/jobs/<id>`)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.api.views import (
    IDEMPOTENCY_HEADER,
    JobSerializer,
    idempotency_from_request,
    team_from_request,
)
from studio.api.fields import Int64Field
from studio.api.views import StudioAPIView
from transform.services import TransformRequest, transform_job_create


class TransformJobCreateApi(StudioAPIView):
    """SageMaker's CreateTransformJob; the job is then read, stopped and followed through
    /api/v1/jobs/<id> like any other."""

    class InputSerializer(serializers.Serializer[Any]):
        # Choices are checked by the service, which names the field in its 400 answer.
        team = serializers.CharField(required=False)
        name = serializers.CharField()
        model = serializers.CharField(
            help_text="GROUP/VERSION of an Approved package, or a model name"
        )
        input_uri = serializers.CharField(help_text="S3Uri of an S3Prefix (or one object)")
        instance_type = serializers.CharField()
        output_path = serializers.CharField(required=False, allow_blank=True, default="")
        content_type = serializers.CharField(required=False, allow_blank=True, default="")
        split_type = serializers.CharField(required=False, default="None")
        compression_type = serializers.CharField(required=False, default="None")
        batch_strategy = serializers.CharField(required=False, allow_blank=True, default="")
        max_payload_mb = Int64Field(required=False, allow_null=True, default=None)
        max_concurrent_transforms = Int64Field(required=False, allow_null=True, default=None)
        accept = serializers.CharField(required=False, allow_blank=True, default="")
        assemble_with = serializers.CharField(required=False, default="None")
        environment = serializers.DictField(required=False, default=dict)
        instance_count = Int64Field(required=False, default=1)
        max_runtime_seconds = Int64Field(required=False, default=86400)
        invocations_timeout_seconds = Int64Field(required=False, default=600)
        invocations_max_retries = Int64Field(required=False, default=3)
        experiment = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(
        request=InputSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: JobSerializer},
        operation_id="transform_jobs_create",
    )
    def post(self, request: Request) -> Response:
        idempotency = idempotency_from_request(request, "transform_jobs_create")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        team = team_from_request(request, values.pop("team", None))
        job = transform_job_create(
            team=team,
            actor=request.user,
            request=TransformRequest(**values),
            idempotency=idempotency,
        )
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)
