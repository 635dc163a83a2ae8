"""REST for serving models, endpoint configs and endpoints (create, describe, update,
delete, traffic). Invocations go through the data plane (`/endpoints/<name>/invocations`),
not through here."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from endpoints import selectors
from endpoints.api.serializers import (
    ConfigSerializer,
    EndpointDetailSerializer,
    EndpointSerializer,
    ModelSerializer,
    TrafficSerializer,
)
from endpoints.models import EndpointConfig, ServingModel
from endpoints.services.lifecycle import (
    endpoint_create,
    endpoint_delete,
    endpoint_update,
    endpoint_update_package,
)
from endpoints.services.models import (
    VariantRequest,
    config_create,
    config_create_for_model,
    model_create_from_image,
    model_create_from_package,
    model_for_package,
    package_from_ref,
)
from studio.accounts.models import Team
from studio.accounts.selectors import in_team
from studio.api.fields import Int64Field
from studio.api.pagination import CursorPagination
from studio.api.views import StudioAPIView
from studio.errors import NotFound, ValidationError


class NamePagination(CursorPagination):
    ordering = "name"


# --- input helpers ----------------------------------------------------------------------------


class TeamFilter(serializers.Serializer[Any]):
    team = serializers.CharField(required=False)


def _team_page(
    view: APIView, request: Request, queryset: QuerySet[Any], serializer: type[Serializer[Any]]
) -> Response:
    """A page (by name) of the caller's objects, of one team when `?team=` says which. (The
    list views declare `pagination_class = NamePagination` for the schema.)"""
    queryset = in_team(queryset, request.user, _team_param(request))
    paginator = NamePagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


def _team_param(request: Request) -> str | None:
    params = TeamFilter(data=request.query_params)
    params.is_valid(raise_exception=True)
    team = params.validated_data.get("team")
    return str(team) if team else None


def _model_ref(request: Request, team: Team, ref: str, field_name: str) -> ServingModel:
    """`GROUP/VERSION` means a registered package (its model is made once); anything else is
    the name of one of the team's models."""
    if "/" in ref:
        package = package_from_ref(team=team, ref=ref, field_name=field_name)
        return model_for_package(team=team, actor=request.user, package=package)
    try:
        return selectors.model_for_user(request.user, ref, team=team.slug)
    except NotFound as exc:
        raise NotFound(f"{field_name}: model {ref!r} not found", field=field_name) from exc


class ShortcutSerializer(serializers.Serializer[Any]):
    """One variant named AllTraffic, for `--model G/V --instances N` style requests."""

    model = serializers.CharField(required=False)
    instance_type = serializers.CharField(required=False, default="ml.local.small")
    instance_count = Int64Field(required=False, default=1)


def _shortcut_config(
    request: Request, team: Team, endpoint_name: str, values: dict[str, Any]
) -> EndpointConfig:
    """For a model given by name (a package, `GROUP/VERSION`, goes through the services'
    deploy/update shortcuts instead)."""
    return config_create_for_model(
        team=team,
        actor=request.user,
        endpoint_name=endpoint_name,
        model=_model_ref(request, team, values["model"], "model"),
        instance_type=values["instance_type"],
        instance_count=values["instance_count"],
    )


# --- models -------------------------------------------------------------------------------------


