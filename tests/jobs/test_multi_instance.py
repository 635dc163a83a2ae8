"""Jobs of several instances on the real engine: N containers `algo-1` ... `algo-N` on the
job's own network, each with its configuration, its share of a sharded channel and its
labelled log; the first instance that fails fails the job and stops the others; a stop
stops them all; the model is algo-1's. A real worker runs the jobs."""

from __future__ import annotations

import io
import json
import socket
import tarfile
import textwrap
import threading
import time

import docker
import pytest
from django.test import Client

from compute.labels import LABEL_HOST, LABEL_INSTANCE, LABEL_JOB_ID, instance_label
from compute.networks import job_network_name
from compute.runtime import get_runtime
from jobs.models import Job, JobLogLine, JobStatus
from studio.artifacts import get_store
from tests.factories import make_team, make_token, make_user
from tests.jobs.conftest import Worker, wait_for_job
from tests.jobs.test_job_networks import network_exists, wait_until
from tests.jobs.test_running import Api, archive, log_text

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CLUSTER = textwrap.dedent(
    """
    import json, os, socket, time
    config = json.load(open("/opt/ml/input/config/resourceconfig.json"))
    host, hosts = os.environ["SM_CURRENT_HOST"], json.loads(os.environ["SM_HOSTS"])
    print("config", host, json.dumps(hosts), config["current_host"], json.dumps(config["hosts"]),
          config["network_interface_name"], flush=True)
    print("shard", host, ",".join(sorted(os.listdir(os.environ["SM_CHANNEL_SHARDS"]))), flush=True)
    print("full", host, len(os.listdir(os.environ["SM_CHANNEL_FULL"])), flush=True)
    # The host's side of the network, if it had one: where a default route would lead.
    gateways = [line.split()[2] for line in open("/proc/net/route").read().splitlines()[1:]
                if line.split()[1] == "00000000"]
    for gateway in gateways:
        address = socket.inet_ntoa(bytes.fromhex(gateway)[::-1])
        try:
            socket.create_connection((address, int(os.environ["SM_HP_PROBE_PORT"])), timeout=3).close()
            print("host-reached", host, address, flush=True)
        except OSError as exc:
            print("host-blocked", host, address, type(exc).__name__, flush=True)
    if host == "algo-1":
        server = socket.create_server(("0.0.0.0", 7000))
        server.settimeout(120)
        for _ in hosts[1:]:
            conn, _ = server.accept()
            print("algo-1 heard:", conn.recv(64).decode(), flush=True)
            conn.close()
    else:
        deadline = time.time() + 120
        while True:
            try:
                peer = socket.create_connection(("algo-1", 7000), timeout=5)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        peer.sendall(("hello from " + host).encode())
        peer.close()
    open(os.path.join(os.environ["SM_MODEL_DIR"], "host.txt"), "w").write(host)
    """
)

ONE_FAILS = textwrap.dedent(
    """
    import os, sys, time
    if os.environ["SM_CURRENT_HOST"] == "algo-2":
        time.sleep(1)
        raise SystemExit("boom: algo-2 cannot go on")
    print("algo-1 waits for ever", flush=True)
    time.sleep(3600)
    """
)

SLEEPS = textwrap.dedent(
    """
    import os, time
    print("sleeping on", os.environ["SM_CURRENT_HOST"], flush=True)
    time.sleep(3600)
    """
)


@pytest.fixture
def cluster_api(client: Client, worker: Worker, use_runtime: str) -> Api:
    team = make_team("cluster")
    return Api(client, team.slug, make_token(make_user(team, role="scientist")))


def containers_of(job_id: int) -> list[str]:
    return [
        state.labels.get(LABEL_HOST, "")
        for state in get_runtime().find(
            {LABEL_JOB_ID: str(job_id), LABEL_INSTANCE: instance_label()}
        )
    ]


