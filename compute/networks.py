"""Job networks: a bridge of its own for a job's instances.

A job of several instances, or one that asks for network access, gets a bridge network made
for it alone, `studiolo-<installation tag>-job-<pk>-net`, before its containers start, and
removed with them. Its instances reach each other there by their host names (`algo-1` ...
`algo-N`, as on SageMaker). A single instance without network access gets none at all: it
reaches nothing, and its host name resolves to its own loopback (`jobs.cluster`).

A job that does not ask for network access (`EnableNetworkIsolation`, the training default;
`enable_network` off here) gets an *internal* bridge without an address of the host on it:
its containers reach each other and nothing else, not the host, not the outside. A job that
asks gets an ordinary bridge: it reaches the outside through the host. Either way the engine
drops traffic between bridges, so no job reaches another job's containers, another team's, or
a serving container (those are on their teams' serving networks, `compute.serving`). The
engine's default bridge, which every networked container shared, is used by nothing the studio starts.

A job's runner makes its network (`job_network_ensure`) and removes it when the job's
container is gone (`job_network_release`); the periodic reconciliation removes any a dead
worker left behind (`job_networks_reconcile`), asking the jobs app which jobs still run.
The process runtime has no networks: its jobs share the host's, as they always did.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from compute.labels import (
    KIND_JOB_NETWORK,
    LABEL_INSTANCE,
    LABEL_JOB_ID,
    LABEL_KIND,
    LABEL_TEAM,
    ROLE_JOB,
    engine_name,
    instance_label,
)
from compute.runtime.base import Runtime


def job_network_name(job_id: int) -> str:
    return engine_name(ROLE_JOB, job_id, "net")


def job_network_ensure(
    runtime: Runtime, job_id: int, team_slug: str, *, internal: bool = False
) -> str | None:
    """Make (unless it exists: a retried start) the job's own network, internal (no route
    out) when the job has no network access; its name, or None for a runtime without
    networks."""
    if not runtime.isolated:
        return None
    name = job_network_name(job_id)
    labels = {
        LABEL_KIND: KIND_JOB_NETWORK,
        LABEL_JOB_ID: str(job_id),
        LABEL_TEAM: team_slug,
        LABEL_INSTANCE: instance_label(),
    }
    runtime.network_ensure(name, labels, internal=internal)
    return name


def job_network_release(runtime: Runtime, job_id: int) -> bool:
    """Remove the job's network once its container is gone; True when there is none left."""
    if not runtime.isolated:
        return True
    return runtime.network_remove(job_network_name(job_id))


def job_networks_reconcile(
    runtime: Runtime, *, running: Callable[[int], bool], older_than: timedelta
) -> int:
    """The periodic pass over this installation's job networks: one whose job no longer runs
    (`running(job_id)` says False) and that was made more than `older_than` ago (not one
    being made for a start right now) is removed, unless a container is still on it.
    Returns how many were removed."""
    if not runtime.isolated:
        return 0
    horizon = datetime.now(UTC) - older_than
    removed = 0
    for network in runtime.networks_find(
        {LABEL_KIND: KIND_JOB_NETWORK, LABEL_INSTANCE: instance_label()}
    ):
        raw_id = network.labels.get(LABEL_JOB_ID, "")
        if not raw_id.isdigit() or network.name != job_network_name(int(raw_id)):
            continue  # not one of ours after all (a label copied by hand)
        young = network.created_at is not None and network.created_at > horizon
        if young or running(int(raw_id)):
            continue
        if runtime.network_remove(network.name):  # False while a container is on it
            removed += 1
    return removed