class ModelListApi(StudioAPIView):
    pagination_class = NamePagination

    class InputSerializer(serializers.Serializer[Any]):
        team = serializers.CharField(required=False)
        name = serializers.CharField()
        package = serializers.CharField(required=False, allow_blank=True, default="")
        image = serializers.CharField(required=False, allow_blank=True, default="")
        artifact_uri = serializers.CharField(required=False, allow_blank=True, default="")
        environment = serializers.DictField(required=False, default=dict)

    @extend_schema(
        parameters=[TeamFilter], responses=ModelSerializer(many=True), operation_id="models_list"
    )
    def get(self, request: Request) -> Response:
        return _team_page(self, request, selectors.models_for_user(request.user), ModelSerializer)

    @extend_schema(
        request=InputSerializer, responses={201: ModelSerializer}, operation_id="models_create"
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        team = selectors.team_or_default(request.user, values.get("team"))
        if values["package"]:
            if values["image"] or values["artifact_uri"]:
                raise ValidationError(
                    "package: give a package, or an image and an artifact, not both",
                    field="package",
                )
            model = model_create_from_package(
                team=team,
                actor=request.user,
                name=values["name"],
                package=package_from_ref(team=team, ref=values["package"], field_name="package"),
                environment=values["environment"],
            )
        else:
            model = model_create_from_image(
                team=team,
                actor=request.user,
                name=values["name"],
                image=values["image"],
                artifact_uri=values["artifact_uri"],
                environment=values["environment"],
            )
        return Response(ModelSerializer(model).data, status=status.HTTP_201_CREATED)


class ModelDetailApi(StudioAPIView):
    @extend_schema(parameters=[TeamFilter], responses=ModelSerializer, operation_id="models_get")
    def get(self, request: Request, name: str) -> Response:
        model = selectors.model_for_user(request.user, name, team=_team_param(request))
        return Response(ModelSerializer(model).data)


# --- endpoint configs ---------------------------------------------------------------------------


class ConfigListApi(StudioAPIView):
    pagination_class = NamePagination

    class InputSerializer(serializers.Serializer[Any]):
        class VariantInput(serializers.Serializer[Any]):
            name = serializers.CharField(required=False, default="AllTraffic")
            model = serializers.CharField()
            instance_type = serializers.CharField(required=False, default="ml.local.small")
            instance_count = Int64Field(required=False, default=1)
            initial_weight = serializers.FloatField(required=False, default=1.0)

        team = serializers.CharField(required=False)
        name = serializers.CharField()
        variants = VariantInput(many=True)

    @extend_schema(
        parameters=[TeamFilter],
        responses=ConfigSerializer(many=True),
        operation_id="endpoint_configs_list",
    )
    def get(self, request: Request) -> Response:
        return _team_page(self, request, selectors.configs_for_user(request.user), ConfigSerializer)

    @extend_schema(
        request=InputSerializer,
        responses={201: ConfigSerializer},
        operation_id="endpoint_configs_create",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        team = selectors.team_or_default(request.user, values.get("team"))
        variants = [
            VariantRequest(
                model=_model_ref(request, team, variant["model"], "variants.model"),
                name=variant["name"],
                instance_type=variant["instance_type"],
                instance_count=variant["instance_count"],
                initial_weight=variant["initial_weight"],
            )
            for variant in values["variants"]
        ]
        config = config_create(
            team=team, actor=request.user, name=values["name"], variants=variants
        )
        config = selectors.configs_for_user(request.user).get(pk=config.pk)
        return Response(ConfigSerializer(config).data, status=status.HTTP_201_CREATED)


class ConfigDetailApi(StudioAPIView):
    @extend_schema(
        parameters=[TeamFilter], responses=ConfigSerializer, operation_id="endpoint_configs_get"
    )
    def get(self, request: Request, name: str) -> Response:
        config = selectors.config_for_user(request.user, name, team=_team_param(request))
        return Response(ConfigSerializer(config).data)


# --- endpoints ----------------------------------------------------------------------------------


class EndpointListApi(StudioAPIView):
    pagination_class = NamePagination

    class InputSerializer(ShortcutSerializer):
        team = serializers.CharField(required=False)
        name = serializers.CharField()
        config = serializers.CharField(required=False)

    @extend_schema(
        parameters=[TeamFilter],
        responses=EndpointSerializer(many=True),
        operation_id="endpoints_list",
    )
    def get(self, request: Request) -> Response:
        return _team_page(
            self, request, selectors.endpoints_for_user(request.user), EndpointSerializer
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: EndpointDetailSerializer},
        operation_id="endpoints_create",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        team = selectors.team_or_default(request.user, values.get("team"))
        config = _config_from(request, team, values)
        endpoint = endpoint_create(
            team=team, actor=request.user, name=values["name"], config=config
        )
        endpoint = selectors.endpoint_for_user(request.user, endpoint.name, team=team.slug)
        return Response(EndpointDetailSerializer(endpoint).data, status=status.HTTP_201_CREATED)


def _package_ref(values: dict[str, Any]) -> bool:
    return bool(values.get("model")) and not values.get("config") and "/" in values["model"]


def _config_from(request: Request, team: Team, values: dict[str, Any]) -> EndpointConfig:
    if bool(values.get("config")) == bool(values.get("model")):
        raise ValidationError(
            "config: give either an endpoint config or a model (GROUP/VERSION)", field="config"
        )
    if values.get("config"):
        return selectors.config_for_user(request.user, values["config"], team=team.slug)
    return _shortcut_config(request, team, values["name"], values)


class EndpointDetailApi(StudioAPIView):
    class UpdateSerializer(ShortcutSerializer):
        config = serializers.CharField(required=False)

    @extend_schema(
        parameters=[TeamFilter], responses=EndpointDetailSerializer, operation_id="endpoints_get"
    )
    def get(self, request: Request, name: str) -> Response:
        endpoint = selectors.endpoint_for_user(request.user, name, team=_team_param(request))
        return Response(EndpointDetailSerializer(endpoint).data)

    @extend_schema(
        parameters=[TeamFilter],
        request=UpdateSerializer,
        responses=EndpointDetailSerializer,
        operation_id="endpoints_update",
    )
    def patch(self, request: Request, name: str) -> Response:
        team_slug = _team_param(request)
        endpoint = selectors.endpoint_for_user(request.user, name, team=team_slug)
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = {**data.validated_data, "name": name}
        if _package_ref(values):
            endpoint_update_package(
                endpoint=endpoint,
                actor=request.user,
                package=package_from_ref(team=endpoint.team, ref=values["model"]),
                instance_type=values["instance_type"],
                instance_count=values["instance_count"],
            )
        else:
            with transaction.atomic():
                config = _config_from(request, endpoint.team, values)
                endpoint_update(endpoint=endpoint, actor=request.user, config=config)
        endpoint = selectors.endpoint_for_user(request.user, name, team=endpoint.team.slug)
        return Response(EndpointDetailSerializer(endpoint).data)

    @extend_schema(
        parameters=[TeamFilter],
        request=None,
        responses={202: EndpointSerializer},
        operation_id="endpoints_delete",
    )
    def delete(self, request: Request, name: str) -> Response:
        endpoint = selectors.endpoint_for_user(request.user, name, team=_team_param(request))
        endpoint = endpoint_delete(endpoint=endpoint, actor=request.user)
        return Response(EndpointSerializer(endpoint).data, status=status.HTTP_202_ACCEPTED)


class EndpointTrafficApi(StudioAPIView):
    class FilterSerializer(TeamFilter):
        minutes = Int64Field(required=False, default=60, min_value=1, max_value=10080)
        bucket_seconds = Int64Field(required=False, default=60, min_value=10, max_value=86400)

    @extend_schema(
        parameters=[FilterSerializer], responses=TrafficSerializer, operation_id="endpoints_traffic"
    )
    def get(self, request: Request, name: str) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        values = params.validated_data
        endpoint = selectors.endpoint_for_user(request.user, name, team=values.get("team"))
        return Response(
            selectors.endpoint_traffic(
                endpoint, minutes=values["minutes"], bucket_seconds=values["bucket_seconds"]
            )
        )
