"""Endpoints with real containers, a real Celery worker and the real data plane.

- the whole flow: train (sklearn, Docker) → register → approve → deploy two instances →
  invoke through the data plane → correct predictions, shared by both instances; then every
  bad input of the issue on that endpoint;
- the fleet under continuous traffic (both runtimes): an instance killed is replaced with no
  failed request; an update switches models with no failed request; a failed update rolls
  back; a model that cannot load fails its endpoint with the container's last log lines.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
import httpx
import pytest

from compute.labels import LABEL_INSTANCE, instance_label
from compute.runtime import get_runtime
from compute.serving import serving_network_name
from endpoints.models import Endpoint, EndpointInstance, EndpointStatus, InstanceStatus
from endpoints.services.fleet import containers, health
from jobs.models import JobStatus
from registry.services.approval import package_decide
from registry.services.registration import InferenceSpec, group_create, package_register_from_job
from studio.artifacts import get_store
from tests.endpoints.conftest import CRASHING_MODEL, approved_package, wait_for_endpoint
from tests.factories import make_team, make_token, make_user
from tests.jobs.conftest import wait_for_job
from tests.workers import Worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TRAIN = """
import glob, os
import joblib, pandas as pd
from sklearn.linear_model import LogisticRegression
files = glob.glob(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "*.csv"))
frame = pd.concat(pd.read_csv(f, header=None) for f in files)
model = LogisticRegression().fit(frame.iloc[:, 1:].values, frame.iloc[:, 0].values)
joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
print("trained on", len(frame), "rows")
"""


@dataclass
class Traffic:
    """A client firing requests back to back on one keep-alive connection, recording every
    answer, until stopped."""

    url: str
    token: str
    body: bytes = b"1,2\n"
    results: list[tuple[int, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "text/csv"}
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(self.url, content=self.body, headers=headers)
                    self.results.append((response.status_code, response.text))
                except httpx.HTTPError as exc:
                    self.results.append((0, repr(exc)))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(30)

    def failures(self) -> list[tuple[int, str]]:
        return [result for result in self.results if result[0] != 200]


@pytest.fixture(autouse=True)
def _no_container_left_behind(no_container_left_behind: None) -> None:
    """(tests/endpoints/conftest.py)"""


@pytest.fixture
def checker() -> Iterator[None]:
    """What beat does in production: check every instance every half second."""
    stop = threading.Event()

    def loop() -> None:
        from django.db import connection

        while not stop.wait(0.5):
            health.check_endpoints()
        connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(30)


def _api(base: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _instance_logs(endpoint: Endpoint) -> dict[str, str]:
    runtime = get_runtime()
    logs = {}
    for instance in EndpointInstance.objects.filter(endpoint=endpoint):
        data = b"".join(chunk.data for chunk in runtime.logs(instance.container_id, follow=False))
        logs[instance.container_name] = data.decode(errors="replace")
    return logs


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_train_register_approve_deploy_invoke_and_every_bad_input(
    asgi_server: str, worker: Worker, use_runtime: str
) -> None:
    store = get_store()
    team = make_team("e2e")
    scientist = make_user(team, role="scientist")
    approver = make_user(team, role="approver")
    viewer = make_user(team, role="viewer")
    token = make_token(scientist)
    rows = "\n".join(f"{i % 2},{(1 if i % 2 else -1) * (3 + i % 5)},{i % 3}" for i in range(80))
    store.put("teams/e2e/data/train/part-1.csv", rows.encode())
    store.put("teams/e2e/code/src.tar.gz", _source(TRAIN))
    api = _api(asgi_server, token)
    response = api.post(
        "/api/v1/jobs",
        json={
            "name": "train-churn",
            "framework": "sklearn",
            "entry_point": "train.py",
            "source_uri": store.uri("teams/e2e/code/src.tar.gz"),
            "instance_type": "ml.local.small",
            "input_channels": [{"name": "train", "uri": store.uri("teams/e2e/data/train")}],
        },
    )
    assert response.status_code == 201, response.text
    job = wait_for_job(response.json()["id"], timeout=120)
    assert job.status == JobStatus.COMPLETED, job.failure_reason
    # The job's model is the platform's: nobody swaps it before (or after) registration.
    swap = api.put(
        f"/api/v1/artifacts/{store.key_from_uri(job.model_artifact_uri)}", content=b"swapped"
    )
    assert swap.status_code == 403, swap.text
    assert "output of training job train-churn" in swap.json()["error"]["message"]

    group = group_create(team=team, name="churn", actor=scientist)
    package = package_register_from_job(
        group=group, job=job, actor=scientist, inference=InferenceSpec(framework="sklearn")
    )
    # Not approved yet: refused, with the reason.
    refused = api.post("/api/v1/endpoints", json={"name": "churn", "model": "churn/1"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["field"] == "model"
    assert "PendingManualApproval" in refused.json()["error"]["message"]
    package_decide(package=package, actor=approver, decision="approve", comment="AUC ok")

    started = time.monotonic()
    response = api.post(
        "/api/v1/endpoints", json={"name": "churn", "model": "churn/1", "instance_count": 2}
    )
    assert response.status_code == 201, response.text
    endpoint = wait_for_endpoint(
        Endpoint.objects.get(name="churn").pk,
        lambda e: e.status != EndpointStatus.CREATING,
    )
    assert endpoint.status == EndpointStatus.IN_SERVICE, endpoint.failure_reason
    create_to_in_service = time.monotonic() - started
    assert create_to_in_service < 30
    if use_runtime == "docker":
        # On the team's own bridge, whose gateway is this host's: called at the container's
        # address there, and nothing is published on the host.
        engine = docker.from_env()
        for instance in endpoint.instances.all():
            attrs = engine.api.inspect_container(instance.container_id)
            assert not attrs["HostConfig"]["PortBindings"]
            network = serving_network_name(team.slug)
            assert attrs["HostConfig"]["NetworkMode"] == network
            address = attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
            assert (instance.host, instance.port) == (address, 8080)
        engine.close()

    invoke = _api(asgi_server, token)
    answers = Counter()
    for _ in range(40):
        response = invoke.post(
            "/endpoints/churn/invocations",
            content=b"-6,1\n6,1\n",
            headers={"Content-Type": "text/csv"},
        )
        assert response.status_code == 200, response.text
        answers[response.text.strip()] += 1
        assert response.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    assert answers == Counter({"[0, 1]": 40})
    deadline = time.monotonic() + 5  # serve writes its access lines every 0.25 s
    while True:
        served = {
            name: log.count("POST /invocations") for name, log in _instance_logs(endpoint).items()
        }
        if sum(served.values()) >= 40 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(served) == 2
    assert all(count >= 5 for count in served.values()), served  # both instances share load

    csv = {"Content-Type": "text/csv"}
    # The model's own 4xx passes through with its message.
    unparsable = invoke.post("/endpoints/churn/invocations", content=b"x,y\n", headers=csv)
    assert 400 <= unparsable.status_code < 500, unparsable.text
    unsupported = invoke.post(
        "/endpoints/churn/invocations", content=b"\x00", headers={"Content-Type": "image/png"}
    )
    assert unsupported.status_code == 415, unsupported.text
    assert "image/png" in unsupported.text
    too_big = invoke.post(
        "/endpoints/churn/invocations", content=b"1,2\n" * (6 * 1024 * 1024 // 4 + 1), headers=csv
    )
    assert too_big.status_code == 413
    assert (
        invoke.post("/endpoints/nope/invocations", content=b"1,2", headers=csv).status_code == 404
    )
    outsider = make_user(make_team("other"), role="admin")
    assert (
        _api(asgi_server, make_token(outsider))
        .post("/endpoints/churn/invocations", content=b"1,2", headers=csv)
        .status_code
        == 404
    )
    watcher = _api(asgi_server, make_token(viewer))
    forbidden = watcher.post("/endpoints/churn/invocations", content=b"1,2", headers=csv)
    assert forbidden.status_code == 403
    anonymous = httpx.post(
        f"{asgi_server}/endpoints/churn/invocations", content=b"1,2", headers=csv
    )
    assert anonymous.status_code == 401

    # The lineage now reaches the endpoint.
    lineage = api.get("/api/v1/teams/e2e/model-groups/churn/packages/1/lineage").json()
    assert [e["name"] for e in lineage["endpoints"]] == ["churn"]

    response = api.delete("/api/v1/endpoints/churn")
    assert response.status_code == 202
    deadline = time.monotonic() + 60
    while Endpoint.objects.filter(pk=endpoint.pk).exists():
        assert time.monotonic() < deadline, "the endpoint was not deleted"
        time.sleep(0.1)
    assert api.get("/api/v1/endpoints/churn").status_code == 404
    assert not get_runtime().find(
        {containers.LABEL_ENDPOINT_ID: str(endpoint.pk), LABEL_INSTANCE: instance_label()}
    )


def _source(script: str) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = script.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_the_fleet_heals_updates_and_rolls_back_under_continuous_traffic(
    asgi_server: str, worker: Worker, use_runtime: str, checker: None
) -> None:
    team = make_team("fleet")
    scientist = make_user(team, role="scientist")
    approver = make_user(team, role="approver")
    token = make_token(scientist)
    approved_package(team, scientist, approver, tag="v1")
    api = _api(asgi_server, token)
    response = api.post(
        "/api/v1/endpoints", json={"name": "echo", "model": "echo/1", "instance_count": 2}
    )
    assert response.status_code == 201, response.text
    endpoint_id = Endpoint.objects.get(name="echo").pk
    endpoint = wait_for_endpoint(endpoint_id, lambda e: e.status != EndpointStatus.CREATING)
    assert endpoint.status == EndpointStatus.IN_SERVICE, endpoint.failure_reason
    url = f"{asgi_server}/endpoints/echo/invocations"

    # Two instances share the load.
    with Traffic(url, token) as traffic:
        time.sleep(1.5)
    assert not traffic.failures(), traffic.failures()[:3]
    instances = {text.split(":")[1] for _, text in traffic.results}
    assert len(instances) == 2, instances

    # Kill one instance's container: traffic avoids it, a replacement takes its place.
    victim = EndpointInstance.objects.filter(endpoint_id=endpoint_id).first()
    assert victim is not None
    with Traffic(url, token) as traffic:
        time.sleep(0.5)
        get_runtime().stop(victim.container_id, 0)
        _wait(
            lambda: (
                not EndpointInstance.objects.filter(pk=victim.pk).exists()
                and EndpointInstance.objects.filter(
                    endpoint_id=endpoint_id, status=InstanceStatus.HEALTHY
                ).count()
                == 2
            ),
            "the killed instance was not replaced",
        )
        time.sleep(0.5)
    assert not traffic.failures(), traffic.failures()[:3]
    assert len(traffic.results) > 20
    events = list(Endpoint.objects.get(pk=endpoint_id).events.values_list("message", flat=True))
    assert any("unhealthy" in message for message in events)
    assert any(message.startswith("Replaced") for message in events)

    # Update to v2 under continuous traffic: no failed request; v2 answers at the end.
    approved_package(team, scientist, approver, tag="v2")
    with Traffic(url, token) as traffic:
        response = api.patch(
            "/api/v1/endpoints/echo", json={"model": "echo/2", "instance_count": 2}
        )
        assert response.status_code == 200, response.text
        wait_for_endpoint(endpoint_id, lambda e: e.status == EndpointStatus.IN_SERVICE)
        _wait(
            lambda: (
                not EndpointInstance.objects.filter(endpoint_id=endpoint_id)
                .exclude(status=InstanceStatus.HEALTHY)
                .exists()
            ),
            "the old instances were not drained",
        )
        time.sleep(0.5)
    assert not traffic.failures(), traffic.failures()[:3]
    tags = [text.split(":")[0] for _, text in traffic.results]
    assert tags[0] == "v1"
    assert tags[-1] == "v2"
    assert "v1" not in tags[tags.index("v2") :][-20:]  # once switched, it stays switched

    # An update to a model that cannot load rolls back; v2 keeps serving.
    approved_package(team, scientist, approver, group="broken", code=CRASHING_MODEL)
    with Traffic(url, token) as traffic:
        response = api.patch("/api/v1/endpoints/echo", json={"model": "broken/1"})
        assert response.status_code == 200, response.text
        endpoint = wait_for_endpoint(endpoint_id, lambda e: e.status != EndpointStatus.UPDATING)
    assert not traffic.failures(), traffic.failures()[:3]
    assert endpoint.status == EndpointStatus.IN_SERVICE
    assert "rolled back" in endpoint.failure_reason
    assert "missing weights.bin" in endpoint.failure_reason
    assert endpoint.config.variants.get().model.package.group.name == "echo"

    # A new endpoint of that model fails, with the container's last log lines as the reason.
    response = api.post("/api/v1/endpoints", json={"name": "broken", "model": "broken/1"})
    assert response.status_code == 201, response.text
    broken = wait_for_endpoint(
        Endpoint.objects.get(name="broken").pk, lambda e: e.status != EndpointStatus.CREATING
    )
    assert broken.status == EndpointStatus.FAILED
    assert "loading the crashing model" in broken.failure_reason
    assert "missing weights.bin" in broken.failure_reason
    assert not EndpointInstance.objects.filter(endpoint=broken).exists()

    for name in ("echo", "broken"):
        assert api.delete(f"/api/v1/endpoints/{name}").status_code == 202
    _wait(lambda: not Endpoint.objects.exists(), "the endpoints were not deleted")


def _wait(condition: Any, message: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message)
        time.sleep(0.1)
