"""Control-plane work never waits behind job work: with every job slot taken by a long job,
an endpoint whose container dies is replaced within 10 s (beat's 5-second health check, the
control-plane worker's healing), as the database's timeline shows."""

from __future__ import annotations

import docker
import pytest
from django.utils import timezone

from endpoints.models import Endpoint, EndpointInstance, EndpointStatus, InstanceStatus
from endpoints.services.lifecycle import endpoint_create
from endpoints.services.models import VariantRequest, config_create, model_for_package
from jobs.models import JobStatus, SecondaryStatus
from studio.accounts.models import Team
from studio.cli.server import WORKER_CONCURRENCY
from tests.endpoints.conftest import approved_package, wait_for_endpoint
from tests.factories import make_user
from tests.faults.support import TICKER, Api, finish, job, wait_until
from tests.workers import Worker

pytestmark = [
    pytest.mark.fault,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.parametrize("runtime_name", ["docker"], indirect=True),
]

REPLACED_WITHIN = 10.0


def test_a_dead_endpoint_container_is_replaced_within_10_s_while_jobs_fill_every_slot(
    api: Api, worker: Worker
) -> None:
    team = Team.objects.get(slug=api.slug)
    scientist, approver = make_user(team, role="scientist"), make_user(team, role="approver")
    model = model_for_package(
        team=team, actor=scientist, package=approved_package(team, scientist, approver)
    )
    config = config_create(
        team=team, actor=scientist, name="echo-config", variants=[VariantRequest(model=model)]
    )
    endpoint = endpoint_create(team=team, actor=scientist, name="echo", config=config)
    endpoint = wait_for_endpoint(endpoint.pk, lambda e: e.status != EndpointStatus.CREATING)
    assert endpoint.status == EndpointStatus.IN_SERVICE, endpoint.failure_reason
    victim = EndpointInstance.objects.get(endpoint=endpoint, status=InstanceStatus.HEALTHY)

    # As many long jobs as the job worker runs at once: every slot is held.
    jobs = [api.submit(f"long-{n}", TICKER) for n in range(WORKER_CONCURRENCY["jobs"])]
    for job_id in jobs:
        wait_until(
            lambda job_id=job_id: job(job_id).secondary_status == SecondaryStatus.TRAINING,
            f"job {job_id} did not start",
        )

    killed_at = timezone.now()
    docker.from_env().containers.get(victim.container_id).kill()
    replacement = wait_until(
        lambda: EndpointInstance.objects.filter(
            endpoint=endpoint, status=InstanceStatus.HEALTHY, healthy_at__gt=killed_at
        ).first(),
        "the dead instance was not replaced",
        timeout=90,
    )
    assert replacement.healthy_at is not None
    took = (replacement.healthy_at - killed_at).total_seconds()
    print(f"replaced {took:.1f} s after its container was killed")  # noqa: T201 - with -s
    assert took <= REPLACED_WITHIN, f"replaced {took:.1f} s after the kill"
    # The jobs were running the whole time: the replacement did not wait for a free slot.
    assert all(job(job_id).status == JobStatus.IN_PROGRESS for job_id in jobs)
    # The timeline: noticed, then replaced (recorded once the dead one is removed).
    events = Endpoint.objects.get(pk=endpoint.pk).events.filter(created_at__gt=killed_at)
    replaced = wait_until(
        lambda: events.filter(message__startswith="Replaced").first(), "no Replaced event"
    )
    noticed = events.get(message__contains="is unhealthy")
    assert killed_at < noticed.created_at < replacement.healthy_at <= replaced.created_at

    for job_id in jobs:
        finish(job_id)
    for job_id in jobs:
        done = wait_until(
            lambda job_id=job_id: job(job_id).is_terminal and job(job_id), "job did not end"
        )
        assert done.status == JobStatus.COMPLETED, done.failure_reason
