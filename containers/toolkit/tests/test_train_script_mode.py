"""``train`` end to end: a script-mode job run as a subprocess against a temporary base dir."""

from __future__ import annotations

import json
import os
import tarfile
import time
from pathlib import Path

import pytest
from toolkit_testing import JobDir, sm_values

pytestmark = pytest.mark.slow

CSV = "x,y\n1,2.5\n2,3.5\n3,4.0\n"

TRAIN_PY = """
import argparse, csv, json, os

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--learning-rate", type=float, required=True)
parser.add_argument("--optimizer", required=True)
args = parser.parse_args()

with open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "data.csv")) as f:
    rows = list(csv.DictReader(f))

with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
    json.dump(
        {
            "epochs": args.epochs,
            "learning_rate": args.learning_rate,
            "optimizer": args.optimizer,
            "rows": len(rows),
            "sum_y": sum(float(r["y"]) for r in rows),
        },
        f,
    )

keep = ("SM_", "CURRENT_HOST", "SAGEMAKER_", "PYTHON")
print("SM_VALUES=" + json.dumps({k: v for k, v in os.environ.items() if k.startswith(keep)}))
print("CWD=" + os.getcwd())
"""

ECHO_ARGS_PY = """
import json, os, sys
print("ARGV=" + json.dumps(sys.argv[1:]))
keep = ("SM_", "SAGEMAKER_")
print("SM_VALUES=" + json.dumps({k: v for k, v in os.environ.items() if k.startswith(keep)}))
"""


def test_a_script_mode_job_reads_its_channel_parses_args_and_saves_a_model(job: JobDir) -> None:
    job.write_config(
        hyperparameters={
            "epochs": "3",
            "learning-rate": "0.05",
            "optimizer": '"adam"',
            "sagemaker_program": '"train.py"',
            "sagemaker_job_name": '"job-7"',
            "sagemaker_region": '"local-1"',
        },
        channels={"train": {"ContentType": "text/csv"}},
    )
    job.write_channel_file("train", "data.csv", CSV)
    job.write_code("train.py", TRAIN_PY)

    result = job.run_train()

    assert result.returncode == 0, result.stderr
    assert json.loads((job.model_dir / "model.json").read_text()) == {
        "epochs": 3,
        "learning_rate": 0.05,
        "optimizer": "adam",
        "rows": 3,
        "sum_y": 10.0,
    }
    values = sm_values(result.stdout)
    assert values["SM_CHANNEL_TRAIN"] == str(job.base / "input" / "data" / "train")
    assert values["SM_MODEL_DIR"] == str(job.model_dir)
    assert values["SM_OUTPUT_DATA_DIR"] == str(job.output_dir / "data")
    assert values["SM_CHANNELS"] == '["train"]'
    assert values["SM_HPS"] == '{"epochs":3,"learning-rate":0.05,"optimizer":"adam"}'
    assert values["SM_HP_LEARNING-RATE"] == "0.05"
    assert values["SM_USER_ARGS"] == (
        '["--epochs","3","--learning-rate","0.05","--optimizer","adam"]'
    )
    assert values["SM_USER_ENTRY_POINT"] == "train.py"
    assert values["SM_MODULE_NAME"] == "train"
    assert values["SM_CURRENT_HOST"] == values["CURRENT_HOST"] == "algo-1"
    assert values["SM_NUM_CPUS"] == str(os.cpu_count())
    assert values["SM_NUM_GPUS"].isdigit()
    assert values["SAGEMAKER_JOB_NAME"] == "job-7"
    assert values["SAGEMAKER_REGION"] == "local-1"
    assert values["PYTHONUNBUFFERED"] == "1"
    assert values["PYTHONPATH"].split(os.pathsep)[0] == str(job.code_dir)
    training_env = json.loads(values["SM_TRAINING_ENV"])
    assert training_env["channel_input_dirs"] == {"train": values["SM_CHANNEL_TRAIN"]}
    assert training_env["input_data_config"]["train"]["ContentType"] == "text/csv"
    assert f"CWD={job.code_dir}" in result.stdout
    assert job.succeeded
    assert job.failure is None


def test_raw_unencoded_hyperparameter_strings_are_passed_as_given(job: JobDir) -> None:
    job.write_config(
        hyperparameters={
            "optimizer": "adam",
            "name": "my model",
            "lr": "0.1",
            "sagemaker_program": "train.py",
        }
    )
    job.write_code("train.py", ECHO_ARGS_PY)

    result = job.run_train()

    assert result.returncode == 0, result.stderr
    assert "ARGV=" + json.dumps(["--lr", "0.1", "--name", "my model", "--optimizer", "adam"]) in (
        result.stdout
    )
    values = sm_values(result.stdout)
    assert values["SM_HP_OPTIMIZER"] == "adam"
    assert values["SM_HP_NAME"] == "my model"
    assert values["SM_HPS"] == '{"lr":0.1,"name":"my model","optimizer":"adam"}'


