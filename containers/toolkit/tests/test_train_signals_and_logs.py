"""Live behaviour of a running job: output streams through at once, stop signals are forwarded."""

from __future__ import annotations

import signal

import pytest
from toolkit_testing import JobDir, LineReader

pytestmark = pytest.mark.slow

CHECKPOINTING_PY = """
import os, signal, sys, time

def save_checkpoint(signum, frame):
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "checkpoint.txt"), "w") as f:
        f.write(f"saved on signal {signum}")
    sys.exit(0)

signal.signal(signal.SIGTERM, save_checkpoint)
print("ready")
time.sleep(60)
print("never reached")
"""

STREAMING_PY = """
import sys, time
print("line 1")
print("err 1", file=sys.stderr)
print("line 2")
time.sleep(3)
print("line 3")
print("err 2", file=sys.stderr)
"""


def test_sigterm_to_train_reaches_the_script_which_can_save_a_checkpoint(job: JobDir) -> None:
    job.write_config(hyperparameters={"sagemaker_program": "train.py"})
    job.write_code("train.py", CHECKPOINTING_PY)
    process = job.start_train()
    assert process.stdout is not None
    stdout = LineReader(process.stdout)

    stdout.wait_for("ready")
    process.send_signal(signal.SIGTERM)
    returncode = process.wait(timeout=30)

    assert returncode == 0
    assert (job.model_dir / "checkpoint.txt").read_text() == f"saved on signal {signal.SIGTERM}"
    assert "never reached" not in stdout.rest()
    assert job.succeeded


def test_a_script_killed_by_the_forwarded_sigterm_makes_train_exit_143(job: JobDir) -> None:
    job.write_config(hyperparameters={"sagemaker_program": "train.py"})
    job.write_code("train.py", "import time\nprint('ready')\ntime.sleep(60)\n")
    process = job.start_train()
    assert process.stdout is not None
    stdout = LineReader(process.stdout)

    stdout.wait_for("ready")
    process.send_signal(signal.SIGTERM)
    returncode = process.wait(timeout=30)

    assert returncode == 128 + signal.SIGTERM
    assert job.failure is not None
    assert "ExitCode 143" in job.failure
    assert "forwarded SIGTERM" in job.failure


def test_output_streams_through_in_order_while_the_script_is_still_running(
    job: JobDir,
) -> None:
    job.write_config(hyperparameters={"sagemaker_program": "train.py"})
    job.write_code("train.py", STREAMING_PY)
    process = job.start_train()
    assert process.stdout is not None
    assert process.stderr is not None
    stdout = LineReader(process.stdout)
    stderr = LineReader(process.stderr)

    first_arrived = stdout.wait_for("line 1")
    still_running = process.poll() is None
    process.wait(timeout=30)
    stdout_lines = stdout.rest()
    ended = max(arrived for arrived, _ in stdout.seen)

    # The script sleeps 3 s after its first lines: they must have arrived before that,
    # i.e. no buffering anywhere between the script and the platform.
    assert still_running
    assert ended - first_arrived > 2.0
    assert stdout_lines == ["line 1", "line 2", "line 3"]
    script_stderr = [line for line in stderr.rest() if line.startswith("err ")]
    assert script_stderr == ["err 1", "err 2"]
    assert process.returncode == 0
