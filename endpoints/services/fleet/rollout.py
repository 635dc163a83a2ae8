"""Updating an endpoint with zero downtime: the pending config's instances come up, traffic
switches in one transaction, the old instances drain and stop; a failure rolls back."""

from __future__ import annotations

import contextlib
import time

from django.db import transaction

from compute.runtime import get_runtime
from compute.runtime.base import Runtime
from compute.staging import staged_models_prune
from endpoints.models import (
    Endpoint,
    EndpointConfig,
    EndpointInstance,
    EndpointStatus,
    InstanceStatus,
)
from endpoints.services.fleet.containers import (
    STOP_GRACE_SECONDS,
    bring_up,
    failure,
    remove_instances,
)
from endpoints.services.instances import Component, instance_transition
from endpoints.services.lifecycle import IllegalTransition, endpoint_event, endpoint_transition

# Longer than the data plane's routing cache (1 s) plus a request in flight: after traffic
# switches away from an instance, it keeps answering this long before it is stopped.
DRAIN_SECONDS = 3.0


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
    by = Component.ROLL_OUT
    stale = EndpointInstance.objects.filter(endpoint=endpoint, config=new_config)
    if new_config.pk != endpoint.config_id:
        remove_instances(
            runtime,
            stale,
            0,
            by,
            "an earlier attempt's, not known to be healthy: the update starts again",
        )
    started_at = time.monotonic()
    try:
        new_ids = bring_up(runtime, endpoint, new_config, by)
    except Exception as exc:
        _roll_back(runtime, endpoint, new_config, failure(exc))
        return
    with transaction.atomic():
        old = list(
            EndpointInstance.objects.select_for_update(of=("self",))
            .filter(endpoint_id=endpoint_id)
            .exclude(pk__in=new_ids)
            .select_related("endpoint__team")
        )
        for instance in old:
            if instance.status != InstanceStatus.DRAINING:  # one a crashed attempt drained
                instance_transition(
                    instance=instance,
                    status=InstanceStatus.DRAINING,
                    expect=instance.status,  # read under the lock
                    actor=by,
                    why=f"config {new_config.name} serves now; stopped in {DRAIN_SECONDS:g} s",
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
    removed = remove_instances(
        runtime, old, STOP_GRACE_SECONDS, by, f"drained: config {new_config.name} serves"
    )
    staged_models_prune()  # the old config's models, unless something else serves them
    endpoint = Endpoint.objects.select_related("team").get(pk=endpoint_id)
    endpoint_event(endpoint=endpoint, message=f"Drained and stopped {removed} old instance(s)")


def _roll_back(runtime: Runtime, endpoint: Endpoint, new_config: EndpointConfig, why: str) -> None:
    remove_instances(
        runtime,
        EndpointInstance.objects.filter(endpoint=endpoint, config=new_config),
        0,
        Component.ROLL_OUT,
        f"the update to config {new_config.name} failed and is rolled back: {why}",
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
