"""How ``train`` reports failures: an exit code plus ``output/failure``, never overwritten."""

from __future__ import annotations

import json

import pytest
from toolkit_testing import JobDir

pytestmark = pytest.mark.slow

CRASHING_PY = """
import sys
print("starting")
for i in range(30):
    print(f"noise line {i}", file=sys.stderr)
raise ValueError("the learning rate 42 is too large")
"""


def test_a_crashing_script_fails_the_job_with_its_exception_in_the_failure_file(
    job: JobDir,
) -> None:
    job.write_config(hyperparameters={"sagemaker_program": "train.py", "epochs": "1"})
    job.write_code("train.py", CRASHING_PY)

    result = job.run_train()

    assert result.returncode == 1
    failure = job.failure
    assert failure is not None
    assert failure.startswith("AlgorithmError: ExecuteUserScriptError:\nExitCode 1\n")
    assert "ValueError: the learning rate 42 is too large" in failure
    assert 'train.py --epochs 1", exit code: 1' in failure
    # Only the tail of stderr is kept, and the whole message fits in a FailureReason.
    assert "noise line 29" in failure
    assert "noise line 0\n" not in failure
    assert len(failure) <= 1024
    # The traceback still reached the logs, unaltered.
    assert "noise line 0\n" in result.stderr
    assert "ValueError: the learning rate 42 is too large" in result.stderr
    assert not job.succeeded


def test_the_job_exits_with_the_scripts_own_exit_code(job: JobDir) -> None:
    job.write_config(hyperparameters={"sagemaker_program": "train.py"})
    job.write_code("train.py", "import sys\nprint('bad data', file=sys.stderr)\nsys.exit(3)\n")

    result = job.run_train()

    assert result.returncode == 3
    assert job.failure is not None
    assert "ExitCode 3" in job.failure
    assert "bad data" in job.failure


def test_a_failure_file_written_by_the_script_is_not_overwritten(job: JobDir) -> None:
    job.write_config(hyperparameters={"sagemaker_program": "train.py"})
    job.write_code(
        "train.py",
        "import os, sys\n"
        "with open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w') as f:\n"
        "    f.write('CustomerError: the label column is missing')\n"
        "sys.exit(2)\n",
    )

    result = job.run_train()

    assert result.returncode == 2
    assert job.failure == "CustomerError: the label column is missing"


def test_a_missing_entry_point_is_a_framework_error_naming_it(job: JobDir) -> None:
    job.write_config(hyperparameters={"sagemaker_program": '"missing.py"'})
    job.write_code("other.py", "print('not me')\n")

    result = job.run_train()

    assert result.returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("Framework Error: ")
    assert "'missing.py' not found" in job.failure
    assert "other.py" in job.failure  # what the code dir does hold
    assert "not me" not in result.stdout


def test_no_entry_point_at_all_is_a_framework_error(job: JobDir) -> None:
    job.write_config(hyperparameters={"epochs": "1"})

    result = job.run_train()

    assert result.returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("Framework Error: no entry point")


def test_an_s3_submit_directory_with_no_staged_code_says_the_code_must_be_pre_staged(
    job: JobDir,
) -> None:
    job.write_config(
        hyperparameters={
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": json.dumps("s3://bucket/job/source/sourcedir.tar.gz"),
        }
    )

    result = job.run_train()

    assert result.returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("Framework Error: ")
    assert "s3://bucket/job/source/sourcedir.tar.gz" in job.failure
    assert "pre-stage" in job.failure
    assert "/opt/ml/code" in job.failure


def test_a_requirement_pip_cannot_install_fails_the_job_with_pips_error(job: JobDir) -> None:
    job.write_config(hyperparameters={"sagemaker_program": "train.py"})
    job.write_code("requirements.txt", "studiolo-no-such-package==0.0.1\n")
    job.write_code("train.py", "print('script ran')\n")

    # See test_requirements_are_installed_with_pip_before_the_script_runs about PEP 668.
    result = job.run_train(PIP_BREAK_SYSTEM_PACKAGES="1")

    assert result.returncode != 0
    failure = job.failure
    assert failure is not None
    assert failure.startswith("AlgorithmError: InstallRequirementsError:")
    assert "studiolo-no-such-package" in failure
    assert "-m pip install --no-input -r requirements.txt" in failure
    assert "script ran" not in result.stdout


def test_unreadable_config_is_a_framework_error_with_the_cause_first(job: JobDir) -> None:
    job.write_config(hyperparameters={})
    (job.config_dir / "hyperparameters.json").write_text("{not json")

    result = job.run_train()

    assert result.returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("Framework Error: JSONDecodeError: ")
    assert "Traceback (most recent call last)" in job.failure
