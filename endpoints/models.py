"""Models, endpoint configs, endpoints and their container instances (SageMaker's three
objects, plus what runs them), and the traffic each endpoint served.

- `ServingModel` (SageMaker's "Model"): what to serve. Made from an Approved model package
  (image, artifact and environment copied from it; the registry's policy is asked at creation
  and again at every deployment), or, for admins only, from an image and an artifact.
- `EndpointConfig` with `ProductionVariant`s: which models, on how many instances of which
  type, with which share of the traffic. Immutable once created, as on SageMaker.
- `Endpoint`: a name the data plane answers to, serving one config. Status has one writer,
  `endpoints.services.lifecycle.endpoint_transition`; every change appends an `EndpointEvent`.
- `EndpointInstance`: one serving container. Only HEALTHY instances of the endpoint's current
  config receive traffic. Status has one writer,
  `endpoints.services.instances.instance_transition`; every change appends an
  `InstanceTransition`, which outlives the instance (the endpoint page's instance history).
- `InvocationStat`: what one data-plane process counted for one variant in one time bucket.
  Rows are only ever inserted (several web processes count the same bucket at once); charts
  add them up.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from studio.transitions import TransitionLog


class ServingModel(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=63)
    package = models.ForeignKey(
        "registry.ModelPackage",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="serving_models",
    )
    # Copied from the package (which never changes) or given by an admin.
    image = models.CharField(max_length=512)
    artifact_uri = models.CharField(max_length=1024)
    environment = models.JSONField(default=dict, blank=True)  # str -> str
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="servingmodel_unique_name"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class EndpointConfig(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=63)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="endpointconfig_unique_name"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class ProductionVariant(models.Model):
    config = models.ForeignKey(EndpointConfig, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=63)
    model = models.ForeignKey(ServingModel, on_delete=models.PROTECT, related_name="variants")
    instance_type = models.CharField(max_length=64)
    instance_count = models.PositiveSmallIntegerField(default=1)
    initial_weight = models.FloatField(default=1.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["config", "name"], name="variant_unique_name"),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.config.name}/{self.name}"


class EndpointStatus(models.TextChoices):
    CREATING = "Creating", "Creating"  # instances starting; no traffic yet
    IN_SERVICE = "InService", "In service"  # answering invocations
    UPDATING = "Updating", "Updating"  # a new config's instances starting; the old one serves
    FAILED = "Failed", "Failed"  # could not be brought into service; see failure_reason
    DELETING = "Deleting", "Deleting"  # instances being stopped; the row goes when they are


ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    EndpointStatus.CREATING: frozenset(
        {EndpointStatus.IN_SERVICE, EndpointStatus.FAILED, EndpointStatus.DELETING}
    ),
    EndpointStatus.IN_SERVICE: frozenset({EndpointStatus.UPDATING, EndpointStatus.DELETING}),
    # A failed update rolls back to InService (with a failure reason); Failed only when the
    # endpoint has nothing left to serve with.
    EndpointStatus.UPDATING: frozenset(
        {EndpointStatus.IN_SERVICE, EndpointStatus.FAILED, EndpointStatus.DELETING}
    ),
    EndpointStatus.FAILED: frozenset({EndpointStatus.UPDATING, EndpointStatus.DELETING}),
    EndpointStatus.DELETING: frozenset(),
}
# Statuses in which the data plane routes requests (an update serves from the old config).
SERVING_STATUSES = frozenset({EndpointStatus.IN_SERVICE, EndpointStatus.UPDATING})
BUSY_STATUSES = frozenset(
    {EndpointStatus.CREATING, EndpointStatus.UPDATING, EndpointStatus.DELETING}
)


class Endpoint(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="endpoints")
    name = models.CharField(max_length=63)
    config = models.ForeignKey(EndpointConfig, on_delete=models.PROTECT, related_name="+")
    # The config being rolled out by an update; becomes `config` when its instances are healthy.
    pending_config = models.ForeignKey(
        EndpointConfig, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=EndpointStatus.choices, default=EndpointStatus.CREATING
    )
    failure_reason = models.TextField(blank=True)
    # Set when a package this endpoint serves is rejected: it keeps serving (stopping traffic
    # is a decision for people), but nobody can miss it. Cleared by an update to another model.
    attention = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="endpoint_unique_name_per_team"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class EndpointEvent(TransitionLog):
    """Append-only history: status changes (from/to set) and what happened to instances."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="events")

    def __str__(self) -> str:
        return f"{self.from_status}->{self.to_status}: {self.message[:60]}"


