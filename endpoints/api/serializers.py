"""What the endpoints API answers: models, configs and their variants, endpoints with their
instances, their instances' history and their events, and traffic series."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from endpoints import selectors
from endpoints.models import Endpoint, EndpointInstance, ServingModel
from studio.api.fields import Int64Field
from studio.api.transitions import TransitionSerializer


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
