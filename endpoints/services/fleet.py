"""The worker side of endpoints: starting, checking, replacing and stopping serving containers.

Run by the Celery tasks in `endpoints.tasks`; every function takes ids and is safe to run
again (a task redelivered after a worker died finds what the first attempt left and carries
on or cleans up). Containers are found again by their labels, never by memory.

Traffic safety, which the data plane relies on:
- an instance receives traffic only once it is HEALTHY and its config is the endpoint's;
- an update switches `Endpoint.config` in one transaction, then keeps the old instances
  running for DRAIN_SECONDS (longer than the data plane's routing cache) before stopping them;
- an instance found dead or failing /ping goes UNHEALTHY (out of rotation) at once; its
  replacement starts, becomes healthy, and only then is the dead one removed;
- the data plane sends a request to the address an instance row records (127.0.0.1:port, or
  an IP on ENDPOINT_NETWORK), and the engine hands addresses out again once their container
  is gone (after a restart of the engine, from the start of its range). So that requests
  meant for one endpoint do not reach another endpoint's new container, a serving container
  starts only once every instance taken out of rotation has been out longer than the data
  plane's routing cache, and a new container's address at once retires any row still
  claiming it in rotation (one the check has not found dead yet: its requests can reach the
  new container until the routing cache expires, 1 s).

The Docker engine going away (a restart of dockerd without live-restore stops every
container) is not the instances' fault: while it does not answer, the check only pings the
recorded addresses, instances that stop answering go UNHEALTHY (the endpoint stays InService,
showing no healthy instance), and nothing is started, removed or resumed. Once the engine
answers, the dead instances are replaced as usual.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Max, Q
from django.utils import timezone

from endpoints.models import (
    SERVING_STATUSES,
    Endpoint,
    EndpointConfig,
    EndpointInstance,
    EndpointStatus,
    InstanceStatus,
    ProductionVariant,
)
from endpoints.services.lifecycle import IllegalTransition, endpoint_event, endpoint_transition
from endpoints.services.models import serving_source
from jobs.runner import installation_tag, instance_label
from jobs.runtime import get_runtime
from jobs.runtime.base import (
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_PREFIX,
    LABEL_TEAM,
    ContainerNotFound,
    Runtime,
)
from jobs.serving import (
    ServingStartFailed,
    ping,
    serving_address,
    serving_container_spec,
    serving_network,
    serving_network_release,
    serving_networks_reconcile,
    serving_placement,
    serving_start,
    wait_until_ready,
)
from jobs.staging import stage_model, staged_models_prune
from studio.errors import StudioloError
from studio.events import publish_team_event

log = logging.getLogger(__name__)

LABEL_ENDPOINT_ID = LABEL_PREFIX + "endpoint-id"
LABEL_ENDPOINT_INSTANCE_ID = LABEL_PREFIX + "endpoint-instance-id"
# Longer than the data plane's routing cache (1 s) plus a request in flight: after traffic
# switches away from an instance, it keeps answering this long before it is stopped.
DRAIN_SECONDS = 3.0
STOP_GRACE_SECONDS = 30  # SageMaker: SIGTERM, then SIGKILL 30 s later
FAILED_PINGS_BEFORE_REPLACING = 2  # one slow /ping is not a dead instance; a dead process is
STUCK_MARGIN_SECONDS = 120  # a busy endpoint not moving for startup timeout + this is resumed
# How long an instance taken out of rotation may still receive requests: the data plane's
# routing cache (endpoints.gateway.directory.ROUTING_TTL_SECONDS, 1 s) plus the time a table
# takes to load. No serving container starts before every such instance has been out this long.
OUT_OF_ROTATION_SECONDS = 1.5
# A team's serving network that no container uses is removed by the periodic check once it is
# this old (a younger one may be about to get the container it was made for).
IDLE_NETWORK_AGE = timedelta(seconds=60)


def container_name(instance: EndpointInstance) -> str:
    return f"studiolo-ep-{installation_tag()}-{instance.endpoint_id}-{instance.pk}"


def _labels(endpoint: Endpoint, instance: EndpointInstance) -> dict[str, str]:
    return {
        LABEL_KIND: "endpoint",
        LABEL_ENDPOINT_ID: str(endpoint.pk),
        LABEL_ENDPOINT_INSTANCE_ID: str(instance.pk),
        LABEL_TEAM: endpoint.team.slug,
        LABEL_INSTANCE: instance_label(),
    }


def _startup_timeout() -> float:
    return float(settings.ENDPOINT_STARTUP_TIMEOUT_SECONDS)


# --- starting and stopping instances ----------------------------------------------------------


def _start_instance(
    runtime: Runtime, endpoint: Endpoint, config: EndpointConfig, variant: ProductionVariant
) -> EndpointInstance:
    """Record the instance, then start its container (the row first, so that a container is
    never without a row: anything labelled with an unknown instance is an orphan)."""
    instance = _new_instance(endpoint, config, variant)
    _start_container(runtime, endpoint, variant, instance)
    return instance


def _new_instance(
    endpoint: Endpoint, config: EndpointConfig, variant: ProductionVariant
) -> EndpointInstance:
    instance = EndpointInstance.objects.create(
        endpoint=endpoint, config=config, variant_name=variant.name, status=InstanceStatus.STARTING
    )
    name = container_name(instance)
    EndpointInstance.objects.filter(pk=instance.pk).update(container_name=name)
    instance.container_name = name
    return instance


def _start_container(
    runtime: Runtime, endpoint: Endpoint, variant: ProductionVariant, instance: EndpointInstance
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
    _retire_stale_claims(instance)


def _wait_until_out_of_rotation() -> None:
    """Sleep until every instance taken out of rotation has been out for
    OUT_OF_ROTATION_SECONDS: the container about to start may get its address (see the
    module's docstring). Unhealthy rows keep the time they were taken out in last_check_at."""
    horizon = timezone.now() - timedelta(seconds=OUT_OF_ROTATION_SECONDS)
    latest: datetime | None = EndpointInstance.objects.filter(
        status=InstanceStatus.UNHEALTHY, last_check_at__gt=horizon
    ).aggregate(latest=Max("last_check_at"))["latest"]
    if latest is not None:
        time.sleep(max(0.0, (latest - horizon).total_seconds()))


def _retire_stale_claims(instance: EndpointInstance) -> None:
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
        moved = EndpointInstance.objects.filter(pk=other.pk, status=InstanceStatus.HEALTHY).update(
            status=InstanceStatus.UNHEALTHY, last_check_at=timezone.now(), message=why
        )
        if moved:
            endpoint_event(
                endpoint=other.endpoint,
                message=f"Instance {other.container_name} is unhealthy ({why}); "
                "taken out of rotation and being replaced",
            )


def _await_healthy(runtime: Runtime, started: Sequence[EndpointInstance]) -> None:
    """Wait for every instance's /ping in parallel (no database work in the threads); mark
    them HEALTHY. Raises the first failure, naming the instance."""

    def wait(instance: EndpointInstance) -> None:
        try:
            wait_until_ready(
                runtime,
                instance.container_id,
                host=instance.host,
                port=instance.port or 0,  # _start_instance refuses an instance without one
                timeout=_startup_timeout(),
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
    EndpointInstance.objects.filter(pk__in=[i.pk for i in started]).update(
        status=InstanceStatus.HEALTHY, healthy_at=now, last_check_at=now
    )


def _bring_up(runtime: Runtime, endpoint: Endpoint, config: EndpointConfig) -> list[int]:
    """Start every instance of every variant of `config` and wait until all are healthy.
    On failure the caller removes what was started (found by endpoint and config)."""
    started: list[EndpointInstance] = []
    for variant in config.variants.select_related("model__package__group").order_by("id"):
        for _ in range(variant.instance_count):
            started.append(_start_instance(runtime, endpoint, config, variant))
    _await_healthy(runtime, started)
    return [instance.pk for instance in started]


def _remove_containers(runtime: Runtime, container_ids: Iterable[str], grace: float) -> None:
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


def _remove_instances(runtime: Runtime, instances: Iterable[EndpointInstance], grace: float) -> int:
    instances = list(instances)
    _remove_containers(runtime, [i.container_id for i in instances], grace)
    EndpointInstance.objects.filter(pk__in=[i.pk for i in instances]).delete()
    return len(instances)


def _release_network(runtime: Runtime, team_slug: str) -> None:
    """The team's serving network goes once its last serving container has (the periodic
    check removes any this misses)."""
    try:
        serving_network_release(runtime, team_slug)
    except StudioloError as exc:
        log.warning("could not remove the serving network of team %s: %s", team_slug, exc)


def _failure(exc: BaseException) -> str:
    if isinstance(exc, StudioloError):
        return exc.message
    log.exception("endpoint operation failed", exc_info=exc)
    return f"Platform error: {type(exc).__name__}: {exc}"


# --- the operations the tasks run ---------------------------------------------------------------


def deploy_endpoint(endpoint_id: int) -> None:
    """Creating → InService once every instance answers /ping; → Failed (with the container's
    last log lines) otherwise, leaving nothing running."""
    endpoint = Endpoint.objects.select_related("team", "config").filter(pk=endpoint_id).first()
    if endpoint is None or endpoint.status != EndpointStatus.CREATING:
        return
    runtime = get_runtime()
    # A redelivered task: what an earlier attempt started is not known to be healthy.
    _remove_instances(runtime, EndpointInstance.objects.filter(endpoint=endpoint), 0)
    started_at = time.monotonic()
    try:
        _bring_up(runtime, endpoint, endpoint.config)
    except Exception as exc:
        _remove_instances(runtime, EndpointInstance.objects.filter(endpoint_id=endpoint_id), 0)
        _release_network(runtime, endpoint.team.slug)
        reason = _failure(exc)
        with contextlib.suppress(IllegalTransition, Endpoint.DoesNotExist):  # deleted meanwhile
            endpoint_transition(
                endpoint_id=endpoint_id,
                status=EndpointStatus.FAILED,
                expect=EndpointStatus.CREATING,
                message="Could not start the endpoint's instances",
                failure_reason=reason,
            )
        return
    count = EndpointInstance.objects.filter(endpoint_id=endpoint_id).count()
    try:
        endpoint_transition(
            endpoint_id=endpoint_id,
            status=EndpointStatus.IN_SERVICE,
            expect=EndpointStatus.CREATING,
            message=f"{count} instance(s) healthy after {time.monotonic() - started_at:.1f} s",
            failure_reason="",
        )
    except (IllegalTransition, Endpoint.DoesNotExist):
        # Deleted while starting: the deletion removes the instances (and so do we).
        _remove_instances(runtime, EndpointInstance.objects.filter(endpoint_id=endpoint_id), 0)


def roll_out_endpoint(endpoint_id: int) -> None:
    """Updating: the pending config's instances start and become healthy, traffic switches in
    one transaction, the old instances drain and stop. A failure removes the new instances and
    leaves the old config serving (InService, with the failure as the reason)."""
    endpoint = (
        Endpoint.objects.select_related("team", "config", "pending_config")
        .filter(pk=endpoint_id)
        .first()
    )
    if endpoint is None or endpoint.status != EndpointStatus.UPDATING:
        return
    new_config = endpoint.pending_config
    if new_config is None:
        return
    runtime = get_runtime()
    stale = EndpointInstance.objects.filter(endpoint=endpoint, config=new_config)
    if new_config.pk != endpoint.config_id:
        _remove_instances(runtime, stale, 0)  # an earlier attempt's, not known to be healthy
    started_at = time.monotonic()
    try:
        new_ids = _bring_up(runtime, endpoint, new_config)
    except Exception as exc:
        _roll_back(runtime, endpoint, new_config, _failure(exc))
        return
    with transaction.atomic():
        old = list(
            EndpointInstance.objects.select_for_update()
            .filter(endpoint_id=endpoint_id)
            .exclude(pk__in=new_ids)
        )
        EndpointInstance.objects.filter(pk__in=[i.pk for i in old]).update(
            status=InstanceStatus.DRAINING
        )
        try:
            endpoint_transition(
                endpoint_id=endpoint_id,
                status=EndpointStatus.IN_SERVICE,
                expect=EndpointStatus.UPDATING,
                message=(
                    f"Now serving config {new_config.name} ({len(new_ids)} instance(s) healthy "
                    f"after {time.monotonic() - started_at:.1f} s); draining {len(old)} old"
                ),
                config=new_config,
                pending_config=None,
                failure_reason="",
                attention="",
            )
        except (IllegalTransition, Endpoint.DoesNotExist):
            transaction.set_rollback(True)
            return  # deleted meanwhile: the deletion removes every instance
    time.sleep(DRAIN_SECONDS)
    removed = _remove_instances(runtime, old, STOP_GRACE_SECONDS)
    staged_models_prune()  # the old config's models, unless something else serves them
    endpoint = Endpoint.objects.select_related("team").get(pk=endpoint_id)
    endpoint_event(endpoint=endpoint, message=f"Drained and stopped {removed} old instance(s)")


def _roll_back(runtime: Runtime, endpoint: Endpoint, new_config: EndpointConfig, why: str) -> None:
    _remove_instances(
        runtime, EndpointInstance.objects.filter(endpoint=endpoint, config=new_config), 0
    )
    serving = EndpointInstance.objects.filter(
        endpoint=endpoint, config_id=endpoint.config_id, status=InstanceStatus.HEALTHY
    ).exists()
    with contextlib.suppress(IllegalTransition, Endpoint.DoesNotExist):
        endpoint_transition(
            endpoint_id=endpoint.pk,
            status=EndpointStatus.IN_SERVICE if serving else EndpointStatus.FAILED,
            expect=EndpointStatus.UPDATING,
            message=f"Update to config {new_config.name} failed; rolled back",
            failure_reason=(
                f"Update to config {new_config.name} failed and was rolled back"
                f"{'' if serving else ' (the old config has no healthy instance either)'}: "
                f"{why}"
            ),
            pending_config=None,
        )


def delete_endpoint(endpoint_id: int) -> None:
    endpoint = Endpoint.objects.select_related("team").filter(pk=endpoint_id).first()
    if endpoint is None or endpoint.status != EndpointStatus.DELETING:
        return
    runtime = get_runtime()
    _remove_instances(
        runtime, EndpointInstance.objects.filter(endpoint=endpoint), STOP_GRACE_SECONDS
    )
    # Containers whose rows a crashed attempt never wrote.
    leftovers = runtime.find(
        {LABEL_ENDPOINT_ID: str(endpoint_id), LABEL_INSTANCE: instance_label()}
    )
    _remove_containers(runtime, [state.id for state in leftovers], 0)
    team_id, team_slug, name = endpoint.team_id, endpoint.team.slug, endpoint.name
    _release_network(runtime, team_slug)
    with transaction.atomic():
        endpoint.delete()
        publish_team_event(
            team_id=team_id,
            team_slug=team_slug,
            event="endpoint.deleted",
            data={"id": endpoint_id, "name": name},
        )
    staged_models_prune()  # its models' folders, unless something else serves them


def heal_instance(instance_id: int) -> None:
    """Replace an UNHEALTHY instance: a new one starts and becomes healthy, then the bad one
    is removed. If the replacement fails too, the bad one stays recorded (the next check
    tries again after a pause)."""
    now = timezone.now()
    claimed = (
        EndpointInstance.objects.filter(pk=instance_id, status=InstanceStatus.UNHEALTHY)
        .filter(
            Q(replacement_started_at__isnull=True)
            | Q(replacement_started_at__lt=now - timedelta(seconds=_startup_timeout() + 30))
        )
        .update(replacement_started_at=now)
    )
    if not claimed:
        return  # healthy again, gone, or another worker is replacing it
    bad = EndpointInstance.objects.select_related("endpoint__team", "endpoint__config").get(
        pk=instance_id
    )
    endpoint = bad.endpoint
    runtime = get_runtime()
    if endpoint.status not in SERVING_STATUSES or bad.config_id != endpoint.config_id:
        _remove_instances(runtime, [bad], 0)  # nothing to replace it for
        return
    variant = endpoint.config.variants.select_related("model").filter(name=bad.variant_name).first()
    if variant is None:
        _remove_instances(runtime, [bad], 0)
        return
    replacement = _new_instance(endpoint, endpoint.config, variant)
    try:
        _start_container(runtime, endpoint, variant, replacement)
        _await_healthy(runtime, [replacement])
    except Exception as exc:
        reason = _failure(exc)
        _remove_instances(runtime, EndpointInstance.objects.filter(pk=replacement.pk), 0)
        engine_error = _engine_error(runtime)
        if engine_error:
            # Not the model's doing, and nothing can start until the engine is back: the
            # check hands the replacement out again as soon as the engine answers.
            EndpointInstance.objects.filter(pk=bad.pk).update(replacement_started_at=None)
            endpoint_event(
                endpoint=endpoint,
                message=f"Replacing {bad.container_name} waits for the Docker engine "
                f"({engine_error})",
            )
            return
        endpoint_event(
            endpoint=endpoint,
            message=f"Replacing {bad.container_name} failed (will retry): {reason}",
        )
        return
    _remove_instances(runtime, [bad], 0)
    endpoint_event(
        endpoint=endpoint,
        message=(
            f"Replaced {bad.container_name} ({bad.message or 'unhealthy'}) by "
            f"{replacement.container_name}"
        ),
    )


# --- the periodic check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    instance_id: int
    alive: bool  # False: its container is gone or exited (no second chance)
    answers: bool
    why: str
    address: tuple[str, int] | None = None  # where it answered, if that moved


def _engine_error(runtime: Runtime) -> str:
    """Why the runtime's engine does not answer, or "" when it does."""
    try:
        runtime.ping()
    except StudioloError as exc:
        return exc.message
    return ""


def _probe(runtime: Runtime, instance: EndpointInstance, engine_error: str) -> Probe:
    recorded = (instance.host, instance.port) if instance.port is not None else None
    address = recorded
    if not engine_error:
        try:
            state = runtime.inspect(instance.container_id)
        except ContainerNotFound:
            return Probe(instance.pk, False, False, "its container is gone")
        except StudioloError as exc:
            engine_error = exc.message  # went away since the check began
        else:
            if not state.running:
                why = (
                    "killed: out of memory" if state.oom_killed else f"exit code {state.exit_code}"
                )
                return Probe(instance.pk, False, False, f"its container exited ({why})")
            # Restarted by someone (or by a restart policy): the engine may have given it
            # another address; the data plane must follow.
            address = serving_address(state, serving_network(runtime)) or recorded
    # Without the engine, the recorded address is all there is: nothing new can have
    # taken it while the engine is away.
    if address is None or not ping(*address):
        why = "it did not answer /ping"
        if engine_error:
            why += f", and the Docker engine is unreachable ({engine_error})"
        return Probe(instance.pk, True, False, why)
    return Probe(instance.pk, True, True, "", address if address != recorded else None)


def check_endpoints() -> dict[str, int]:
    """Every instance in rotation is alive and answers /ping; replace those that do not.
    Also resumes endpoint operations a dead worker left behind and removes orphaned
    containers. Returns counts, for logs and tests.

    While the engine does not answer, instances are only pinged (see the module's
    docstring): those that stop answering go out of rotation, and nothing is started,
    removed or resumed until the engine is back."""
    from endpoints import tasks

    close_old_connections()
    runtime = get_runtime()
    engine_error = _engine_error(runtime)
    counts = {
        "checked": 0,
        "unhealthy": 0,
        "moved": 0,
        "resumed": 0,
        "orphans": 0,
        "networks_removed": 0,
        "engine_unreachable": int(bool(engine_error)),
    }
    instances = list(
        EndpointInstance.objects.filter(
            status=InstanceStatus.HEALTHY, endpoint__status__in=SERVING_STATUSES
        ).select_related("endpoint__team")
    )
    if instances:
        with ThreadPoolExecutor(max_workers=min(16, len(instances))) as pool:
            probes = list(
                pool.map(lambda instance: _probe(runtime, instance, engine_error), instances)
            )
    else:
        probes = []
    now = timezone.now()
    by_id = {instance.pk: instance for instance in instances}
    for probe in probes:
        counts["checked"] += 1
        instance = by_id[probe.instance_id]
        if probe.answers:
            moved_to = probe.address
            EndpointInstance.objects.filter(pk=instance.pk).update(
                last_check_at=now,
                consecutive_failures=0,
                **({"host": moved_to[0], "port": moved_to[1]} if moved_to else {}),
            )
            if moved_to:
                counts["moved"] += 1
                endpoint_event(
                    endpoint=instance.endpoint,
                    message=f"Instance {instance.container_name} now answers at "
                    f"{moved_to[0]}:{moved_to[1]} (was {instance.host}:{instance.port}); "
                    "traffic follows",
                )
            continue
        failures = instance.consecutive_failures + 1
        if probe.alive and failures < FAILED_PINGS_BEFORE_REPLACING:
            EndpointInstance.objects.filter(pk=instance.pk).update(
                last_check_at=now, consecutive_failures=failures
            )
            continue
        moved = EndpointInstance.objects.filter(
            pk=instance.pk, status=InstanceStatus.HEALTHY
        ).update(
            status=InstanceStatus.UNHEALTHY,
            last_check_at=now,
            consecutive_failures=failures,
            message=probe.why,
        )
        if moved:
            counts["unhealthy"] += 1
            then = (
                "it is replaced once the engine answers again" if engine_error else "being replaced"
            )
            endpoint_event(
                endpoint=instance.endpoint,
                message=f"Instance {instance.container_name} is unhealthy ({probe.why}); "
                f"taken out of rotation, {then}",
            )
    if engine_error:
        log.warning("endpoint check: the container engine is unreachable: %s", engine_error)
        return counts
    # Replace the instances just found unhealthy, and again those whose replacement failed
    # or whose task was lost (after a pause).
    retry_before = now - timedelta(seconds=30)
    for instance_id in (
        EndpointInstance.objects.filter(
            status=InstanceStatus.UNHEALTHY, endpoint__status__in=SERVING_STATUSES
        )
        .filter(Q(replacement_started_at__isnull=True) | Q(replacement_started_at__lt=retry_before))
        .values_list("pk", flat=True)
    ):
        tasks.heal_instance.delay(instance_id)
    counts["resumed"] = _resume_stuck(now)
    counts["orphans"] = _remove_orphans(runtime)
    try:
        counts["networks_removed"] = serving_networks_reconcile(
            runtime, older_than=IDLE_NETWORK_AGE
        )
    except StudioloError as exc:
        log.warning("endpoint check: serving networks: %s", exc)
    return counts


def _resume_stuck(now: datetime) -> int:
    from endpoints import tasks

    limit = now - timedelta(seconds=_startup_timeout() + STUCK_MARGIN_SECONDS)
    resumed = 0
    for endpoint in Endpoint.objects.filter(
        status__in=[EndpointStatus.CREATING, EndpointStatus.UPDATING, EndpointStatus.DELETING],
        updated_at__lt=limit,
    ):
        task = {
            EndpointStatus.CREATING: tasks.deploy_endpoint,
            EndpointStatus.UPDATING: tasks.roll_out_endpoint,
            EndpointStatus.DELETING: tasks.delete_endpoint,
        }[EndpointStatus(endpoint.status)]
        Endpoint.objects.filter(pk=endpoint.pk).update(updated_at=now)  # once per period
        task.delay(endpoint.pk)
        resumed += 1
    return resumed


def _remove_orphans(runtime: Runtime) -> int:
    try:
        containers = runtime.find({LABEL_KIND: "endpoint", LABEL_INSTANCE: instance_label()})
    except StudioloError:
        return 0
    known = set(
        EndpointInstance.objects.filter(
            pk__in=[
                int(c.labels[LABEL_ENDPOINT_INSTANCE_ID])
                for c in containers
                if c.labels.get(LABEL_ENDPOINT_INSTANCE_ID, "").isdigit()
            ]
        ).values_list("pk", flat=True)
    )
    known_labels = {str(pk) for pk in known}
    orphans = [
        c.id for c in containers if c.labels.get(LABEL_ENDPOINT_INSTANCE_ID, "") not in known_labels
    ]
    _remove_containers(runtime, orphans, 0)
    return len(orphans)
