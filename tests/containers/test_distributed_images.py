"""studiolo/pytorch and studiolo/spark across several containers, started as the studio starts
job containers (compute.runtime.docker.DockerRuntime: read-only root, no capabilities, a tmpfs
/tmp, a pids limit), on a private network of their own with hostnames algo-1, algo-2.

Needs a live Docker engine (fails under CI=true without one, skips elsewhere).
``scripts/build-images`` rebuilds the images when their inputs changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from compute.runtime.base import ContainerSpec, ContainerState, Mount
from compute.runtime.docker import DockerRuntime

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
PYTORCH_IMAGE = "studiolo/pytorch:latest"
SPARK_IMAGE = "studiolo/spark:latest"
GiB = 1024**3
DEADLINE_SECONDS = 600

DDP_SCRIPT = """
import socket
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
total = torch.tensor([float(rank + 1)])
dist.all_reduce(total)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
torch.manual_seed(rank)
loss = model(torch.randn(8, 4)).pow(2).mean()
loss.backward()
optimizer.step()
weight = model.module.weight.detach().clone()
gathered = [torch.zeros_like(weight) for _ in range(world)]
dist.all_gather(gathered, weight)
same = all(torch.equal(g, weight) for g in gathered)
print(f"rank {rank}/{world} on {socket.gethostname()}: all-reduce {total.item():.0f}, "
      f"replicas equal after a DDP step: {same}", flush=True)
dist.destroy_process_group()
"""

SPARK_SCRIPT = """
import socket, sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("hosts").getOrCreate()
sc = spark.sparkContext
hosts = sorted(sc.parallelize(range(100), 8).map(lambda _: socket.gethostname()).distinct().collect())
total = sc.parallelize(range(1, 1001), 8).sum()
print(f"executor hosts: {','.join(hosts)}; sum {total}; args {sys.argv[1:]}", flush=True)
with open("/opt/ml/processing/output/result.txt", "w") as f:
    f.write(f"{total}\\n")
spark.stop()
"""


@pytest.fixture(scope="module")
def images(docker_engine: None) -> None:
    result = subprocess.run(  # noqa: S603 - the repository's own script
        [str(ROOT / "scripts" / "build-images"), "--images", "pytorch,spark"],
        check=False,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, f"build-images failed:\n{result.stderr}\n{result.stdout}"


class Cluster:
    """N containers of one image on a network of their own; everything removed at the end."""

    def __init__(self, runtime: DockerRuntime, name: str) -> None:
        self.runtime = runtime
        self.prefix = f"studiolo-test{os.getpid()}-{name}"
        self.network = f"{self.prefix}-net"
        self.containers: list[str] = []

    def start(
        self,
        image: str,
        hosts: list[str],
        tree: dict[str, Path],
        *,
        command: list[str] | None = None,
        entrypoint: list[str] | None = None,
        network: bool = True,
        memory_bytes: int = 2 * GiB,
    ) -> list[ContainerState]:
        if network:
            self.runtime.network_ensure(self.network, {"io.studiolo.test": self.prefix})
        started = []
        for host in hosts:
            state = self.runtime.start(
                ContainerSpec(
                    name=f"{self.prefix}-{host}",
                    image=image,
                    command=command,
                    entrypoint=entrypoint,
                    mounts=(Mount(tree[host], "/opt/ml"),),
                    cpus=1.0,
                    memory_bytes=memory_bytes,
                    network=network,
                    network_name=self.network if network else None,
                    hostname=host,
                    labels={"io.studiolo.test": self.prefix},
                )
            )
            self.containers.append(state.id)
            assert state.running or state.exit_code is not None, state.error
            started.append(state)
        return started

    def wait_all(self) -> list[tuple[int | None, str]]:
        """Each container's exit code and output, in start order."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        results = []
        for container_id in self.containers:
            state = self.runtime.wait(container_id, timeout=max(deadline - time.monotonic(), 1))
            output = b"".join(c.data for c in self.runtime.logs(container_id, follow=False))
            assert not state.running, f"still running after {DEADLINE_SECONDS} s:\n{output!r}"
            results.append((state.exit_code, output.decode("utf-8", errors="replace")))
        return results

    def remove(self) -> None:
        for container_id in self.containers:
            self.runtime.remove(container_id)
        self.runtime.network_remove(self.network)


@pytest.fixture
def cluster(request: pytest.FixtureRequest, images: None) -> Iterator[Cluster]:
    made = Cluster(DockerRuntime(), request.node.name.replace("_", "-")[:40])
    try:
        yield made
    finally:
        made.remove()


