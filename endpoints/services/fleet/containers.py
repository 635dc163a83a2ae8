"""What every fleet operation shares: an instance's container (name, labels, start, /ping,
removal) and its team's serving network. See the package's docstring for the traffic
safety rules the functions here keep. Each function takes the `Component` acting (the
deployment, the roll-out, healing...): the actor of the instance transitions it makes."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, QuerySet
from django.utils import timezone

from compute.labels import (
    KIND_ENDPOINT,
    LABEL_ENDPOINT_ID,
    LABEL_ENDPOINT_INSTANCE_ID,
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_TEAM,
    ROLE_ENDPOINT,
    engine_name,
    instance_label,
)
from compute.runtime.base import ContainerNotFound, Runtime
from compute.serving import (
    ServingStartFailed,
    serving_address,
    serving_container_spec,
    serving_network,
    serving_network_release,
    serving_placement,
    serving_start,
    wait_until_ready,
)
from compute.staging import stage_model
from endpoints.models import (
    Endpoint,
    EndpointConfig,
    EndpointInstance,
    InstanceStatus,
    ProductionVariant,
)
from endpoints.services.instances import Component, instance_record, instance_transition
from endpoints.services.lifecycle import endpoint_event
from endpoints.services.models import serving_source
from studio.errors import StudioloError

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 30  # SageMaker: SIGTERM, then SIGKILL 30 s later
# How long an instance taken out of rotation may still receive requests: the data plane's
# routing cache (endpoints.gateway.directory.ROUTING_TTL_SECONDS, 1 s) plus the time a table
# takes to load. No serving container starts before every such instance has been out this long.
OUT_OF_ROTATION_SECONDS = 1.5


def container_name(instance: EndpointInstance) -> str:
    return engine_name(ROLE_ENDPOINT, instance.endpoint_id, instance.pk)


def _labels(endpoint: Endpoint, instance: EndpointInstance) -> dict[str, str]:
    return {
        LABEL_KIND: KIND_ENDPOINT,
        LABEL_ENDPOINT_ID: str(endpoint.pk),
        LABEL_ENDPOINT_INSTANCE_ID: str(instance.pk),
        LABEL_TEAM: endpoint.team.slug,
        LABEL_INSTANCE: instance_label(),
    }


def startup_timeout() -> float:
    return float(settings.ENDPOINT_STARTUP_TIMEOUT_SECONDS)


# --- starting instances -------------------------------------------------------------------------


def start_instance(
    runtime: Runtime,
    endpoint: Endpoint,
    config: EndpointConfig,
    variant: ProductionVariant,
    by: Component,
) -> EndpointInstance:
    """Record the instance, then start its container (the row first, so that a container is
    never without a row: anything labelled with an unknown instance is an orphan)."""
    instance = new_instance(endpoint, config, variant, by, f"to serve config {config.name}")
    start_container(runtime, endpoint, variant, instance, by)
    return instance


def new_instance(
    endpoint: Endpoint, config: EndpointConfig, variant: ProductionVariant, by: Component, why: str
) -> EndpointInstance:
    return instance_record(
        endpoint=endpoint,
        config=config,
        variant_name=variant.name,
        container_name=container_name,
        actor=by,
        why=why,
    )


def start_container(
    runtime: Runtime,
    endpoint: Endpoint,
    variant: ProductionVariant,
    instance: EndpointInstance,
    by: Component,
) -> None:
    name = instance.container_name
    model_root = stage_model(serving_source(variant.model))  # checked against its pin
    team = endpoint.team.slug
    spec = serving_container_spec(
        serving_source(variant.model),
        runtime=runtime,
        placement=serving_placement(runtime, team),
        name=name,
        instance_type=variant.instance_type,
        labels=_labels(endpoint, instance),
        model_root=model_root,
        extra_env={
            "STUDIOLO_ENDPOINT": endpoint.name,
            "STUDIOLO_VARIANT": variant.name,
            "STUDIOLO_INSTANCE": name,
        },
    )
    _wait_until_out_of_rotation()
    state = serving_start(runtime, spec, team)
    address = serving_address(state, serving_network(runtime))
    host, port = address if address is not None else (instance.host, None)
    EndpointInstance.objects.filter(pk=instance.pk).update(
        container_id=state.id, host=host, port=port
    )
    instance.container_id, instance.host, instance.port = state.id, host, port
    if state.error:
        raise ServingStartFailed(f"the engine could not start the container: {state.error}")
    if address is None:
        raise ServingStartFailed("the container has no address the studio can reach")
    _retire_stale_claims(instance, by)


def _wait_until_out_of_rotation() -> None:
    """Sleep until every instance taken out of rotation has been out for
    OUT_OF_ROTATION_SECONDS: the container about to start may get its address (see the
    package's docstring). Unhealthy rows keep the time they were taken out in last_check_at."""
    horizon = timezone.now() - timedelta(seconds=OUT_OF_ROTATION_SECONDS)
    latest: datetime | None = EndpointInstance.objects.filter(
        status=InstanceStatus.UNHEALTHY, last_check_at__gt=horizon
    ).aggregate(latest=Max("last_check_at"))["latest"]
    if latest is not None:
        time.sleep(max(0.0, (latest - horizon).total_seconds()))


def _retire_stale_claims(instance: EndpointInstance, by: Component) -> None:
    """The engine just gave this address to `instance`'s container, so another row in rotation
    at the same address is stale: its container is gone (the engine restarted and hands its
    addresses out again) and the check has not noticed yet. Out of rotation at once."""
    why = (
        f"its address {instance.host}:{instance.port} was given to another container: "
        "its own container is gone"
    )
    stale = (
        EndpointInstance.objects.filter(
            host=instance.host, port=instance.port, status=InstanceStatus.HEALTHY
        )
        .exclude(pk=instance.pk)
        .select_related("endpoint__team")
    )
    for other in stale:
        moved = instance_transition(
            instance=other,
            status=InstanceStatus.UNHEALTHY,
            expect=InstanceStatus.HEALTHY,
            actor=by,
            why=why,
            last_check_at=timezone.now(),
            message=why,
        )
        if moved:
            endpoint_event(
                endpoint=other.endpoint,
                message=f"Instance {other.container_name} is unhealthy ({why}); "
                "taken out of rotation and being replaced",
            )


def await_healthy(runtime: Runtime, started: Sequence[EndpointInstance], by: Component) -> None:
    """Wait for every instance's /ping in parallel (no database work in the threads); mark
    them HEALTHY (those still Starting: an update may have drained one meanwhile). Raises the
    first failure, naming the instance."""

    def wait(instance: EndpointInstance) -> None:
        try:
            wait_until_ready(
                runtime,
                instance.container_id,
                host=instance.host,
                port=instance.port or 0,  # start_instance refuses an instance without one
                timeout=startup_timeout(),
            )
        except ServingStartFailed as exc:
            raise ServingStartFailed(
                f"instance {instance.container_name} (variant {instance.variant_name}): "
                f"{exc.message}"
            ) from exc

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(started)))) as pool:
        for future in [pool.submit(wait, instance) for instance in started]:
            future.result()
    now = timezone.now()
    for instance in started:
        instance_transition(
            instance=instance,
            status=InstanceStatus.HEALTHY,
            expect=InstanceStatus.STARTING,
            actor=by,
            why="it answers /ping",
            healthy_at=now,
            last_check_at=now,
        )


