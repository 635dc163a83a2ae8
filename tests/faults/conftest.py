"""The fault suite: real components (the Docker engine, a real worker set and beat, Redis,
the database) killed or stalled in the middle of work, and what must still hold.

It uses the session's workers (tests/workers.py: a control-plane worker and a job worker, as
deployed) and starts beat for the suite, so that reconciliation and the endpoints' health
checks run on their own schedule, as in production. Tests shorten the job lease to 4 s
(tests/settings.py), and with it the reconciliation period (studio/schedules.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from compute.labels import LABEL_INSTANCE, LABEL_KIND, instance_label
from compute.runtime import get_runtime
from tests.factories import make_team, make_token, make_user
from tests.faults.support import Api
from tests.workers import Component, Worker, beat


@pytest.fixture(scope="package")
def beat_running(worker: Worker, tmp_path_factory: Any) -> Iterator[Component]:
    scheduler = beat(worker.runtime, tmp_path_factory.mktemp("beat"))
    scheduler.start(ready=b"beat: Starting...")
    yield scheduler
    scheduler.stop()


@pytest.fixture
def api(client: Client, worker: Worker, use_runtime: str, beat_running: Component) -> Iterator[Api]:
    team = make_team("lab")
    yield Api(client, team.slug, make_token(make_user(team, role="scientist")))
    # A failed test must not leave serving containers running for the next ones.
    runtime = get_runtime()
    for state in runtime.find({LABEL_KIND: "endpoint", LABEL_INSTANCE: instance_label()}):
        runtime.remove(state.id)