def training_tree(
    root: Path, hosts: list[str], hyperparameters: dict[str, str], script: str
) -> dict[str, Path]:
    trees = {}
    for host in hosts:
        base = root / host
        (base / "input" / "config").mkdir(parents=True)
        (base / "code").mkdir()
        (base / "code" / "train.py").write_text(script)
        config = base / "input" / "config"
        (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        (config / "inputdataconfig.json").write_text("{}")
        resources = {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}
        (config / "resourceconfig.json").write_text(json.dumps(resources))
        trees[host] = base
    return trees


def processing_tree(root: Path, hosts: list[str], script: str) -> dict[str, Path]:
    trees = {}
    for host in hosts:
        base = root / host
        (base / "config").mkdir(parents=True)
        (base / "processing" / "input" / "code").mkdir(parents=True)
        (base / "processing" / "output").mkdir(parents=True)
        (base / "processing" / "input" / "code" / "job.py").write_text(script)
        resources = {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}
        (base / "config" / "resourceconfig.json").write_text(json.dumps(resources))
        trees[host] = base
    return trees


def test_ddp_over_two_containers_all_reduces_through_torchrun(
    cluster: Cluster, tmp_path: Path
) -> None:
    hosts = ["algo-1", "algo-2"]
    hyperparameters = {
        "sagemaker_program": json.dumps("train.py"),
        "sagemaker_torch_distributed_enabled": "true",
    }
    trees = training_tree(tmp_path, hosts, hyperparameters, DDP_SCRIPT)
    cluster.start(PYTORCH_IMAGE, hosts, trees, command=["train"])
    (code1, out1), (code2, out2) = cluster.wait_all()
    assert code1 == 0, out1
    assert code2 == 0, out2
    assert "torch.distributed.run --nnodes 2 --nproc_per_node 1 " in out1
    assert "--master_addr algo-1 --master_port 7777 --node_rank 1" in out2
    assert "rank 0/2 on algo-1: all-reduce 3, replicas equal after a DDP step: True" in out1
    assert "rank 1/2 on algo-2: all-reduce 3, replicas equal after a DDP step: True" in out2
    for host in hosts:
        assert (trees[host] / "output" / "success").exists()


def test_without_a_distribution_the_script_runs_once_per_host_and_reads_sm_hosts(
    cluster: Cluster, tmp_path: Path
) -> None:
    hosts = ["algo-1", "algo-2"]
    # SageMaker's plain PyTorch pattern: rank and world from SM_HOSTS, rendezvous at
    # MASTER_ADDR:MASTER_PORT (env://), which the toolkit sets to the first host.
    script = (
        "import json, os, torch, torch.distributed as dist\n"
        "hosts = json.loads(os.environ['SM_HOSTS'])\n"
        "rank = hosts.index(os.environ['SM_CURRENT_HOST'])\n"
        "dist.init_process_group('gloo', rank=rank, world_size=len(hosts))\n"
        "t = torch.tensor([1.0]); dist.all_reduce(t)\n"
        "print('host', os.environ['SM_CURRENT_HOST'], 'of', os.environ['SM_HOSTS'],\n"
        "      'master', os.environ['MASTER_ADDR'] + ':' + os.environ['MASTER_PORT'],\n"
        "      'world', int(t.item()))\n"
        "dist.destroy_process_group()\n"
    )
    trees = training_tree(tmp_path, hosts, {"sagemaker_program": '"train.py"'}, script)
    cluster.start(PYTORCH_IMAGE, hosts, trees, command=["train"])
    (code1, out1), (code2, out2) = cluster.wait_all()
    assert (code1, code2) == (0, 0), out1 + out2
    assert 'host algo-1 of ["algo-1","algo-2"] master algo-1:7777 world 2' in out1
    assert 'host algo-2 of ["algo-1","algo-2"] master algo-1:7777 world 2' in out2
    assert "torch.distributed.run" not in out1


def test_a_pyspark_script_on_one_instance_runs_locally_without_network(
    cluster: Cluster, tmp_path: Path
) -> None:
    trees = processing_tree(tmp_path, ["algo-1"], SPARK_SCRIPT)
    cluster.start(
        SPARK_IMAGE,
        ["algo-1"],
        trees,
        entrypoint=["studiolo-spark-submit"],
        command=["/opt/ml/processing/input/code/job.py", "--rows", "10"],
        network=False,
    )
    [(code, out)] = cluster.wait_all()
    assert code == 0, out
    assert "--master local[*]" in out
    assert "executor hosts: algo-1; sum 500500; args ['--rows', '10']" in out
    assert (trees["algo-1"] / "processing" / "output" / "result.txt").read_text() == "500500\n"


def test_a_pyspark_script_on_two_instances_runs_executors_on_both(
    cluster: Cluster, tmp_path: Path
) -> None:
    hosts = ["algo-1", "algo-2"]
    trees = processing_tree(tmp_path, hosts, SPARK_SCRIPT)
    cluster.start(
        SPARK_IMAGE,
        hosts,
        trees,
        entrypoint=["studiolo-spark-submit"],
        command=["/opt/ml/processing/input/code/job.py"],
        memory_bytes=3 * GiB,
    )
    (code1, out1), (code2, out2) = cluster.wait_all()
    assert code1 == 0, out1
    assert code2 == 0, out2
    assert "--master spark://algo-1:7077" in out1
    assert "executor hosts: algo-1,algo-2; sum 500500" in out1
    assert "master on algo-1 is gone" in out2
    assert (trees["algo-1"] / "processing" / "output" / "result.txt").read_text() == "500500\n"
