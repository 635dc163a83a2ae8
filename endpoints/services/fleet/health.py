"""The periodic check (every instance in rotation is alive and answers /ping) and healing
(an unhealthy instance is replaced: the new one healthy first, then the bad one removed)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.db import close_old_connections
from django.db.models import Q
from django.utils import timezone

from compute.runtime import get_runtime
from compute.runtime.base import ContainerNotFound, Runtime
from compute.serving import ping, serving_address, serving_network
from endpoints.models import SERVING_STATUSES, EndpointInstance, InstanceStatus
from endpoints.services.fleet.containers import (
    await_healthy,
    failure,
    new_instance,
    remove_instances,
    start_container,
    startup_timeout,
)
from endpoints.services.fleet.recovery import remove_idle_networks, remove_orphans, resume_stuck
from endpoints.services.instances import Component, instance_transition
from endpoints.services.lifecycle import endpoint_event
from studio.errors import StudioloError

log = logging.getLogger(__name__)

FAILED_PINGS_BEFORE_REPLACING = 2  # one slow /ping is not a dead instance; a dead process is


def heal_instance(instance_id: int) -> None:
    """Replace an UNHEALTHY instance: a new one starts and becomes healthy, then the bad one
    is removed. If the replacement fails too, the bad one stays recorded (the next check
    tries again after a pause)."""
    now = timezone.now()
    claimed = (
        EndpointInstance.objects.filter(pk=instance_id, status=InstanceStatus.UNHEALTHY)
        .filter(
            Q(replacement_started_at__isnull=True)
            | Q(replacement_started_at__lt=now - timedelta(seconds=startup_timeout() + 30))
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
    by = Component.HEALING
    if endpoint.status not in SERVING_STATUSES or bad.config_id != endpoint.config_id:
        why = f"not replaced: the endpoint is {endpoint.status} with config {endpoint.config.name}"
        remove_instances(runtime, [bad], 0, by, why)  # nothing to replace it for
        return
    variant = endpoint.config.variants.select_related("model").filter(name=bad.variant_name).first()
    if variant is None:
        why = f"not replaced: config {endpoint.config.name} has no variant {bad.variant_name}"
        remove_instances(runtime, [bad], 0, by, why)
        return
    replacement = new_instance(
        endpoint, endpoint.config, variant, by, f"to replace {bad.container_name}"
    )
    try:
        start_container(runtime, endpoint, variant, replacement, by)
        await_healthy(runtime, [replacement], by)
    except Exception as exc:
        reason = failure(exc)
        remove_instances(runtime, [replacement], 0, by, f"it did not come up: {reason}")
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
    remove_instances(runtime, [bad], 0, by, f"replaced by {replacement.container_name}")
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

    While the engine does not answer, instances are only pinged (see the package's
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
        moved = instance_transition(
            instance=instance,
            status=InstanceStatus.UNHEALTHY,
            expect=InstanceStatus.HEALTHY,
            actor=Component.HEALTH_CHECK,
            why=probe.why,
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
    counts["resumed"] = resume_stuck(now)
    counts["orphans"] = remove_orphans(runtime)
    counts["networks_removed"] = remove_idle_networks(runtime)
    return counts
