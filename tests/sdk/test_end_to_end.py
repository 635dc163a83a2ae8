"""A training script on a "laptop" (another process, another Python: the images' 3.11 when
the machine has it) records through the client into a live studio; the run, its params,
metric series and artifacts are then read back through the studio's REST API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from tests.sdk.conftest import TOOLKIT_SRC, Member, api

SCRIPT = textwrap.dedent(
    """
    import math, pathlib, sys
    import studiolo

    run = studiolo.start_run("laptop-churn", name="from-a-laptop", tags={"host": "laptop"})
    run.log_params({"lr": 0.01, "optimizer": "adam"})
    for step in range(3000):
        run.log_metrics({"loss": 1 / (step + 1), "acc": step / 3000}, step=step)
    report = pathlib.Path(sys.argv[1]) / "report.txt"
    report.write_text("all good")
    run.log_artifact(str(report), artifact_path="reports")
    print(run.run_id, flush=True)
    if sys.argv[2] == "crash":
        raise RuntimeError("diverged")
    # no run.end(): the client ends open runs when the interpreter exits
    """
)


def laptop_python() -> str:
    return shutil.which("python3.11") or sys.executable


def run_script(asgi_server: str, member: Member, tmp_path: Path, how: str) -> tuple[str, str]:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(TOOLKIT_SRC),  # as `pip install ./containers/toolkit` would
        "STUDIOLO_URL": asgi_server,
        "STUDIOLO_TOKEN": member.token,
    }
    result = subprocess.run(
        [laptop_python(), str(script), str(tmp_path), how],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == (1 if how == "crash" else 0), result.stderr
    return result.stdout.strip().splitlines()[-1], result.stderr


def test_a_laptop_script_records_into_the_studio(
    asgi_server: str, member: Member, tmp_path: Path
) -> None:
    run_id, _ = run_script(asgi_server, member, tmp_path, "ok")

    experiments = api(asgi_server, member.token, "/experiments", name="laptop-churn")["results"]
    assert len(experiments) == 1
    found = api(asgi_server, member.token, f"/experiments/{experiments[0]['id']}/runs")["runs"]
    assert [r["run_id"] for r in found] == [run_id]
    run = found[0]
    assert run["name"] == "from-a-laptop"
    assert run["status"] == "FINISHED"  # ended at interpreter exit
    assert run["params"] == {"lr": "0.01", "optimizer": "adam"}
    assert run["tags"] == {"host": "laptop"}
    assert run["metrics"]["loss"]["count"] == 3000
    assert run["metrics"]["acc"]["step"] == 2999

    history = api(asgi_server, member.token, f"/runs/{run_id}/metric-history", key="loss")
    assert [p["step"] for p in history["points"]] == list(range(3000))
    assert history["points"][0]["value"] == 1.0
    download = httpx.get(
        f"{asgi_server}/api/v1/runs/{run_id}/artifacts/reports/report.txt",
        headers={"Authorization": f"Bearer {member.token}"},
    )
    assert download.content == b"all good"


def test_a_script_that_crashes_leaves_a_failed_run_with_everything_logged(
    asgi_server: str, member: Member, tmp_path: Path
) -> None:
    run_id, stderr = run_script(asgi_server, member, tmp_path, "crash")
    assert "RuntimeError: diverged" in stderr  # the script's own traceback, untouched
    run = api(asgi_server, member.token, f"/runs/{run_id}")
    assert run["status"] == "FAILED"
    assert run["metrics"]["loss"]["count"] == 3000
