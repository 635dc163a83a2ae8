"""A running job whose worker stalls, whose pool process is killed, then whose worker's main
process is killed: each time another worker takes it over (after the lease, 4 s here) and
re-attaches to its container; the job completes once with every line of its log kept once,
and the worker that stalled past its lease writes nothing once awake.

And a preparation longer than the lease: the lease is renewed all along, nobody takes the
job over, it runs once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import psutil
import pytest

from jobs.lease import lease_seconds
from jobs.models import TERMINAL_STATUSES, JobLogLine, JobStatus, JobTransition, SecondaryStatus
from jobs.runner import work_dir
from studio.artifacts import get_store
from tests.faults.support import (
    TICKER,
    Api,
    assert_ran_once_with_its_whole_log,
    finish,
    job,
    log_lines,
    owner_pid,
    ticks_logged,
    wait_until,
)
from tests.workers import Worker

pytestmark = [
    pytest.mark.fault,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.parametrize("runtime_name", ["docker"], indirect=True),
]


def taken_over_from(job_id: int, pid: int) -> int | None:
    """The new owner's pid once someone else than `pid` holds the job."""
    owner = owner_pid(job_id)
    return owner if owner not in (None, pid) else None


def more_ticks(job_id: int, than: int, what: str) -> int:
    return wait_until(lambda: (n := ticks_logged(job_id)) >= than + 5 and n, what, timeout=60)


