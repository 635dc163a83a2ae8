"""REST for pipelines' definitions: create and list, describe and update (a new version when
the definition changed), the versions and the diff between two. A pipeline is named within a
team: `?team=` (or `team` in the body) picks it, else the caller's first team."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines import selectors
from pipelines.definition import definition_parse
from pipelines.models import Pipeline, PipelineVersion
from pipelines.services import pipeline_create, pipeline_update, version_diff
from studio.accounts.models import Team
from studio.accounts.selectors import default_team_for_user, team_for_user
from studio.api.fields import Int64Field
from studio.api.pagination import CursorPagination
from studio.api.views import StudioAPIView
from studio.errors import ValidationError

TEAM_PARAMETER = OpenApiParameter(
    "team", str, description="the team's slug; default: the caller's first team"
)


class PipelinePagination(CursorPagination):
    # Names repeat across teams: the id breaks ties (DRF takes a tuple; its stubs say str).
    ordering: Any = ("name", "id")


def _team(request: Request, slug: object) -> Team:
    if isinstance(slug, str) and slug:
        return team_for_user(request.user, slug)
    team = default_team_for_user(request.user)
    if team is None:
        raise ValidationError("team: you are not a member of any team", field="team")
    return team


def pipeline_of_request(request: Request, name: str) -> Pipeline:
    team = _team(request, request.query_params.get("team"))
    return selectors.pipeline_for_user(request.user, team=team, name=name)


# --- output -----------------------------------------------------------------------------------


class StepSummarySerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    type = serializers.CharField()
    depends_on = serializers.ListField(child=serializers.CharField())
    condition = serializers.CharField(help_text='the Condition step whose branch holds it, or ""')
    branch = serializers.CharField(help_text='IfSteps or ElseSteps with `condition`, or ""')
    is_function = serializers.BooleanField(help_text="a Python function step (the SDK's @step)")
    cache_enabled = serializers.BooleanField()


class ParameterSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    type = serializers.CharField()
    default = serializers.JSONField(allow_null=True)


class VersionSerializer(serializers.Serializer[Any]):
    number = Int64Field()
    digest = serializers.CharField()
    description = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()


class VersionDetailSerializer(VersionSerializer):
    definition = serializers.JSONField()
    parameters = serializers.SerializerMethodField()
    steps = serializers.SerializerMethodField()

    @extend_schema_field(ParameterSerializer(many=True))
    def get_parameters(self, version: PipelineVersion) -> list[dict[str, Any]]:
        parsed = definition_parse(version.definition)
        return [{"name": p.name, "type": p.type, "default": p.default} for p in parsed.parameters]

    @extend_schema_field(StepSummarySerializer(many=True))
    def get_steps(self, version: PipelineVersion) -> list[dict[str, Any]]:
        parsed = definition_parse(version.definition)
        order = [s.name for s in parsed.steps]
        return [
            {
                "name": s.name,
                "type": s.type,
                "depends_on": sorted(s.dependencies, key=order.index),
                "condition": s.condition,
                "branch": s.branch,
                "is_function": s.is_function,
                "cache_enabled": bool(s.cache and s.cache.enabled),
            }
            for s in parsed.steps
        ]


class PipelineSerializer(serializers.Serializer[Any]):
    id = Int64Field()
    team = serializers.CharField(source="team.slug")
    name = serializers.CharField()
    description = serializers.CharField()
    paused = serializers.BooleanField()
    latest_version = Int64Field(allow_null=True, default=None)
    version_count = Int64Field(default=0)
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PipelineDetailSerializer(PipelineSerializer):
    version = VersionDetailSerializer(help_text="the version asked for, the newest by default")


class UpdateResultSerializer(PipelineDetailSerializer):
    created = serializers.BooleanField(help_text="false: the definition was the newest version's")


class DiffSerializer(serializers.Serializer[Any]):
    a = Int64Field()
    b = Int64Field()
    same = serializers.BooleanField()
    diff = serializers.CharField(help_text="a unified diff of the canonical pretty JSON")


def _detail(pipeline: Pipeline, version: PipelineVersion, **extra: Any) -> dict[str, Any]:
    data = dict(PipelineSerializer(pipeline).data)
    data["version"] = VersionDetailSerializer(version).data
    data.update(extra)
    return data


# --- views ------------------------------------------------------------------------------------


class PipelineListApi(StudioAPIView):
    pagination_class = PipelinePagination

    class InputSerializer(serializers.Serializer[Any]):
        team = serializers.CharField(required=False, allow_blank=True, default="")
        name = serializers.CharField(max_length=256)
        definition = serializers.JSONField(
            help_text="SageMaker's pipeline definition: the JSON document, or its text"
        )
        description = serializers.CharField(required=False, allow_blank=True, default="")
        version_description = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(
        parameters=[TEAM_PARAMETER],
        responses=PipelineSerializer(many=True),
        operation_id="pipelines_list",
    )
    def get(self, request: Request) -> Response:
        team = request.query_params.get("team")
        pipelines = selectors.pipelines_for_user(request.user)
        if team:
            pipelines = pipelines.filter(team=team_for_user(request.user, team))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(pipelines, request, view=self)
        return paginator.get_paginated_response(PipelineSerializer(page, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: PipelineDetailSerializer},
        operation_id="pipelines_create",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        pipeline = pipeline_create(
            team=_team(request, values["team"]),
            name=values["name"],
            definition=values["definition"],
            description=values["description"],
            version_description=values["version_description"],
            actor=request.user,
        )
        pipeline = selectors.pipelines_for_user(request.user).get(pk=pipeline.pk)
        body = _detail(pipeline, selectors.pipeline_version(pipeline))
        return Response(body, status=status.HTTP_201_CREATED)


class PipelineDetailApi(StudioAPIView):
    class InputSerializer(serializers.Serializer[Any]):
        definition = serializers.JSONField(required=False)
        description = serializers.CharField(required=False, allow_blank=True)
        version_description = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(
        parameters=[
            TEAM_PARAMETER,
            OpenApiParameter("version", int, description="a version's number; default: newest"),
        ],
        responses=PipelineDetailSerializer,
        operation_id="pipelines_describe",
    )
    def get(self, request: Request, name: str) -> Response:
        pipeline = pipeline_of_request(request, name)
        raw = request.query_params.get("version")
        number = None
        if raw is not None:
            if not raw.isdigit():
                raise ValidationError("version: a whole number", field="version")
            number = int(raw)
        return Response(_detail(pipeline, selectors.pipeline_version(pipeline, number)))

    @extend_schema(
        parameters=[TEAM_PARAMETER],
        request=InputSerializer,
        responses=UpdateResultSerializer,
        operation_id="pipelines_update",
    )
    def put(self, request: Request, name: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "definition" not in values and "description" not in values:
            raise ValidationError(
                "definition: give a definition or a description", field="definition"
            )
        pipeline = pipeline_of_request(request, name)
        version, created = pipeline_update(
            pipeline=pipeline,
            actor=request.user,
            definition=values.get("definition"),
            description=values.get("description"),
            version_description=values["version_description"],
        )
        pipeline = selectors.pipelines_for_user(request.user).get(pk=pipeline.pk)
        return Response(_detail(pipeline, version, created=created))


class VersionListApi(StudioAPIView):
    @extend_schema(
        parameters=[TEAM_PARAMETER],
        responses=VersionSerializer(many=True),
        operation_id="pipelines_versions",
    )
    def get(self, request: Request, name: str) -> Response:
        pipeline = pipeline_of_request(request, name)
        return Response(VersionSerializer(selectors.pipeline_versions(pipeline), many=True).data)


class VersionDetailApi(StudioAPIView):
    @extend_schema(
        parameters=[TEAM_PARAMETER],
        responses=VersionDetailSerializer,
        operation_id="pipelines_version_describe",
    )
    def get(self, request: Request, name: str, number: int) -> Response:
        pipeline = pipeline_of_request(request, name)
        return Response(VersionDetailSerializer(selectors.pipeline_version(pipeline, number)).data)


class VersionDiffApi(StudioAPIView):
    @extend_schema(
        parameters=[TEAM_PARAMETER], responses=DiffSerializer, operation_id="pipelines_diff"
    )
    def get(self, request: Request, name: str, a: int, b: int) -> Response:
        pipeline = pipeline_of_request(request, name)
        diff = version_diff(pipeline=pipeline, a=a, b=b)
        return Response({"a": a, "b": b, "same": diff == "", "diff": diff})
