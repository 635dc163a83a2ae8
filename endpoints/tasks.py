"""Celery tasks of the endpoints app: thin wrappers around `endpoints.services.fleet`'s modules.

They run on the `endpoints` queue (every `studiolo worker` consumes it), take ids, and are
safe to run twice.
"""

from __future__ import annotations

from celery import shared_task

QUEUE = "endpoints"  # routed there by CELERY_TASK_ROUTES in studio/settings.py


@shared_task(name="endpoints.deploy", acks_late=True, ignore_result=True)
def deploy_endpoint(endpoint_id: int) -> None:
    from endpoints.services.fleet.deploy import deploy_endpoint as run

    run(endpoint_id)


@shared_task(name="endpoints.roll_out", acks_late=True, ignore_result=True)
def roll_out_endpoint(endpoint_id: int) -> None:
    from endpoints.services.fleet.rollout import roll_out_endpoint as run

    run(endpoint_id)


@shared_task(name="endpoints.delete", acks_late=True, ignore_result=True)
def delete_endpoint(endpoint_id: int) -> None:
    from endpoints.services.fleet.deploy import delete_endpoint as run

    run(endpoint_id)


@shared_task(name="endpoints.heal", acks_late=True, ignore_result=True)
def heal_instance(instance_id: int) -> None:
    from endpoints.services.fleet.health import heal_instance as run

    run(instance_id)


@shared_task(name="endpoints.check", ignore_result=True, time_limit=120)
def check_endpoints() -> None:
    from endpoints.services.fleet.health import check_endpoints as run

    run()