def test_a_job_outlives_a_stalled_worker_a_killed_pool_process_and_a_killed_worker(
    api: Api, worker: Worker
) -> None:
    job_id = api.submit("survivor", TICKER)
    seen = more_ticks(job_id, 0, "the job did not start printing")
    pool = {child.pid for child in psutil.Process(worker.jobs.pid).children()}
    first = owner_pid(job_id)
    assert first in pool, (first, pool)

    # 1. The pool process driving the job stalls (SIGSTOP) past its lease: another takes the
    # job over. Woken up, the stalled one must not write a line or a status. (Stopped inside
    # a transaction, it holds a lock the take-over waits for: it is woken after a while
    # either way, as a stalled process eventually is.)
    os.kill(first, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 15
        while taken_over_from(job_id, first) is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.kill(first, signal.SIGCONT)
    second = wait_until(
        lambda: taken_over_from(job_id, first), "nobody took over from a stalled worker"
    )
    seen = more_ticks(job_id, seen, "no lines after the first take-over")

    # 2. The new owner's pool process is killed (SIGKILL): its worker starts another, the
    # job is taken over again.
    os.kill(second, signal.SIGKILL)
    third = wait_until(
        lambda: taken_over_from(job_id, second), "nobody took over from a killed pool process"
    )
    seen = more_ticks(job_id, seen, "no lines after the second take-over")

    # 3. The job worker's main process is killed (its pool processes die with it), and the
    # worker started again, as `studiolo up` or a container's restart policy does.
    worker.jobs.kill_main()
    worker.jobs.start()
    wait_until(lambda: taken_over_from(job_id, third), "nobody took over from a killed worker")
    more_ticks(job_id, seen, "no lines after the third take-over")

    finish(job_id)
    final = wait_until(lambda: job(job_id).status in TERMINAL_STATUSES and job(job_id), "no end")
    assert final.status == JobStatus.COMPLETED, (final.failure_reason, log_lines(job_id)[-5:])
    # Three take-overs at least (a renewal late past the lease on a loaded machine makes one
    # more, harmless: the log shows every one).
    assert_ran_once_with_its_whole_log(job_id, takeovers=max(3, final.lease_generation - 1))
    assert final.lease_generation >= 4
    wait_until(lambda: job(job_id).lease_owner == "", "the last owner did not let go")


def test_a_preparation_longer_than_the_lease_keeps_the_job_on_one_worker(
    api: Api, worker: Worker
) -> None:
    """The worker's pool process is starved of CPU while it prepares the job (stopped 95 %
    of the time, as a cgroup's CPU quota does), so that downloading the job's 2500 input
    files takes twice the lease or more. The lease is renewed all along: nobody takes
    the job over, it is prepared and run once."""
    store = get_store()
    for index in range(2500):
        store.put(f"teams/{api.slug}/data/many/part-{index:05d}.csv", b"1,2,3\n")
    job_id = api.submit(
        "slow-start",
        TICKER,
        input_channels=[{"name": "train", "uri": store.uri(f"teams/{api.slug}/data/many")}],
    )
    pid = wait_until(lambda: owner_pid(job_id), "no worker took the job")
    preparing = threading.Event()
    preparing.set()

    def starve() -> None:
        # Stopped 19 times as long as it ran: a run slice overslept on a busy machine is
        # paid back by a longer stop (at most 1 s: the lease, 4 s, is renewed every 1.3 s).
        ran = 0.05
        with contextlib.suppress(ProcessLookupError):  # it died: the assertions say so
            try:
                while preparing.is_set():
                    os.kill(pid, signal.SIGSTOP)
                    time.sleep(min(1.0, 19 * ran))
                    os.kill(pid, signal.SIGCONT)
                    began = time.monotonic()
                    time.sleep(0.05)
                    ran = time.monotonic() - began
            finally:
                os.kill(pid, signal.SIGCONT)

    starver = threading.Thread(target=starve, daemon=True)
    starver.start()
    try:
        running = wait_until(
            lambda: (
                job(job_id).secondary_status in (SecondaryStatus.TRAINING, SecondaryStatus.FAILED)
                and job(job_id)
            ),
            "the job was not prepared",
            timeout=180,
        )
    finally:
        preparing.clear()
        starver.join()
    assert running.training_started_at is not None, running.failure_reason
    assert owner_pid(job_id) == pid, "the job was taken over while it was prepared"
    began = JobTransition.objects.filter(
        job_id=job_id, to_status=JobStatus.IN_PROGRESS, secondary_status=SecondaryStatus.STARTING
    )
    assert began.count() == 1, "prepared twice"
    preparation = (running.training_started_at - began.get().created_at).total_seconds()
    print(f"preparation: {preparation:.1f} s")  # noqa: T201 - reported by -s
    # What makes the test worth its name: the preparation outlasted the lease twice over.
    assert preparation > 2 * lease_seconds(), f"the preparation took {preparation:.1f} s only"

    more_ticks(job_id, 0, "the job did not print")
    finish(job_id)
    final = wait_until(lambda: job(job_id).status in TERMINAL_STATUSES and job(job_id), "no end")
    assert final.status == JobStatus.COMPLETED, (final.failure_reason, log_lines(job_id)[-5:])
    assert_ran_once_with_its_whole_log(job_id, takeovers=0)
    assert final.lease_generation == 1


def test_a_job_of_two_instances_is_re_attached_whole_after_its_worker_dies(
    api: Api, worker: Worker
) -> None:
    """The pool process driving a 2-instance job is killed: the next owner re-attaches to
    both containers, and each instance's log goes on where it was, every line once."""
    job_id = api.submit("pair", TICKER, instance_count=2)

    def ticks(host: str) -> int:
        return JobLogLine.objects.filter(job_id=job_id, host=host, line__startswith="tick ").count()

    wait_until(lambda: ticks("algo-1") >= 5 and ticks("algo-2") >= 5, "both did not print")
    first = owner_pid(job_id)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: taken_over_from(job_id, first), "nobody took over from a killed process")
    before = {host: ticks(host) for host in ("algo-1", "algo-2")}
    wait_until(
        lambda: all(ticks(host) >= before[host] + 5 for host in before),
        "no lines from both after the take-over",
    )
    folder = work_dir(job(job_id))
    for host in ("algo-1", "algo-2"):
        (folder / host / "opt_ml" / "input" / "config" / "finish").write_text("")
    final = wait_until(lambda: job(job_id).status in TERMINAL_STATUSES and job(job_id), "no end")
    assert final.status == JobStatus.COMPLETED, final.failure_reason
    rows = log_lines(job_id)
    assert [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1)), "gaps in the numbering"
    for host in ("algo-1", "algo-2"):
        text = list(
            JobLogLine.objects.filter(job_id=job_id, host=host)
            .order_by("seq")
            .values_list("line", flat=True)
        )
        (done,) = [line for line in text if line.startswith("done after ")]
        printed = int(done.split()[2])
        assert [line for line in text if line.startswith("tick ")] == [
            f"tick {i}" for i in range(1, printed + 1)
        ], f"{host}: ticks lost, repeated or out of order"
    every = [line for _, _, line in rows]
    assert sum(line.startswith("Starting the training containers") for line in every) == 1
    assert sum(line.startswith("Re-attached to the running containers") for line in every) >= 1
