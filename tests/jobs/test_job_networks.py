"""Jobs with network access on the real engine: each on a bridge of its own, made before its
container starts and removed with it, so one team's job cannot reach another's (they shared
the engine's default bridge before). A real worker runs the jobs."""

from __future__ import annotations

import socket
import textwrap
import time
from collections.abc import Callable
from typing import Any

import docker
import pytest
from django.test import Client

from compute.labels import (
    KIND_JOB_NETWORK,
    LABEL_INSTANCE,
    LABEL_JOB_ID,
    LABEL_KIND,
    instance_label,
)
from compute.networks import job_network_name
from compute.runtime import get_runtime
from jobs.models import Job, JobStatus
from jobs.reconcile import reconcile_jobs
from tests.factories import make_team, make_token, make_user
from tests.jobs.conftest import Worker, wait_for_job
from tests.jobs.test_running import Api, log_text

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Listens on 8080 until the host sends "done"; every other connection is logged and closed.
LISTENER = textwrap.dedent(
    """
    import socket
    server = socket.create_server(("0.0.0.0", 8080))
    server.settimeout(300)
    print("listening", flush=True)
    while True:
        conn, peer = server.accept()
        data = conn.recv(16)
        conn.close()
        print("connection from", peer[0], data, flush=True)
        if data == b"done":
            break
    """
)

# Tries a TCP connection to argv's --target within 3 s and prints what happened.
PROBE = textwrap.dedent(
    """
    import argparse, socket
    parser = argparse.ArgumentParser()
    parser.add_argument("--target")
    args = parser.parse_args()
    try:
        socket.create_connection((args.target, 8080), timeout=3).close()
        print("probe: connected", flush=True)
    except OSError as exc:
        print("probe: blocked", type(exc).__name__, flush=True)
    """
)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def network_exists(name: str) -> bool:
    client = docker.from_env()
    try:
        return any(n["Name"] == name for n in client.api.networks(names=[name]))
    finally:
        client.close()


def team_api(client: Client, slug: str) -> Api:
    team = make_team(slug)
    return Api(client, team.slug, make_token(make_user(team, role="scientist")))


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_a_networked_job_has_a_bridge_of_its_own_that_another_teams_job_cannot_reach(
    client: Client, worker: Worker, use_runtime: str
) -> None:
    first, second = team_api(client, "net-a"), team_api(client, "net-b")
    listener_id = first.submit("listener", LISTENER, enable_network=True)
    listener = Job.objects.get(pk=listener_id)
    wait_until(lambda: "listening" in log_text(listener), "the listener to listen")
    (container,) = get_runtime().find(
        {LABEL_JOB_ID: str(listener_id), LABEL_INSTANCE: instance_label()}
    )
    engine = docker.from_env()
    try:
        attrs = engine.api.inspect_container(container.id)
    finally:
        engine.close()
    network = job_network_name(listener_id)
    assert attrs["HostConfig"]["NetworkMode"] == network
    assert list(attrs["NetworkSettings"]["Networks"]) == [network]  # not the default bridge
    assert not attrs["HostConfig"]["PortBindings"]
    address = attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    (state,) = get_runtime().networks_find({LABEL_JOB_ID: str(listener_id)})
    assert state.labels[LABEL_KIND] == KIND_JOB_NETWORK
    assert state.labels[LABEL_INSTANCE] == instance_label()

    # Another team's networked job, on its own bridge, cannot reach the listener.
    probe_id = second.submit(
        "probe", PROBE, enable_network=True, hyperparameters={"target": address}
    )
    probe = wait_for_job(probe_id)
    assert probe.status == JobStatus.COMPLETED, probe.failure_reason
    assert "probe: blocked" in log_text(probe)
    assert "connection from" not in log_text(Job.objects.get(pk=listener_id))
    # Its network went with it.
    wait_until(lambda: not network_exists(job_network_name(probe_id)), "the probe's network to go")

    # The host (where the studio runs) reaches the listener on its bridge; it ends, and so
    # does its network.
    with socket.create_connection((address, 8080), timeout=10) as conn:
        conn.sendall(b"done")
    done = wait_for_job(listener_id)
    assert done.status == JobStatus.COMPLETED, done.failure_reason
    wait_until(lambda: not network_exists(network), "the listener's network to go")


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_reconciliation_removes_the_network_of_a_job_that_is_over(
    use_runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    import jobs.reconcile
    from compute.networks import job_network_ensure

    team = make_team("net-left")
    job = Job.objects.create(
        team=team, name="left", image="studiolo/sklearn:latest", status=JobStatus.FAILED
    )
    name = job_network_ensure(get_runtime(), job.pk, team.slug)
    assert name is not None
    assert network_exists(name)
    reconcile_jobs()
    assert network_exists(name)  # just made: its container may be about to start
    monkeypatch.setattr(jobs.reconcile, "ORPHAN_GRACE", timedelta(seconds=0))
    time.sleep(0.01)
    assert reconcile_jobs()["networks_removed"] >= 1  # earlier tests' too, if any were left
    assert not network_exists(name)
