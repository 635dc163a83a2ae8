"""The multi-host launchers' decisions: torchrun's command line, Spark's commands and memory,
the peers' DNS wait and the cgroup limits. The real runs are in tests/containers."""

from __future__ import annotations

from pathlib import Path

import pytest

from studiolo_toolkit.cluster import (
    cgroup_cpu_quota,
    memory_limit_bytes,
    usable_cpus,
    wait_for_hosts,
)
from studiolo_toolkit.distributed import apply_distribution, distributed_env
from studiolo_toolkit.entry_point import plan_entry_point
from studiolo_toolkit.environment import build_environment
from studiolo_toolkit.errors import ToolkitError
from studiolo_toolkit.spark import (
    SPARK_ROOT,
    Cluster,
    plan_memory,
    read_cluster,
    spark_environment,
    submit_command,
    worker_command,
)

TWO_HOSTS = {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}
GiB = 1024**3


def _env(hps: dict[str, object], resources: dict[str, object] | None = TWO_HOSTS):  # type: ignore[no-untyped-def]
    return build_environment(
        hyperparameters={"sagemaker_program": "train.py", "lr": 0.1, **hps},
        input_data_config={},
        resource_config=resources,
    )


def _plan(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "train.py").write_text("print(1)\n")
    return plan_entry_point(str(tmp_path), "train.py", ["--lr", "0.1"], python="python3")


def test_torch_distributed_runs_torchrun_with_this_hosts_rank(tmp_path: Path) -> None:
    env = _env({"sagemaker_torch_distributed_enabled": True})
    plan = apply_distribution(_plan(tmp_path), env, cpus=3)

    assert plan.run.command[1:] == [
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "2",
        "--nproc_per_node",
        "3",
        "--redirects",
        "2",
        "--tee",
        "2",
        "--master_addr",
        "algo-1",
        "--master_port",
        "7777",
        "--node_rank",
        "1",
        "train.py",
        "--lr",
        "0.1",
    ]


def test_torch_distributed_on_one_host_has_no_rendezvous_options(tmp_path: Path) -> None:
    env = _env({"sagemaker_torch_distributed_enabled": "true"}, resources=None)
    command = apply_distribution(_plan(tmp_path), env, cpus=2).run.command

    assert command[3:7] == ["--nnodes", "1", "--nproc_per_node", "2"]
    assert "--master_addr" not in command


def test_without_a_distribution_the_plan_is_unchanged_and_peers_get_master_addr(
    tmp_path: Path,
) -> None:
    env = _env({})
    plan = _plan(tmp_path)

    assert apply_distribution(plan, env, cpus=4) is plan
    assert distributed_env(env)["MASTER_ADDR"] == "algo-1"
    assert distributed_env(env)["MASTER_PORT"] == "7777"


def test_torch_distributed_refuses_a_shell_entry_point(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("echo\n")
    env = _env({"sagemaker_torch_distributed_enabled": True, "sagemaker_program": "run.sh"})
    plan = plan_entry_point(str(tmp_path), "run.sh", [])

    with pytest.raises(ToolkitError, match="torch_distributed runs a Python script"):
        apply_distribution(plan, env, cpus=1)


def test_wait_for_hosts_retries_until_the_name_resolves_then_gives_up_naming_it() -> None:
    answers = iter([OSError("no such host"), OSError("no such host"), "10.0.0.2"])
    slept: list[float] = []

    def resolve(host: str) -> str:
        answer = next(answers)
        if isinstance(answer, OSError):
            raise answer
        return answer

    wait_for_hosts(["algo-2"], resolve=resolve, sleep=slept.append)
    assert slept == [0.1, 0.2]

    now = [0.0]

    def never(host: str) -> str:
        raise OSError("no such host")

    def advance(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(ToolkitError, match="'algo-3' did not resolve within 5 s"):
        wait_for_hosts(
            ["algo-3"], deadline_seconds=5, resolve=never, sleep=advance, clock=lambda: now[0]
        )


def test_cgroup_limits_are_read_from_v2_and_v1_files(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    (tmp_path / "memory.max").write_text(f"{3 * GiB}\n")
    assert cgroup_cpu_quota(str(tmp_path)) == 1.5
    assert usable_cpus(str(tmp_path)) <= 2
    assert memory_limit_bytes(str(tmp_path)) == 3 * GiB

    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text(str(1 << 62))
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       2048 kB\n")
    assert cgroup_cpu_quota(str(v1)) is None
    assert memory_limit_bytes(str(v1), str(meminfo)) == 2048 * 1024


def test_spark_on_one_host_is_local_and_on_many_a_standalone_cluster() -> None:
    one = Cluster("algo-1", ["algo-1"])
    local = submit_command(one, plan_memory(2 * GiB, 1), 2, ["job.py", "--x", "1"])
    assert local[local.index("--master") + 1] == "local[*]"
    assert local[-3:] == ["job.py", "--x", "1"]

    two = Cluster("algo-1", ["algo-1", "algo-2"])
    plan = plan_memory(4 * GiB, 2)
    remote = submit_command(two, plan, 2, ["job.py"])
    assert remote[remote.index("--master") + 1] == "spark://algo-1:7077"
    assert "spark.cores.max=4" in remote
    assert "spark.scheduler.minRegisteredResourcesRatio=1.0" in remote
    worker = worker_command(Cluster("algo-2", two.hosts), plan, 2)
    assert worker[1:4] == ["org.apache.spark.deploy.worker.Worker", "spark://algo-1:7077", "--host"]
    assert f"{plan.executor}m" in worker


def test_spark_memory_fits_the_container_limit_with_room_for_python() -> None:
    for limit in (2 * GiB, 4 * GiB, 16 * GiB):
        plan = plan_memory(limit, 3)
        heaps = 2 * plan.daemon + plan.driver + plan.executor  # everything algo-1 runs
        assert heaps * 1024 * 1024 <= limit * 0.8
        assert plan.worker == plan.executor
    assert plan_memory(2 * GiB, 1).driver * 1024 * 1024 <= 2 * GiB * 0.6


def test_spark_writes_only_under_tmp_and_advertises_the_host_name(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "resourceconfig.json").write_text(
        '{"current_host": "algo-2", "hosts": ["algo-2", "algo-1"]}'
    )
    cluster = read_cluster({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert cluster == Cluster("algo-2", ["algo-1", "algo-2"])
    assert not cluster.is_master

    env = spark_environment({"HOME": "/nonexistent"}, cluster, plan_memory(4 * GiB, 2))
    for variable in ("SPARK_LOCAL_DIRS", "SPARK_WORKER_DIR", "SPARK_LOG_DIR", "HOME"):
        assert env[variable].startswith(SPARK_ROOT + "/"), variable
    assert env["SPARK_LOCAL_HOSTNAME"] == "algo-2"
    assert read_cluster({"SAGEMAKER_BASE_DIR": str(tmp_path / "none")}).hosts == ["algo-1"]
