"""Distributed work across a job's instances, end to end through the studio: a PyTorch DDP
training (gloo) over 2 instances launched by the toolkit's torchrun, and a PySpark processing
job on a Spark standalone cluster across 2 instances (master on algo-1) whose stages ran on
both. Real worker, real Docker containers, the framework images scripts/build-images makes."""

from __future__ import annotations

import csv
import io
import re
import textwrap

import pytest
from django.test import Client

from jobs.models import JobLogLine, JobStatus
from studio.artifacts import get_store
from tests.factories import make_team, make_token, make_user
from tests.jobs.conftest import Worker, wait_for_job
from tests.jobs.test_processing_running import Api as ProcessingApi
from tests.jobs.test_running import Api, archive, log_text

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.parametrize("runtime_name", ["docker"], indirect=True),
]

DDP = textwrap.dedent(
    """
    import os
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    host = os.environ["SM_CURRENT_HOST"]
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimiser = torch.optim.SGD(ddp.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(100 + rank)  # each rank its own data
    for step in range(5):
        x = torch.randn(16, 4, generator=generator)
        loss = ((ddp(x) - x.sum(1, keepdim=True)) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        print(f"rank {rank}/{world} on {host} step {step} loss {loss.item():.4f}", flush=True)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    every = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(every, flat)
    same = all(torch.equal(other, every[0]) for other in every)
    print(f"rank {rank}/{world} on {host} weights-in-sync {same}", flush=True)
    if rank == 0:
        torch.save(model.state_dict(), os.path.join(os.environ["SM_MODEL_DIR"], "model.pt"))
    dist.destroy_process_group()
    """
)

PYSPARK = textwrap.dedent(
    """
    import csv, os, socket
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("studiolo-hosts").getOrCreate()
    sc = spark.sparkContext
    hosts = (
        sc.parallelize(range(400), 16)
        .map(lambda _: socket.gethostname())
        .distinct()
        .collect()
    )
    print("executors ran on", ",".join(sorted(hosts)), flush=True)
    frame = spark.createDataFrame([(i, i % 3) for i in range(3000)], ["x", "k"])
    counts = sorted(frame.groupBy("k").count().collect())
    # The driver (algo-1) writes the result: executors' local folders are their own.
    os.makedirs("/opt/ml/processing/output/counts", exist_ok=True)
    with open("/opt/ml/processing/output/counts/counts.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["k", "count"])
        writer.writerows((row["k"], row["count"]) for row in counts)
    spark.stop()
    """
)


@pytest.fixture
def api(client: Client, worker: Worker, use_runtime: str) -> Api:
    team = make_team()
    return Api(client, team.slug, make_token(make_user(team, role="scientist")))


def test_a_ddp_training_over_two_instances_completes_with_both_ranks_logging(api: Api) -> None:
    store = get_store()
    key = f"teams/{api.slug}/code/ddp/sourcedir.tar.gz"
    store.put(key, archive({"train.py": DDP}))
    response = api.client.post(
        "/api/v1/jobs",
        {
            "name": "ddp",
            "framework": "pytorch",
            "entry_point": "train.py",
            "source_uri": store.uri(key),
            "instance_type": "ml.local.small",
            "instance_count": 2,
            # What the SageMaker SDK sends for distribution={"torch_distributed": {...}}.
            "hyperparameters": {"sagemaker_torch_distributed_enabled": "true"},
        },
        content_type="application/json",
        **api.auth,
    )
    assert response.status_code == 201, response.content
    job = wait_for_job(int(response.json()["id"]), timeout=600)
    text = log_text(job)
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, text[-3000:])
    synced = [
        (line.host, line.line)
        for line in JobLogLine.objects.filter(job=job, line__contains="weights-in-sync")
    ]
    assert {host for host, _ in synced} == {"algo-1", "algo-2"}, synced
    assert all(line.endswith("weights-in-sync True") for _, line in synced), synced
    worlds = {int(m.group(1)) for _, line in synced if (m := re.search(r"/(\d+) on", line))}
    assert len(worlds) == 1
    (world,) = worlds
    assert len(synced) == world >= 2  # every rank of both instances reported
    assert job.model_artifact_uri


def test_a_pyspark_job_over_two_instances_runs_its_stages_on_both(
    client: Client, worker: Worker, use_runtime: str
) -> None:
    team = make_team()
    api = ProcessingApi(client, team.slug, make_token(make_user(team, role="scientist")))
    job_id = api.submit(
        name="spark-hosts",
        framework="spark",
        instance_type="ml.local.large",  # 4 GB: the master, a worker, the driver, an executor
        instance_count=2,
        code=api.script("hosts.py", PYSPARK),
        outputs=[{"name": "counts", "local_path": "/opt/ml/processing/output/counts"}],
    )
    job = wait_for_job(job_id, timeout=600)
    text = "\n".join(
        JobLogLine.objects.filter(job=job).order_by("seq").values_list("line", flat=True)
    )
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, text[-6000:])
    assert "executors ran on algo-1,algo-2" in text, text[-3000:]
    (output,) = job.processing["outputs"]
    store = get_store()
    key = store.key_from_uri(output["uri"]) + "/counts.csv"
    rows = list(csv.DictReader(io.StringIO(store.get(key).decode())))
    assert {row["k"]: int(row["count"]) for row in rows} == {"0": 1000, "1": 1000, "2": 1000}


def test_pyspark_on_instances_too_small_for_its_jvms_is_refused(
    client: Client, use_runtime: str
) -> None:
    team = make_team()
    api = ProcessingApi(client, team.slug, make_token(make_user(team, role="scientist")))
    response = client.post(
        "/api/v1/processing-jobs",
        {
            "name": "spark-small",
            "framework": "spark",
            "instance_type": "ml.local.small",
            "instance_count": 2,
            "code": api.script("hosts.py", PYSPARK),
        },
        content_type="application/json",
        **api.auth,
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == "instance_type"
    assert "needs at least 2048 MB" in error["message"]
