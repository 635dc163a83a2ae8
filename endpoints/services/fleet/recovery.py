"""What a dead worker or a crash leaves behind, found by the periodic check: endpoint
operations not moving (resumed), containers with this studio's labels and no instance row
(removed), and team serving networks no container uses any more (removed)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from compute.labels import (
    KIND_ENDPOINT,
    LABEL_ENDPOINT_INSTANCE_ID,
    LABEL_INSTANCE,
    LABEL_KIND,
    instance_label,
)
from compute.runtime.base import Runtime
from compute.serving import serving_networks_reconcile
from endpoints.models import Endpoint, EndpointInstance, EndpointStatus
from endpoints.services.fleet.containers import remove_containers, startup_timeout
from studio.errors import StudioloError

log = logging.getLogger(__name__)

STUCK_MARGIN_SECONDS = 120  # a busy endpoint not moving for startup timeout + this is resumed
# A team's serving network that no container uses is removed by the periodic check once it is
# this old (a younger one may be about to get the container it was made for).
IDLE_NETWORK_AGE = timedelta(seconds=60)


def resume_stuck(now: datetime) -> int:
    from endpoints import tasks

    limit = now - timedelta(seconds=startup_timeout() + STUCK_MARGIN_SECONDS)
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


def remove_orphans(runtime: Runtime) -> int:
    try:
        containers = runtime.find({LABEL_KIND: KIND_ENDPOINT, LABEL_INSTANCE: instance_label()})
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
    remove_containers(runtime, orphans, 0)
    return len(orphans)


def remove_idle_networks(runtime: Runtime) -> int:
    try:
        return serving_networks_reconcile(runtime, older_than=IDLE_NETWORK_AGE)
    except StudioloError as exc:
        log.warning("endpoint check: serving networks: %s", exc)
        return 0
