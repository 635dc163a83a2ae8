"""REST for serving models, endpoint configs and endpoints (create, describe, update,
delete, traffic). Invocations go through the data plane (`/endpoints/<name>/invocations`),
not through here."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from endpoints import selectors
from endpoints.models import Endpoint, EndpointConfig, EndpointInstance, ServingModel
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
from studio.api.transitions import TransitionSerializer
from studio.api.views import StudioAPIView
from studio.errors import NotFound, ValidationError


class NamePagination(CursorPagination):
    ordering = "name"


# --- output -----------------------------------------------------------------------------------


class ModelSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    team = serializers.CharField(source="team.slug")
    package = serializers.SerializerMethodField()
    image = serializers.CharField()
    artifact_uri = serializers.CharField()
    environment = serializers.DictField(child=serializers.CharField())
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()

    def get_package(self, model: ServingModel) -> str | None:
        package = model.package
        return None if package is None else f"{package.group.name}/{package.version}"


class VariantSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    model = serializers.CharField(source="model.name")
    package = serializers.SerializerMethodField()
    approval_status = serializers.SerializerMethodField()
    instance_type = serializers.CharField()
    instance_count = Int64Field()
    initial_weight = serializers.FloatField()

    def get_package(self, variant: Any) -> str | None:
        package = variant.model.package
        return None if package is None else f"{package.group.name}/{package.version}"

    def get_approval_status(self, variant: Any) -> str | None:
        package = variant.model.package
        return None if package is None else f"{package.approval_status}"


class ConfigSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    team = serializers.CharField(source="team.slug")
    variants = VariantSerializer(many=True, source="variants.all")
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()


class InstanceSerializer(serializers.Serializer[Any]):
    container = serializers.CharField(source="container_name")
    variant = serializers.CharField(source="variant_name")
    config = serializers.SerializerMethodField()
    status = serializers.CharField()
    address = serializers.SerializerMethodField()
    message = serializers.CharField()
    created_at = serializers.DateTimeField()
    healthy_at = serializers.DateTimeField(allow_null=True)
    last_check_at = serializers.DateTimeField(allow_null=True)

    def get_config(self, instance: EndpointInstance) -> int:
        return instance.config_id

    def get_address(self, instance: EndpointInstance) -> str | None:
        return f"{instance.host}:{instance.port}" if instance.port else None


class EndpointEventSerializer(TransitionSerializer):
    """The shape of every transition log; from and to are "" for an event that is no
    status change (an instance replaced, a served package rejected)."""

    class Meta:
        ref_name = "EndpointEvent"  # the schema's component; `Event` alone is ambiguous


class InstanceTransitionSerializer(TransitionSerializer):
    """The shape of every transition log, naming the instance (which may be gone)."""

    class Meta:
        ref_name = "InstanceTransition"

    instance = Int64Field(source="instance_id")
    container = serializers.CharField(source="container_name")
    variant = serializers.CharField(source="variant_name")


class EndpointSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    team = serializers.CharField(source="team.slug")
    status = serializers.CharField()
    config = serializers.CharField(source="config.name")
    pending_config = serializers.CharField(
        source="pending_config.name", default=None, allow_null=True
    )
    failure_reason = serializers.CharField()
    attention = serializers.CharField()
    instance_count = Int64Field(default=None, allow_null=True)
    healthy_count = Int64Field(default=None, allow_null=True)
    invocation_url = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_invocation_url(self, endpoint: Endpoint) -> str:
        return f"/endpoints/{endpoint.name}/invocations"


class EndpointDetailSerializer(EndpointSerializer):
    variants = VariantSerializer(many=True, source="config.variants.all")
    instances = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()
    instance_history = serializers.SerializerMethodField()

    def get_instances(self, endpoint: Endpoint) -> list[dict[str, Any]]:
        data = InstanceSerializer(endpoint.instances.all(), many=True).data
        current = endpoint.config_id
        for row, instance in zip(data, endpoint.instances.all(), strict=True):
            row["current"] = instance.config_id == current
        return list(data)

    @extend_schema_field(EndpointEventSerializer(many=True))
    def get_events(self, endpoint: Endpoint) -> list[dict[str, Any]]:
        return list(EndpointEventSerializer(selectors.endpoint_events(endpoint), many=True).data)

    @extend_schema_field(
        InstanceTransitionSerializer(
            many=True,
            help_text=f"the latest {selectors.HISTORY_SHOWN} moves of its instances, newest first",
        )
    )
    def get_instance_history(self, endpoint: Endpoint) -> list[dict[str, Any]]:
        history = selectors.endpoint_instance_history(endpoint)
        return list(InstanceTransitionSerializer(history, many=True).data)


class TrafficTotalsSerializer(serializers.Serializer[Any]):
    count = Int64Field()
    errors_4xx = Int64Field()
    errors_5xx = Int64Field()


class TrafficPointSerializer(TrafficTotalsSerializer):
    """One variant's time bucket (`selectors.endpoint_traffic`); latencies from the merged
    histograms, None without requests."""

    at = serializers.DateTimeField()
    mean_ms = serializers.FloatField(allow_null=True)
    p50_ms = serializers.FloatField(allow_null=True)
    p90_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)
    max_ms = serializers.FloatField()


class TrafficSerializer(serializers.Serializer[Any]):
    """The schema of the traffic answer (the view returns the selector's dict as it is)."""

    since = serializers.DateTimeField()
    bucket_seconds = Int64Field()
    totals = TrafficTotalsSerializer()
    variants = serializers.DictField(
        child=serializers.ListField(child=TrafficPointSerializer()),
        help_text="per variant name, its buckets with traffic, oldest first",
    )


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
