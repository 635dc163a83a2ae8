"""REST for experiments: list (paged, by lifecycle or name), create, read, update, delete
and restore."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from experiments import selectors, services
from experiments.api.common import request_team
from experiments.api.serializers import ExperimentSerializer
from studio.api.pagination import CursorPagination
from studio.api.views import StudioAPIView


class ExperimentPagination(CursorPagination):
    ordering = "-created_at"


# --- experiments ----------------------------------------------------------------------------


class ExperimentListApi(StudioAPIView):
    pagination_class = ExperimentPagination

    class FilterSerializer(serializers.Serializer[Any]):
        team = serializers.CharField(required=False)
        view = serializers.ChoiceField(
            choices=selectors.ViewType.values, required=False, default="ACTIVE_ONLY"
        )
        name = serializers.CharField(required=False, help_text="exactly this name")

    class InputSerializer(serializers.Serializer[Any]):
        team = serializers.CharField(required=False)
        name = serializers.CharField(max_length=500)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        tags = serializers.DictField(
            child=serializers.CharField(allow_blank=True), required=False, default=dict
        )

    @extend_schema(parameters=[FilterSerializer], responses=ExperimentSerializer(many=True))
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        team = request_team(request, params.validated_data.get("team"))
        experiments = selectors.experiments_for_user(request.user, team=team).filter(
            **selectors.lifecycle_filter(params.validated_data["view"])
        )
        if "name" in params.validated_data:
            # The SDK and the CLI find an experiment by name with this.
            experiments = experiments.filter(name=params.validated_data["name"])
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(experiments, request, view=self)
        return paginator.get_paginated_response(ExperimentSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: ExperimentSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = services.experiment_create(
            team=request_team(request, data.validated_data.get("team")),
            name=data.validated_data["name"],
            description=data.validated_data["description"],
            tags=data.validated_data["tags"],
            actor=request.user,
        )
        fresh = selectors.experiment_for_user(request.user, experiment.pk)
        return Response(ExperimentSerializer(fresh).data, status=status.HTTP_201_CREATED)


class ExperimentDetailApi(StudioAPIView):
    class UpdateSerializer(serializers.Serializer[Any]):
        name = serializers.CharField(required=False, max_length=500)
        description = serializers.CharField(required=False, allow_blank=True)
        tags = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)

    @extend_schema(responses=ExperimentSerializer)
    def get(self, request: Request, experiment_id: int) -> Response:
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        return Response(ExperimentSerializer(experiment).data)

    @extend_schema(request=UpdateSerializer, responses=ExperimentSerializer)
    def patch(self, request: Request, experiment_id: int) -> Response:
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        services.experiment_update(
            experiment=experiment,
            actor=request.user,
            name=data.validated_data.get("name"),
            description=data.validated_data.get("description"),
        )
        if data.validated_data.get("tags"):
            services.experiment_set_tags(
                experiment=experiment, actor=request.user, tags=data.validated_data["tags"]
            )
        fresh = selectors.experiment_for_user(request.user, experiment_id)
        return Response(ExperimentSerializer(fresh).data)

    @extend_schema(responses={200: ExperimentSerializer})
    def delete(self, request: Request, experiment_id: int) -> Response:
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        services.experiment_delete(experiment=experiment, actor=request.user)
        fresh = selectors.experiment_for_user(request.user, experiment_id)
        return Response(ExperimentSerializer(fresh).data)


class ExperimentRestoreApi(StudioAPIView):
    @extend_schema(request=None, responses=ExperimentSerializer)
    def post(self, request: Request, experiment_id: int) -> Response:
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        services.experiment_restore(experiment=experiment, actor=request.user)
        fresh = selectors.experiment_for_user(request.user, experiment_id)
        return Response(ExperimentSerializer(fresh).data)