def test_sdk_style_json_encoded_hyperparameters_are_decoded_and_staged_code_wins(
    job: JobDir,
) -> None:
    # What SageMaker Python SDK v2 sends for a framework estimator; the platform pre-extracted
    # sourcedir.tar.gz into the code dir, so the S3 URI is never fetched.
    source_uri = "s3://bucket/job-1/source/sourcedir.tar.gz"
    job.write_config(
        hyperparameters={
            "epochs": "10",
            "use_cuda": "true",
            "layers": "[64, 32]",
            "cfg": '{"a": 1}',
            "optimizer": '"sgd"',
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": json.dumps(source_uri),
            "sagemaker_container_log_level": "20",
            "sagemaker_job_name": '"job-1"',
            "sagemaker_region": '"us-east-1"',
        }
    )
    job.write_code("train.py", ECHO_ARGS_PY)

    result = job.run_train()

    assert result.returncode == 0, result.stderr
    argv = [
        "--cfg", "a=1", "--epochs", "10", "--layers", "[64, 32]",
        "--optimizer", "sgd", "--use_cuda", "True",
    ]  # fmt: skip
    assert "ARGV=" + json.dumps(argv) in result.stdout
    values = sm_values(result.stdout)
    assert values["SM_HP_USE_CUDA"] == "true"
    assert values["SM_HP_LAYERS"] == "[64,32]"
    assert values["SM_HP_OPTIMIZER"] == "sgd"
    assert values["SM_MODULE_DIR"] == source_uri
    assert values["SM_LOG_LEVEL"] == "20"
    assert values["SAGEMAKER_REGION"] == "us-east-1"


def test_a_local_sourcedir_tarball_is_extracted_into_the_code_dir(
    job: JobDir, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "train.py").write_text("import helper\nhelper.run()\n")
    (source / "helper.py").write_text(
        "import os\ndef run():\n    print('helper ran in ' + os.getcwd())\n"
    )
    tarball = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for path in source.iterdir():
            archive.add(path, arcname=path.name)
    job.write_config(
        hyperparameters={
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": json.dumps(f"file://{tarball}"),
        }
    )

    result = job.run_train()

    assert result.returncode == 0, result.stderr
    assert (job.code_dir / "train.py").exists()
    assert (job.code_dir / "helper.py").exists()
    assert f"helper ran in {job.code_dir}" in result.stdout


def test_a_local_submit_directory_is_copied_into_the_code_dir(job: JobDir, tmp_path: Path) -> None:
    source = tmp_path / "project"
    source.mkdir()
    (source / "train.py").write_text("print('copied script ran')\n")
    job.write_config(
        hyperparameters={"sagemaker_program": "train.py", "sagemaker_submit_directory": str(source)}
    )

    result = job.run_train()

    assert result.returncode == 0, result.stderr
    assert "copied script ran" in result.stdout
    assert (job.code_dir / "train.py").exists()


def test_requirements_are_installed_with_pip_before_the_script_runs(job: JobDir) -> None:
    # pip itself is installed wherever pip runs, so the requirement is satisfied without an
    # index (PIP_NO_INDEX=1 keeps pip off the network) and nothing gets installed. A relocated
    # base dir means "not in a container", so pip keeps PEP 668's guard unless told otherwise,
    # which lets this test also run under Debian's externally managed python3.11.
    job.write_config(hyperparameters={"sagemaker_program": "train.py"})
    job.write_code("requirements.txt", "pip\n")
    job.write_code("train.py", "import pip\nprint('requirements ok')\n")

    result = job.run_train(PIP_BREAK_SYSTEM_PACKAGES="1")

    assert result.returncode == 0, result.stderr
    assert "Requirement already satisfied: pip" in result.stdout
    assert "requirements ok" in result.stdout
    assert result.stdout.index("Requirement already satisfied") < result.stdout.index(
        "requirements ok"
    )


def test_a_shell_entry_point_gets_the_same_arguments_and_environment(job: JobDir) -> None:
    job.write_config(
        hyperparameters={"sagemaker_program": "train.sh", "layers": "[64, 32]", "epochs": "2"}
    )
    # No execute bit and no shebang: the toolkit makes it runnable, as SageMaker's does.
    job.write_code(
        "train.sh",
        'for a in "$@"; do echo "arg=$a"; done\necho "model=$SM_MODEL_DIR"\necho "pwd=$(pwd)"\n',
    )

    result = job.run_train()

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "arg=--epochs",
        "arg=2",
        "arg=--layers",
        "arg=[64, 32]",
        f"model={job.model_dir}",
        f"pwd={job.code_dir}",
    ]


def test_a_plain_script_on_one_of_several_hosts_does_not_wait_for_its_peers_names(
    job: JobDir,
) -> None:
    """Without a distribution the script runs at once, whether or not a peer's name resolves
    (here it never does): a peer that finished first is gone from the job's network, and
    waiting for its name would hold this host for the DNS deadline."""
    job.write_config(
        hyperparameters={"sagemaker_program": '"train.py"'},
        resource_config={
            "current_host": "algo-1",
            "hosts": ["algo-1", "algo-2.invalid"],
            "network_interface_name": "eth0",
        },
    )
    job.write_code("train.py", "import os\nprint('hosts', os.environ['SM_HOSTS'])\n")

    started = time.monotonic()
    result = job.run_train()

    assert result.returncode == 0, result.stderr
    assert 'hosts ["algo-1","algo-2.invalid"]' in result.stdout
    assert "Waiting for host" not in result.stderr
    assert time.monotonic() - started < 60