class InstanceStatus(models.TextChoices):
    STARTING = "Starting", "Starting"  # container started, /ping not answered yet
    HEALTHY = "Healthy", "Healthy"  # answers /ping; receives traffic (if its config is current)
    UNHEALTHY = "Unhealthy", "Unhealthy"  # died or failed /ping; no traffic; being replaced
    DRAINING = "Draining", "Draining"  # its config was replaced; finishing in-flight requests
    # Its container stopped and removed: the last row of its history. No instance row holds
    # it (the row is deleted with the container; rows in rotation are all there is to route).
    REMOVED = "Removed", "Removed"


# "" is where an instance comes from: the row is recorded (Starting) before its container
# starts, so that a container is never without a row.
NEW_INSTANCE = ""
INSTANCE_TRANSITIONS: dict[str, frozenset[str]] = {
    NEW_INSTANCE: frozenset({InstanceStatus.STARTING}),
    # Draining from any status: an update drains every instance of the config it replaces,
    # whatever it is doing (one being started or replaced included).
    InstanceStatus.STARTING: frozenset(
        {InstanceStatus.HEALTHY, InstanceStatus.DRAINING, InstanceStatus.REMOVED}
    ),
    InstanceStatus.HEALTHY: frozenset(
        {InstanceStatus.UNHEALTHY, InstanceStatus.DRAINING, InstanceStatus.REMOVED}
    ),
    # Never healthy again: an unhealthy instance is replaced, not revived.
    InstanceStatus.UNHEALTHY: frozenset({InstanceStatus.DRAINING, InstanceStatus.REMOVED}),
    InstanceStatus.DRAINING: frozenset({InstanceStatus.REMOVED}),
    InstanceStatus.REMOVED: frozenset(),
}


class EndpointInstance(models.Model):
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="instances")
    config = models.ForeignKey(EndpointConfig, on_delete=models.PROTECT, related_name="+")
    variant_name = models.CharField(max_length=63)
    container_name = models.CharField(max_length=128, blank=True)
    container_id = models.CharField(max_length=128, blank=True)
    host = models.CharField(max_length=64, default="127.0.0.1")
    port = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=InstanceStatus.choices, default=InstanceStatus.STARTING
    )
    message = models.TextField(blank=True)
    consecutive_failures = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    healthy_at = models.DateTimeField(null=True, blank=True)
    last_check_at = models.DateTimeField(null=True, blank=True)
    # When a worker took on replacing this (unhealthy) instance; one replacement at a time.
    replacement_started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["endpoint", "status"], name="instance_endpoint_status")]

    def __str__(self) -> str:
        return self.container_name or f"instance {self.pk}"


class InstanceTransition(TransitionLog):
    """Append-only history of an endpoint's instances: one row per status change (from ""
    when recorded, to Removed when gone). Instance rows are deleted with their containers and
    their history stays with the endpoint, so a row names its instance (id, container,
    variant) instead of pointing at it."""

    # Indexed with created_at below (an index of its own would repeat that one's prefix).
    endpoint = models.ForeignKey(
        Endpoint, on_delete=models.CASCADE, related_name="instance_transitions", db_index=False
    )
    instance_id = models.BigIntegerField()
    container_name = models.CharField(max_length=128, blank=True)
    variant_name = models.CharField(max_length=63)

    class Meta(TransitionLog.Meta):
        indexes = [
            # The endpoint page reads an endpoint's newest rows.
            models.Index(fields=["endpoint", "created_at"], name="insttransition_endpoint_time"),
        ]

    def __str__(self) -> str:
        return f"{self.container_name}: {self.from_status or '-'} -> {self.to_status}"


class InvocationStat(models.Model):
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="+")
    variant_name = models.CharField(max_length=63)
    bucket_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    errors_4xx = models.PositiveIntegerField(default=0)
    errors_5xx = models.PositiveIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0.0)
    latency_max_ms = models.FloatField(default=0.0)
    # {bucket index: count} on a log scale (endpoints.metrics.LATENCY_BOUNDS_MS).
    latency_histogram = models.JSONField(default=dict)

    class Meta:
        indexes = [
            models.Index(fields=["endpoint", "bucket_start"], name="invstat_endpoint_time"),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint_id}/{self.variant_name}@{self.bucket_start}"
