"""REST for processing jobs: SageMaker's CreateProcessingJob. The job it makes is a job like
any other: read, stopped and followed through the jobs API (`/api/v1/jobs/<id>`), whose
`processing` section lists every input and output with its `uri`."""

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
from jobs.services.processing import (
    InputRequest,
    OutputRequest,
    ProcessingRequest,
    processing_job_create,
)
from studio.api.fields import Int64Field
from studio.api.views import StudioAPIView


class ProcessingJobCreateApi(StudioAPIView):
    """SageMaker's CreateProcessingJob; the job is then read, stopped and followed through
    /api/v1/jobs/<id> like any other."""

    class InputSerializer(serializers.Serializer[Any]):
        # Choices are checked by the service, which names the field in its 400 answer.
        class ProcessingInputSerializer(serializers.Serializer[Any]):
            class Meta:
                ref_name = "ProcessingInputRequest"

            name = serializers.CharField()
            uri = serializers.CharField(help_text="S3Uri: an object or a prefix of the store")
            local_path = serializers.CharField(
                required=False,
                allow_blank=True,
                default="",
                help_text="under /opt/ml/processing/ (default /opt/ml/processing/input/<name>)",
            )
            distribution = serializers.CharField(
                required=False,
                default="FullyReplicated",
                help_text="FullyReplicated | ShardedByS3Key",
            )
            input_mode = serializers.CharField(required=False, default="File")

        class ProcessingOutputSerializer(serializers.Serializer[Any]):
            class Meta:
                ref_name = "ProcessingOutputRequest"

            name = serializers.CharField()
            local_path = serializers.CharField(
                required=False,
                allow_blank=True,
                default="",
                help_text="under /opt/ml/processing/ (default /opt/ml/processing/output/<name>)",
            )
            uri = serializers.CharField(
                required=False,
                allow_blank=True,
                default="",
                help_text="S3Uri (default: the team's processing/<job>/output/<name>)",
            )
            upload_mode = serializers.CharField(
                required=False, default="EndOfJob", help_text="EndOfJob | Continuous"
            )

        team = serializers.CharField(required=False)
        name = serializers.CharField()
        instance_type = serializers.CharField()
        instance_count = Int64Field(required=False, default=1)
        image = serializers.CharField(required=False, allow_blank=True, default="")
        framework = serializers.CharField(required=False, allow_blank=True, default="")
        code = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            help_text="a script processor's script (its store URI), run with the framework's "
            "command (or container_entrypoint) from /opt/ml/processing/input/code/",
        )
        container_entrypoint = serializers.ListField(
            child=serializers.CharField(), required=False, allow_null=True, default=None
        )
        container_arguments = serializers.ListField(
            child=serializers.CharField(), required=False, allow_null=True, default=None
        )
        environment = serializers.DictField(required=False, default=dict)
        inputs = ProcessingInputSerializer(many=True, required=False, default=list)
        outputs = ProcessingOutputSerializer(many=True, required=False, default=list)
        max_runtime_seconds = Int64Field(required=False, default=86400)
        enable_network = serializers.BooleanField(required=False, default=False)
        experiment = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(
        request=InputSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: JobSerializer},
        operation_id="processing_jobs_create",
    )
    def post(self, request: Request) -> Response:
        idempotency = idempotency_from_request(request, "processing_jobs_create")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        team = team_from_request(request, values.pop("team", None))
        inputs = [InputRequest(**item) for item in values.pop("inputs")]
        outputs = [OutputRequest(**item) for item in values.pop("outputs")]
        job = processing_job_create(
            team=team,
            actor=request.user,
            request=ProcessingRequest(**values, inputs=inputs, outputs=outputs),
            idempotency=idempotency,
        )
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)
