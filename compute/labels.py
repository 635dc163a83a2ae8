"""What marks a container or network as this studio's: its labels and its name.

Two studios with different data folders may share one container engine. Each finds its own
containers and networks by `LABEL_INSTANCE` (its data folder, `instance_label`) and never
acts on one without it, and each names them with its own `installation_tag`, so neither ever
reaches for a name the other holds. Every name the studio gives the engine comes from
`engine_name`: `studiolo-<installation tag>-<role>-<ids>`, so all of one studio's containers
and networks share the prefix `studiolo-<installation tag>-`.
"""

from __future__ import annotations

import hashlib

from django.conf import settings

LABEL_PREFIX = "io.studiolo."
LABEL_MANAGED = LABEL_PREFIX + "managed"  # "true" on every container Studiolo starts
LABEL_KIND = LABEL_PREFIX + "kind"  # one of the KIND_* values
LABEL_JOB_ID = LABEL_PREFIX + "job-id"
LABEL_ENDPOINT_ID = LABEL_PREFIX + "endpoint-id"
LABEL_ENDPOINT_INSTANCE_ID = LABEL_PREFIX + "endpoint-instance-id"
LABEL_TEAM = LABEL_PREFIX + "team"
LABEL_HOST = LABEL_PREFIX + "host"  # which of a job's instances: "algo-1" ... "algo-N"
LABEL_INSTANCE = LABEL_PREFIX + "instance"  # home of the studio that started it (two side by side)

KIND_JOB = "job"  # a job's container (a training job's, a batch transform's serving one)
KIND_ENDPOINT = "endpoint"  # an endpoint instance's serving container
KIND_SERVING_NETWORK = "serving-network"  # a team's bridge network for serving containers
KIND_JOB_NETWORK = "job-network"  # the bridge of a job with network access (compute.networks)

# The <role> part of engine_name: what the name is of.
ROLE_JOB = "job"
ROLE_ENDPOINT = "ep"
ROLE_SERVING_NETWORK = "serve"


def instance_label() -> str:
    """Identifies this studio installation, so two side by side never touch each other's
    containers."""
    return str(settings.STUDIOLO_HOME)


def installation_tag() -> str:
    """Short and stable per studio installation, so two studios on one engine never pick the
    same container name."""
    return hashlib.sha256(instance_label().encode()).hexdigest()[:6]


def engine_name(role: str, *ids: object) -> str:
    """The one name rule for every container and network the studio makes:
    `studiolo-<installation tag>-<role>-<id>-...` (deterministic: starting a second container
    with a name fails, which is how a retried start finds the first)."""
    return "-".join(["studiolo", installation_tag(), role, *(str(part) for part in ids)])
