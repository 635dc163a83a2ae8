"""REST for pipeline executions: start one (parameters checked against the definition), list a
pipeline's, describe one with its steps (status, job, outputs, failure reason), stop one."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines import selectors
from pipelines.api.views import TEAM_PARAMETER, pipeline_of_request
from pipelines.models import PipelineExecution, StepExecution
from pipelines.services import execution_start, execution_stop
from studio.api.fields import Int64Field
from studio.api.pagination import CursorPagination
from studio.api.views import StudioAPIView


class ExecutionPagination(CursorPagination):
    ordering: Any = ("-started_at", "-id")


class StepExecutionSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(source="step_name")
    type = serializers.CharField(source="step_type")
    status = serializers.CharField(
        help_text="Pending, Starting, Executing, Succeeded, Failed, Stopped or NotExecuted "
        "(a Condition's untaken branch, or a step that could not run after another one)"
    )
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    job = Int64Field(source="job_id", allow_null=True)
    job_name = serializers.SerializerMethodField()
    model_package = Int64Field(source="model_package_id", allow_null=True)
    outputs = serializers.JSONField(help_text="the step's properties (its Describe* document)")
    failure_reason = serializers.CharField()
    attempts = serializers.IntegerField()

    def get_job_name(self, step: StepExecution) -> str | None:
        return step.job.name if step.job is not None else None


class ExecutionSerializer(serializers.Serializer[Any]):
    id = Int64Field()
    pipeline = serializers.CharField(source="pipeline.name")
    version = serializers.IntegerField(source="version.number")
    status = serializers.CharField()
    display_name = serializers.CharField()
    parameters = serializers.JSONField()
    failure_reason = serializers.CharField()
    started_by = serializers.CharField(source="started_by.username", allow_null=True, default=None)
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)


class ExecutionDetailSerializer(ExecutionSerializer):
    steps = serializers.SerializerMethodField()

    @extend_schema_field(StepExecutionSerializer(many=True))
    def get_steps(self, execution: PipelineExecution) -> list[dict[str, Any]]:
        steps = selectors.execution_steps(execution)
        return list(StepExecutionSerializer(steps, many=True).data)


def _detail(execution: PipelineExecution) -> dict[str, Any]:
    return dict(ExecutionDetailSerializer(execution).data)


class ExecutionListApi(StudioAPIView):
    pagination_class = ExecutionPagination

    class InputSerializer(serializers.Serializer[Any]):
        parameters = serializers.DictField(
            required=False,
            default=dict,
            help_text="{name: value}: JSON values, or text as a command line gives it",
        )
        version = serializers.IntegerField(
            required=False, allow_null=True, default=None, help_text="default: the newest"
        )
        display_name = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=256
        )

    @extend_schema(
        parameters=[TEAM_PARAMETER],
        responses=ExecutionSerializer(many=True),
        operation_id="pipelines_executions",
    )
    def get(self, request: Request, name: str) -> Response:
        pipeline = pipeline_of_request(request, name)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.executions_of(pipeline), request, view=self)
        return paginator.get_paginated_response(ExecutionSerializer(page, many=True).data)

    @extend_schema(
        parameters=[TEAM_PARAMETER],
        request=InputSerializer,
        responses={201: ExecutionDetailSerializer},
        operation_id="pipelines_start",
    )
    def post(self, request: Request, name: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        pipeline = pipeline_of_request(request, name)
        version = None
        if values["version"] is not None:
            version = selectors.pipeline_version(pipeline, values["version"])
        execution = execution_start(
            pipeline=pipeline,
            actor=request.user,
            parameters=values["parameters"],
            version=version,
            display_name=values["display_name"],
        )
        execution = selectors.execution_for_user(request.user, execution.pk)
        return Response(_detail(execution), status=status.HTTP_201_CREATED)


class ExecutionDetailApi(StudioAPIView):
    @extend_schema(responses=ExecutionDetailSerializer, operation_id="pipeline_executions_describe")
    def get(self, request: Request, execution_id: int) -> Response:
        return Response(_detail(selectors.execution_for_user(request.user, execution_id)))


class ExecutionStopApi(StudioAPIView):
    @extend_schema(
        request=None, responses=ExecutionDetailSerializer, operation_id="pipeline_executions_stop"
    )
    def post(self, request: Request, execution_id: int) -> Response:
        execution = selectors.execution_for_user(request.user, execution_id)
        execution_stop(execution=execution, actor=request.user)
        return Response(_detail(selectors.execution_for_user(request.user, execution_id)))
