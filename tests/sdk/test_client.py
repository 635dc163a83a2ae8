"""The client's buffering, flushing, retries and errors, against a live studio (uvicorn
serving studio.asgi) behind a real HTTP proxy that counts requests and fails them on demand."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import pytest
import studiolo
from studiolo import ApiError, Client, InvalidInput, RetryPolicy, TransportError

from experiments.models import Experiment, MetricPoint, Run, RunParam
from tests.sdk.conftest import FlakyProxy, Member, api

FAST_RETRY = RetryPolicy(attempts=4, initial=0.05, maximum=0.2)


def client(url: str, member: Member, **options: object) -> Client:
    return Client(url, member.token, retry=FAST_RETRY, **options)  # type: ignore[arg-type]


def wait_until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.05)


def points(run_id: str, key: str) -> list[tuple[int, float]]:
    return list(
        MetricPoint.objects.filter(run__run_uuid=run_id, key=key)
        .order_by("step")
        .values_list("step", "value")
    )


def test_metrics_go_out_in_batches_of_at_most_1000_when_the_buffer_fills(
    proxy: FlakyProxy, member: Member
) -> None:
    run = client(proxy.url, member, flush_interval=60).start_run("churn", name="batches")
    for step in range(2500):
        run.log_metric("loss", 1 / (step + 1), step=step)
    wait_until(lambda: len(proxy.calls("/metrics")) == 2)
    time.sleep(0.3)
    assert [len(c.body["metrics"]) for c in proxy.calls("/metrics")] == [1000, 1000]

    run.end()  # the last 500 go with the end, then the status
    sizes = [len(c.body["metrics"]) for c in proxy.calls("/metrics")]
    assert sizes == [1000, 1000, 500]
    assert len(points(run.run_id, "loss")) == 2500
    ended = Run.objects.get(run_uuid=run.run_id)
    assert ended.status == "FINISHED"
    assert ended.end_time is not None


def test_a_quiet_run_is_flushed_about_once_a_second(proxy: FlakyProxy, member: Member) -> None:
    run = client(proxy.url, member).start_run("churn")
    started = time.monotonic()
    run.log_metric("acc", 0.5)
    run.log_metric("acc", 0.75)
    assert proxy.calls("/metrics") == []  # buffered, not sent per call
    wait_until(lambda: len(points(run.run_id, "acc")) == 2, timeout=5)
    assert 0.8 <= time.monotonic() - started < 3
    assert len(proxy.calls("/metrics")) == 1  # both in one request
    assert points(run.run_id, "acc") == [(0, 0.5), (1, 0.75)]  # steps count up per key
    run.end()


@pytest.mark.parametrize("mode", ["503", "drop"])
def test_transient_failures_are_retried_without_losing_or_doubling_points(
    proxy: FlakyProxy, member: Member, mode: str
) -> None:
    run = client(proxy.url, member, flush_interval=0.05).start_run("churn")
    proxy.fail(3, mode=mode, path_part="/metrics")
    for step in range(10):
        run.log_metrics({"loss": 10 - step, "acc": step / 10}, step=step)
    run.flush(timeout=20)
    attempts = proxy.calls("/metrics")
    assert [c.failed for c in attempts[:4]] == [True, True, True, False]
    assert [s for s, _ in points(run.run_id, "loss")] == list(range(10))
    assert len(points(run.run_id, "acc")) == 10
    run.end()


def test_an_outage_longer_than_the_end_timeout_is_reported_with_the_points_lost(
    proxy: FlakyProxy, member: Member
) -> None:
    run = client(proxy.url, member, end_timeout=0.5).start_run("churn")
    proxy.fail(10_000, path_part=f"/runs/{run.run_id}")
    run.log_metric("loss", 1.0)
    run.log_metric("loss", 0.5)
    with pytest.raises(TransportError, match="HTTP 503"):
        run.end()
    assert run.ended
    with pytest.raises(TransportError, match="2 metric points could not be sent"):
        run.flush()


def test_a_changed_param_is_refused_at_once_naming_the_key(
    proxy: FlakyProxy, member: Member
) -> None:
    with client(proxy.url, member).start_run("churn") as run:
        run.log_params({"lr": 0.1, "layers": [64, 32], "early_stop": True})
        run.log_params({"lr": 0.1})  # the same value again is fine
        with pytest.raises(ApiError) as refused:
            run.log_param("lr", 0.2)
        assert refused.value.status == 400
        assert refused.value.field == "params.lr"
        assert "'lr'" in str(refused.value)
    params = dict(RunParam.objects.filter(run__run_uuid=run.run_id).values_list("key", "value"))
    assert params == {"lr": "0.1", "layers": "[64, 32]", "early_stop": "true"}


def test_a_refused_metric_is_raised_at_the_next_call_and_its_batch_mates_are_kept(
    proxy: FlakyProxy, member: Member
) -> None:
    run = client(proxy.url, member, flush_interval=60).start_run("churn")
    run.log_metric("good", 1.0)
    run.log_metric("bad key!", 2.0)
    run.log_metric("good", 3.0)
    with pytest.raises(ApiError) as refused:
        run.flush()
    assert refused.value.field == "metrics[1].key"
    assert "'bad key!'" in refused.value.message
    assert points(run.run_id, "good") == [(0, 1.0), (1, 3.0)]
    run.log_metric("good", 4.0)  # reported once: logging goes on
    run.end()
    assert len(points(run.run_id, "good")) == 3


def test_non_finite_values_are_recorded_as_such(proxy: FlakyProxy, member: Member) -> None:
    with client(proxy.url, member).start_run("churn") as run:
        run.log_metrics({"x": math.nan})
        run.log_metrics({"x": math.inf})
        run.log_metrics({"x": -math.inf})
    values = [v for _, v in points(run.run_id, "x")]
    assert values[0] is None  # NaN is stored as NULL
    assert values[1:] == [math.inf, -math.inf]


@pytest.mark.parametrize(
    ("raised", "status"),
    [(None, "FINISHED"), (ValueError, "FAILED"), (KeyboardInterrupt, "KILLED")],
)
def test_the_context_manager_ends_the_run_by_how_the_block_ended(
    proxy: FlakyProxy, member: Member, raised: type[BaseException] | None, status: str
) -> None:
    expected = pytest.raises(raised) if raised else contextlib.nullcontext()
    with expected, client(proxy.url, member).start_run("churn") as run:
        run.log_metric("loss", 0.1)
        if raised:
            raise raised()
    recorded = Run.objects.get(run_uuid=run.run_id)
    assert recorded.status == status
    assert len(points(run.run_id, "loss")) == 1


def test_resuming_a_run_sets_it_running_and_continues_its_steps(
    proxy: FlakyProxy, member: Member
) -> None:
    first = client(proxy.url, member).start_run("churn", name="long", tags={"stage": "dev"})
    for loss in (3.0, 2.0, 1.0):
        first.log_metric("loss", loss)
    first.end("KILLED")
    assert Run.objects.get(run_uuid=first.run_id).status == "KILLED"

    again = client(proxy.url, member).start_run(run_id=first.run_id, tags={"resumed": "yes"})
    assert again.name == "long"
    assert Run.objects.get(run_uuid=first.run_id).status == "RUNNING"
    again.log_metric("loss", 0.5)
    again.end()
    assert [s for s, _ in points(first.run_id, "loss")] == [0, 1, 2, 3]
    run = api(proxy.url, member.token, f"/runs/{first.run_id}")
    assert run["status"] == "FINISHED"
    assert run["tags"] == {"stage": "dev", "resumed": "yes"}


def test_the_experiment_is_found_by_name_or_created_once(proxy: FlakyProxy, member: Member) -> None:
    one = client(proxy.url, member, team=member.team.slug).start_run("churn")
    two = client(proxy.url, member).start_run("churn")  # the user's only team by default
    default = client(proxy.url, member).start_run()
    for run in (one, two, default):
        run.end()
    assert one.experiment_id == two.experiment_id
    names = sorted(Experiment.objects.filter(team=member.team).values_list("name", flat=True))
    assert names == ["Default", "churn"]


def test_a_deleted_experiment_name_is_refused_with_the_studios_reason(
    proxy: FlakyProxy, member: Member
) -> None:
    client(proxy.url, member).start_run("old").end()
    from experiments.services import experiment_delete

    experiment_delete(experiment=Experiment.objects.get(name="old"), actor=member.user)
    with pytest.raises(ApiError, match="deleted experiments keep their name") as refused:
        client(proxy.url, member).start_run("old")
    assert refused.value.status == 409


def test_artifacts_are_uploaded_files_and_folders(
    proxy: FlakyProxy, member: Member, tmp_path: Path
) -> None:
    (tmp_path / "model.pkl").write_bytes(b"weights")
    plots = tmp_path / "plots"
    (plots / "curves").mkdir(parents=True)
    (plots / "roc.csv").write_text("fpr,tpr\n")
    (plots / "curves" / "loss.csv").write_text("step,loss\n")
    with client(proxy.url, member).start_run("churn") as run:
        run.log_artifact(tmp_path / "model.pkl", artifact_path="model")
        run.log_artifact(str(plots))
        run.log_artifacts(plots, artifact_path="again")
    base = f"/runs/{run.run_id}/artifacts"
    assert [f["path"] for f in api(proxy.url, member.token, base)["files"]] == [
        "again",
        "model",
        "plots",
    ]
    listed = api(proxy.url, member.token, base, path="plots/curves")["files"]
    assert [(f["path"], f["size"]) for f in listed] == [("plots/curves/loss.csv", 10)]
    assert [f["path"] for f in api(proxy.url, member.token, base, path="again")["files"]] == [
        "again/curves",
        "again/roc.csv",
    ]


def test_a_bad_token_is_a_401_that_says_what_to_set(proxy: FlakyProxy, member: Member) -> None:
    with pytest.raises(ApiError, match="STUDIOLO_TOKEN") as refused:
        Client(proxy.url, "stl_wrong", retry=FAST_RETRY).start_run("churn")
    assert refused.value.status == 401


def test_an_unreachable_studio_is_a_transport_error_after_the_retries(member: Member) -> None:
    unreachable = Client("http://127.0.0.1:9", member.token, retry=FAST_RETRY)
    with pytest.raises(TransportError, match="gave up after 4 attempts"):
        unreachable.start_run("churn")


def test_what_the_client_can_tell_is_wrong_is_refused_before_sending(
    proxy: FlakyProxy, member: Member
) -> None:
    with client(proxy.url, member).start_run("churn") as run:
        with pytest.raises(InvalidInput, match=r"metrics\.loss: a number is required"):
            run.log_metric("loss", "low")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="step: an integer"):
            run.log_metric("loss", 1.0, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="status"):
            run.end("DONE")
    assert proxy.calls("/metrics") == []
    with pytest.raises(studiolo.StudioloError, match="has ended"):
        run.log_metric("loss", 1.0)


def test_settings_come_from_the_environment(
    proxy: FlakyProxy, member: Member, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUDIOLO_URL", proxy.url)
    monkeypatch.setenv("STUDIOLO_TOKEN", member.token)
    monkeypatch.setenv("STUDIOLO_TEAM", member.team.slug)
    with studiolo.start_run("from-env", name="env", retry=FAST_RETRY) as run:
        run.log_metric("m", 1.0)
    assert Run.objects.get(run_uuid=run.run_id).experiment.name == "from-env"
