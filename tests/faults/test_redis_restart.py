"""The embedded Redis killed under a running `studiolo up`: the studio recovers by itself.

A real `studiolo up` in a data folder of its own (SQLite, its own embedded redis-server: never
the machine's Redis, which CI uses for the rest of the suite), the process runtime. A job
runs while redis-server is SIGKILLed; a job is submitted through the API while it is down,
another through `studiolo train` after `up` has started it again. All three complete, each
once, with every line of its log; nothing else was restarted.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.support import Up, run_studiolo, short_home
from tests.faults.support import TICKER, wait_until
from tests.support import free_port

pytestmark = [pytest.mark.fault, pytest.mark.slow]

QUICK = "print('quick job ran', flush=True)\n"


@pytest.fixture
def studio() -> Iterator[Up]:
    with short_home() as home:
        # A 6 s lease: reconciliation (which dispatches what Redis did not take) every 3 s.
        up = Up(home, free_port(), RUNTIME="process", JOB_LEASE_SECONDS="6")
        try:
            up.wait_for(r"Studiolo is running at ", 90)
            yield up
        finally:
            if up.process.poll() is None:
                processes = up.descendants()
                up.process.send_signal(signal.SIGTERM)
                up.process.wait(60)
                for leftover in processes:
                    if leftover.is_running():
                        leftover.kill()


class Client:
    def __init__(self, up: Up) -> None:
        token = run_studiolo("token", "create", "admin", env=up.env)
        assert token.returncode == 0, token.stderr
        self.env = {**up.env, "STUDIOLO_URL": up.url, "STUDIOLO_TOKEN": token.stdout.strip()}
        self.http = httpx.Client(
            base_url=up.url,
            headers={"Authorization": f"Bearer {self.env['STUDIOLO_TOKEN']}"},
            timeout=30,
            trust_env=False,
        )

    def train(self, source: Path, name: str) -> int:
        """`studiolo train` as a user runs it (it uploads the source, then submits)."""
        done = run_studiolo(
            "train", "--framework", "sklearn", "--entry-point", "train.py",
            "--source-dir", str(source), "--name", name, "--json",
            env=self.env, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return int(re.search(r'"id": (\d+)', done.stdout).group(1))  # type: ignore[union-attr]

    def job(self, job_id: int) -> Any:
        return self.http.get(f"/api/v1/jobs/{job_id}").json()

    def lines(self, job_id: int) -> list[str]:
        page = self.http.get(f"/api/v1/jobs/{job_id}/logs", params={"limit": 10000}).json()
        seqs = [row["seq"] for row in page["results"]]
        assert seqs == list(range(1, len(seqs) + 1)), "gaps in the log's numbering"
        assert page["total"] == len(seqs)
        return [row["line"] for row in page["results"]]


def source(folder: Path, script: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "train.py").write_text(script)
    return folder


def test_killing_the_embedded_redis_loses_nothing_and_the_studio_recovers_by_itself(
    studio: Up, tmp_path: Path
) -> None:
    client = Client(studio)
    running = client.train(source(tmp_path / "ticker", TICKER), "before")
    wait_until(lambda: client.job(running)["log_line_count"] >= 8, "the first job did not run")

    redis_server = next(p for p in studio.descendants() if "redis-server" in p.name())
    redis_server.kill()
    # While it is down: a submission is stored and answered in the API's shape, never an
    # HTML 500; its task reaches the queue once Redis is back.
    during = client.http.post(
        "/api/v1/jobs",
        json={
            "name": "during",
            "image": "local/python",
            "instance_type": "ml.local.small",
            "container_entrypoint": ["python3", "-c", QUICK],
        },
        headers={"Idempotency-Key": "during-the-outage"},
    )
    assert during.status_code == 201, during.text
    studio.wait_for(r"studiolo: redis exited unexpectedly \(killed by SIGKILL", 30)
    studio.wait_for(r"studiolo: redis started again \(pid \d+\)", 30)

    after = client.train(source(tmp_path / "quick", QUICK), "after")
    (
        studio.home
        / "work"
        / f"job-{running}"
        / "algo-1"
        / "opt_ml"
        / "input"
        / "config"
        / "finish"
    ).touch()
    ids = [running, int(during.json()["id"]), after]
    for job_id in ids:
        wait_until(lambda job_id=job_id: client.job(job_id)["status"] in TERMINAL, "no end", 120)
    for job_id in ids:
        assert client.job(job_id)["status"] == "Completed", client.job(job_id)["failure_reason"]

    listed = client.http.get("/api/v1/jobs").json()["results"]
    assert sorted(job["id"] for job in listed) == sorted(ids), "a job was lost or duplicated"
    ticker = client.lines(running)
    printed = int(re.findall(r"\d+", next(x for x in ticker if x.startswith("done after")))[0])
    assert [x for x in ticker if x.startswith("tick ")] == [
        f"tick {i}" for i in range(1, printed + 1)
    ]
    for job_id in ids:
        lines = client.lines(job_id)
        assert sum(x.startswith("Starting job ") for x in lines) == 1, lines
        assert sum(x == "Starting the training container" for x in lines) == 1, lines
    assert client.lines(ids[1]).count("quick job ran") == 1
    # Only Redis was restarted: the web server, the workers and beat rode it out.
    restarted = [line for line in studio.drain() if "exited unexpectedly" in line]
    assert len(restarted) == 1, restarted


TERMINAL = ("Completed", "Failed", "Stopped")
