from __future__ import annotations

import time

from celery import shared_task

from studio.health import HEARTBEAT_KEY, redis_client


@shared_task(name="studio.heartbeat", ignore_result=True, time_limit=10)
def heartbeat() -> None:
    """Record that a worker is alive and consuming the default queue."""
    client = redis_client()
    try:
        client.set(HEARTBEAT_KEY, str(time.time()), ex=300)
    finally:
        client.close()
