"""Facts about the instance and its peers that launchers of multi-host jobs need.

* ``wait_for_hosts``: a peer's name (``algo-2``) resolves only once its container is up, so a
  launcher retries with exponential backoff, as SageMaker's toolkits do (up to 15 minutes);
* ``usable_cpus`` and ``memory_limit_bytes``: what the container may use, from its cgroup (the
  platform's instance-type limits), not the host's totals.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterable

from studiolo_toolkit.errors import ToolkitError

logger = logging.getLogger("studiolo_toolkit")

DNS_DEADLINE_SECONDS = 15 * 60.0
_FIRST_DELAY = 0.1
_MAX_DELAY = 30.0

CGROUP_ROOT = "/sys/fs/cgroup"


def wait_for_hosts(
    hosts: Iterable[str],
    *,
    deadline_seconds: float = DNS_DEADLINE_SECONDS,
    resolve: Callable[[str], str] = socket.gethostbyname,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Block until every host's name resolves; ``ToolkitError`` naming it past the deadline."""
    give_up_at = clock() + deadline_seconds
    for host in hosts:
        delay = _FIRST_DELAY
        while True:
            try:
                resolve(host)
                break
            except OSError as error:
                if clock() + delay > give_up_at:
                    raise ToolkitError(
                        f"host {host!r} did not resolve within {deadline_seconds:.0f} s "
                        f"({error}): its container never joined the job's network"
                    ) from error
                logger.info("Waiting for host %s to resolve (%s)", host, error)
                sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def cgroup_cpu_quota(cgroup_root: str = CGROUP_ROOT) -> float | None:
    """The CPU limit in cores (``docker run --cpus``), or ``None`` when there is none."""
    v2 = _read(os.path.join(cgroup_root, "cpu.max"))  # "max 100000" or "150000 100000"
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    quota_v1 = _read(os.path.join(cgroup_root, "cpu", "cpu.cfs_quota_us"))
    period_v1 = _read(os.path.join(cgroup_root, "cpu", "cpu.cfs_period_us"))
    if quota_v1 and period_v1 and int(quota_v1) > 0:
        return int(quota_v1) / int(period_v1)
    return None


def usable_cpus(cgroup_root: str = CGROUP_ROOT) -> int:
    """CPUs this container may run on: its affinity, capped by its cgroup quota (at least 1)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(count, 1)


# cgroup v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages).
_NO_LIMIT_V1 = 1 << 60


def memory_limit_bytes(cgroup_root: str = CGROUP_ROOT, meminfo: str = "/proc/meminfo") -> int:
    """The container's memory limit, or the machine's memory when it has none."""
    v2 = _read(os.path.join(cgroup_root, "memory.max"))
    if v2 is not None and v2 != "max":
        return int(v2)
    v1 = _read(os.path.join(cgroup_root, "memory", "memory.limit_in_bytes"))
    if v1 is not None and int(v1) < _NO_LIMIT_V1:
        return int(v1)
    text = _read(meminfo) or ""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 2 * 1024**3  # cannot tell: assume a small instance