def bring_up(
    runtime: Runtime, endpoint: Endpoint, config: EndpointConfig, by: Component
) -> list[int]:
    """Start every instance of every variant of `config` and wait until all are healthy.
    On failure the caller removes what was started (found by endpoint and config)."""
    started: list[EndpointInstance] = []
    for variant in config.variants.select_related("model__package__group").order_by("id"):
        for _ in range(variant.instance_count):
            started.append(start_instance(runtime, endpoint, config, variant, by))
    await_healthy(runtime, started, by)
    return [instance.pk for instance in started]


# --- removing instances ---------------------------------------------------------------------------


def remove_containers(runtime: Runtime, container_ids: Iterable[str], grace: float) -> None:
    def remove(container_id: str) -> None:
        try:
            runtime.stop(container_id, grace)
        except ContainerNotFound:
            return
        except StudioloError as exc:
            log.warning("could not stop container %s: %s", container_id, exc)
        try:
            runtime.remove(container_id)
        except StudioloError as exc:
            log.warning("could not remove container %s: %s", container_id, exc)

    ids = [cid for cid in container_ids if cid]
    if ids:
        with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
            list(pool.map(remove, ids))


def remove_instances(
    runtime: Runtime,
    instances: Iterable[EndpointInstance],
    grace: float,
    by: Component,
    why: str,
) -> int:
    """Stop and remove the instances' containers, then their rows (→ Removed, whatever each
    was doing). Returns how many were removed."""
    if isinstance(instances, QuerySet):
        instances = instances.select_related("endpoint__team")  # for their transitions
    instances = list(instances)
    remove_containers(runtime, [i.container_id for i in instances], grace)
    return sum(
        instance_transition(instance=i, status=InstanceStatus.REMOVED, actor=by, why=why)
        for i in instances
    )


def release_network(runtime: Runtime, team_slug: str) -> None:
    """The team's serving network goes once its last serving container has (the periodic
    check removes any this misses)."""
    try:
        serving_network_release(runtime, team_slug)
    except StudioloError as exc:
        log.warning("could not remove the serving network of team %s: %s", team_slug, exc)


def failure(exc: BaseException) -> str:
    if isinstance(exc, StudioloError):
        return exc.message
    log.exception("endpoint operation failed", exc_info=exc)
    return f"Platform error: {type(exc).__name__}: {exc}"