def model_host(job: Job) -> str:
    store = get_store()
    with store.open(store.key_from_uri(job.model_artifact_uri)) as stream:
        data = stream.read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.extractfile("host.txt")
        assert member is not None
        return member.read().decode()


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_three_instances_talk_by_host_name_shard_their_channel_and_keep_algo_1s_model(
    cluster_api: Api,
) -> None:
    store = get_store()
    shards = [f"part-{number:02d}.csv" for number in range(7)]
    for name in shards:
        store.put(f"teams/{cluster_api.slug}/data/shards/{name}", b"1,2\n")
    store.put(f"teams/{cluster_api.slug}/data/full/a.csv", b"1,2\n")
    store.put(f"teams/{cluster_api.slug}/data/full/b.csv", b"1,2\n")
    listener = socket.create_server(("0.0.0.0", 0))  # noqa: S104 - the probe's target
    listener.settimeout(0.2)
    reached: list[object] = []

    def listen() -> None:
        while not stop.is_set():
            try:
                reached.append(listener.accept()[1])
            except OSError:
                continue

    stop = threading.Event()
    threading.Thread(target=listen, daemon=True).start()
    job_id = cluster_api.submit(
        "cluster-3",
        CLUSTER,
        instance_count=3,
        hyperparameters={"probe_port": str(listener.getsockname()[1])},
        input_channels=[
            {
                "name": "shards",
                "uri": store.uri(f"teams/{cluster_api.slug}/data/shards"),
                "distribution": "ShardedByS3Key",
            },
            {"name": "full", "uri": store.uri(f"teams/{cluster_api.slug}/data/full")},
        ],
    )
    try:
        job = wait_for_job(job_id, timeout=240)
    finally:
        stop.set()
        listener.close()
    assert job.status == JobStatus.COMPLETED, job.failure_reason
    assert not reached
    text = log_text(job)
    hosts = ["algo-1", "algo-2", "algo-3"]
    for host in hosts:
        assert f"config {host} {json.dumps(hosts)} {host} {json.dumps(hosts)} eth0" in text
        assert f"full {host} 2" in text  # FullyReplicated: every instance has every object
        # No job network access asked for: the host, listening on every address, is out of
        # reach too (an internal bridge alone would still lead to it).
        assert f"host-reached {host}" not in text
        assert f"host-blocked {host}" in text  # the probe ran
    assert "algo-1 heard: hello from algo-2" in text
    assert "algo-1 heard: hello from algo-3" in text
    # ShardedByS3Key: disjoint shares that cover every object.
    shares = {
        line.split()[1]: [name for name in line.split()[2].split(",") if name]
        for line in text.splitlines()
        if line.startswith("shard ") and len(line.split()) == 3
    } | {
        line.split()[1]: []
        for line in text.splitlines()
        if line.startswith("shard ") and len(line.split()) == 2
    }
    assert sorted(shares) == hosts
    everything = [name for share in shares.values() for name in share]
    assert sorted(everything) == shards  # no object twice, none missing
    assert all(shares[host] for host in hosts)
    # Each instance's lines carry its host name.
    for host in hosts:
        assert JobLogLine.objects.filter(
            job=job, host=host, line__startswith=f"config {host}"
        ).exists()
    assert model_host(job) == "algo-1"
    # Containers and network go with the job.
    wait_until(lambda: not containers_of(job_id), "the containers to go")
    wait_until(lambda: not network_exists(job_network_name(job_id)), "the network to go")


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_the_first_instance_that_fails_fails_the_job_and_stops_the_others(
    cluster_api: Api,
) -> None:
    started = time.monotonic()
    job_id = cluster_api.submit("one-fails", ONE_FAILS, instance_count=2)
    job = wait_for_job(job_id, timeout=240)
    assert job.status == JobStatus.FAILED
    assert job.failure_reason.startswith("algo-2: "), job.failure_reason
    assert "boom: algo-2 cannot go on" in job.failure_reason
    # algo-1 would sleep for an hour: it was stopped, not waited for.
    assert time.monotonic() - started < 600
    text = log_text(job)
    assert "algo-2 failed (exit code" in text
    assert "algo-1: container exited with code" in text
    wait_until(lambda: not containers_of(job_id), "the containers to go")


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_a_stop_stops_every_instance(cluster_api: Api) -> None:
    job_id = cluster_api.submit("stop-all", SLEEPS, instance_count=2)
    job = Job.objects.get(pk=job_id)
    wait_until(
        lambda: "sleeping on algo-1" in log_text(job) and "sleeping on algo-2" in log_text(job),
        "both instances to run",
    )
    assert sorted(containers_of(job_id)) == ["algo-1", "algo-2"]
    engine = docker.from_env()
    try:
        for state in get_runtime().find({LABEL_JOB_ID: str(job_id)}):
            attrs = engine.api.inspect_container(state.id)
            assert attrs["Config"]["Hostname"] == state.labels[LABEL_HOST]
            assert list(attrs["NetworkSettings"]["Networks"]) == [job_network_name(job_id)]
    finally:
        engine.close()
    assert cluster_api.stop(job_id).status_code == 200
    stopped = wait_for_job(job_id, timeout=240)
    assert stopped.status == JobStatus.STOPPED
    wait_until(lambda: not containers_of(job_id), "the containers to go")


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_max_runtime_stops_every_instance(cluster_api: Api) -> None:
    job_id = cluster_api.submit("too-long", SLEEPS, instance_count=2, max_runtime_seconds=5)
    job = wait_for_job(job_id, timeout=240)
    assert job.status == JobStatus.STOPPED
    assert job.secondary_status == "MaxRuntimeExceeded"
    text = log_text(job)
    assert "algo-1: container exited with code" in text
    assert "algo-2: container exited with code" in text
    wait_until(lambda: not containers_of(job_id), "the containers to go")


def refusal(client: Client, slug: str, instance_count: int) -> dict[str, str]:
    """The API's 400 for a job of `instance_count` instances."""
    team = make_team(slug)
    api = Api(client, team.slug, make_token(make_user(team, role="scientist")))
    store = get_store()
    key = f"teams/{team.slug}/code/x/sourcedir.tar.gz"
    store.put(key, archive({"train.py": "print(1)"}))
    response = client.post(
        "/api/v1/jobs",
        {
            "name": "refused",
            "framework": "sklearn",
            "entry_point": "train.py",
            "source_uri": store.uri(key),
            "instance_type": "ml.local.small",
            "instance_count": instance_count,
        },
        content_type="application/json",
        **api.auth,
    )
    assert response.status_code == 400, response.content
    return dict(response.json()["error"])


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_instance_count_beyond_the_instance_types_limit_is_refused(
    client: Client, use_runtime: str
) -> None:
    error = refusal(client, "cluster-limit", 5)
    assert error["field"] == "instance_count"
    assert "between 1 and 4" in error["message"]


@pytest.mark.parametrize("runtime_name", ["process"], indirect=True)
def test_the_process_runtime_refuses_several_instances(client: Client, use_runtime: str) -> None:
    error = refusal(client, "cluster-process", 2)
    assert error["field"] == "instance_count"
    assert "process runtime runs one instance" in error["message"]
