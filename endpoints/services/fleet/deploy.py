"""Creating an endpoint's instances (Creating → InService, or Failed leaving nothing running)
and deleting them with the endpoint."""

from __future__ import annotations

import contextlib
import time

from django.db import transaction

from compute.labels import LABEL_ENDPOINT_ID, LABEL_INSTANCE, instance_label
from compute.runtime import get_runtime
from compute.staging import staged_models_prune
from endpoints.models import Endpoint, EndpointInstance, EndpointStatus
from endpoints.services.fleet.containers import (
    STOP_GRACE_SECONDS,
    bring_up,
    failure,
    release_network,
    remove_containers,
    remove_instances,
)
from endpoints.services.instances import Component
from endpoints.services.lifecycle import IllegalTransition, endpoint_transition
from studio.events import publish_team_event


def deploy_endpoint(endpoint_id: int) -> None:
    """Creating → InService once every instance answers /ping; → Failed (with the container's
    last log lines) otherwise, leaving nothing running."""
    endpoint = Endpoint.objects.select_related("team", "config").filter(pk=endpoint_id).first()
    if endpoint is None or endpoint.status != EndpointStatus.CREATING:
        return
    runtime = get_runtime()
    by = Component.DEPLOYMENT
    # A redelivered task: what an earlier attempt started is not known to be healthy.
    remove_instances(
        runtime,
        EndpointInstance.objects.filter(endpoint=endpoint),
        0,
        by,
        "an earlier attempt's, not known to be healthy: the deployment starts again",
    )
    started_at = time.monotonic()
    try:
        bring_up(runtime, endpoint, endpoint.config, by)
    except Exception as exc:
        reason = failure(exc)
        remove_instances(
            runtime,
            EndpointInstance.objects.filter(endpoint_id=endpoint_id),
            0,
            by,
            f"the deployment failed: {reason}",
        )
        release_network(runtime, endpoint.team.slug)
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
        remove_instances(
            runtime,
            EndpointInstance.objects.filter(endpoint_id=endpoint_id),
            0,
            by,
            "the endpoint is being deleted",
        )


def delete_endpoint(endpoint_id: int) -> None:
    endpoint = Endpoint.objects.select_related("team").filter(pk=endpoint_id).first()
    if endpoint is None or endpoint.status != EndpointStatus.DELETING:
        return
    runtime = get_runtime()
    remove_instances(
        runtime,
        EndpointInstance.objects.filter(endpoint=endpoint),
        STOP_GRACE_SECONDS,
        Component.DELETION,
        "the endpoint is deleted",
    )
    # Containers whose rows a crashed attempt never wrote.
    leftovers = runtime.find(
        {LABEL_ENDPOINT_ID: str(endpoint_id), LABEL_INSTANCE: instance_label()}
    )
    remove_containers(runtime, [state.id for state in leftovers], 0)
    team_id, team_slug, name = endpoint.team_id, endpoint.team.slug, endpoint.name
    release_network(runtime, team_slug)
    with transaction.atomic():
        endpoint.delete()
        publish_team_event(
            team_id=team_id,
            team_slug=team_slug,
            event="endpoint.deleted",
            data={"id": endpoint_id, "name": name},
        )
    staged_models_prune()  # its models' folders, unless something else serves them
