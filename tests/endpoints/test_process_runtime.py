"""Endpoints on the process runtime leave nothing running once deleted: the toolkit's server,
its forked workers, its supervisor, and what the model started in a session of its own (a
helper server, as models that start a tokenizer or a multiprocessing manager do) all end.
The fleet runs in this process."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psutil
import pytest

import endpoints.gateway
from compute.runtime import get_runtime
from compute.runtime.process import ProcessRuntime
from endpoints.models import Endpoint, EndpointInstance, EndpointStatus
from endpoints.services.fleet import deploy
from endpoints.services.lifecycle import endpoint_delete, endpoint_deploy_package
from tests.endpoints.conftest import ECHO_MODEL, approved_package
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# The echo model, whose model_fn also starts a helper process that leaves the server's
# process group (a session of its own), named so that the test finds it.
HELPER = "studiolo-test-helper-" + uuid.uuid4().hex[:8]
HELPER_MODEL = (
    ECHO_MODEL
    + f"""
import subprocess, sys

_load = model_fn

def model_fn(model_dir):
    subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "{HELPER}"],
        start_new_session=True,
    )
    return _load(model_dir)
"""
)


def helpers() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if HELPER in (process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.fixture(autouse=True)
def _fresh_gateway() -> Iterator[None]:
    endpoints.gateway.reset()
    yield
    endpoints.gateway.reset()


def process_tree(runtime: ProcessRuntime, container_id: str) -> list[psutil.Process]:
    """The supervisor, the server and everything the server started."""
    import json

    record = json.loads((runtime.root / container_id / "process.json").read_text())
    supervisor = psutil.Process(record["supervisor_pid"])
    return [supervisor, *supervisor.children(recursive=True)]


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    living = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                living.append(process)
        except psutil.NoSuchProcess:
            continue
    return living


@pytest.mark.parametrize("runtime_name", ["process"], indirect=True)
def test_deleting_a_process_runtime_endpoint_leaves_no_process_behind(
    use_runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for task in ("deploy_endpoint", "delete_endpoint"):  # run below, in this process
        monkeypatch.setattr(f"endpoints.tasks.{task}.delay", lambda pk: None)
    team = make_team("procs")
    scientist = make_user(team, role="scientist")
    package = approved_package(
        team, scientist, make_user(team, role="approver"), tag="procs", code=HELPER_MODEL
    )
    endpoint = endpoint_deploy_package(
        team=team,
        actor=scientist,
        name="procecho",
        package=package,
        instance_type="ml.local.large",  # two CPUs: the server forks two workers
        instance_count=2,
    )
    deploy.deploy_endpoint(endpoint.pk)
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.IN_SERVICE, endpoint.failure_reason
    runtime = get_runtime()
    assert isinstance(runtime, ProcessRuntime)
    processes = [
        process
        for instance in EndpointInstance.objects.filter(endpoint=endpoint)
        for process in process_tree(runtime, instance.container_id)
    ]
    # Per instance: the supervisor, the server and its two workers, each worker's helper.
    started_helpers = helpers()
    assert len(started_helpers) == 4
    processes += [helper for helper in started_helpers if helper not in processes]
    assert len(alive(processes)) == 12

    endpoint_delete(endpoint=endpoint, actor=scientist)
    deploy.delete_endpoint(endpoint.pk)

    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()
    deadline = time.monotonic() + 30
    while alive(processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(processes) == []
