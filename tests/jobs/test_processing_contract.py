"""The container side of a processing job, as files: processingjobconfig.json and
resourceconfig.json as SageMaker writes them, one host's /opt/ml/processing tree, the
ShardedByS3Key shares, the upload of an output folder and the exit message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.processing_contract import (
    EXIT_MESSAGE_LIMIT,
    ProcessingHost,
    ProcessingSettings,
    local_path_problem,
    processing_job_config,
    shard_share,
    upload_output,
    write_config,
)
from studio.artifacts.local import LocalArtifactStore

SETTINGS: ProcessingSettings = {
    "inputs": [
        {
            "name": "raw",
            "uri": "s3://bucket/raw",
            "local_path": "/opt/ml/processing/input",
            "distribution": "ShardedByS3Key",
            "input_mode": "File",
        },
        {
            "name": "code",
            "uri": "s3://bucket/code/prep.py",
            "local_path": "/opt/ml/processing/input/code",
            "distribution": "FullyReplicated",
            "input_mode": "File",
        },
    ],
    "outputs": [
        {
            "name": "train",
            "uri": "s3://bucket/out/train",
            "local_path": "/opt/ml/processing/train",
            "upload_mode": "EndOfJob",
        }
    ],
    "code": "prep.py",
    "exit_message": "",
}


def test_the_job_config_is_the_request_with_sagemakers_keys_and_defaults(tmp_path: Path) -> None:
    config = processing_job_config(
        name="prep-1",
        image="studiolo/sklearn:latest",
        entrypoint=["python3", "/opt/ml/processing/input/code/prep.py"],
        arguments=["--split=0.2"],
        environment={"A": "1"},
        settings=SETTINGS,
        instance_type="ml.local.small",
        instance_count=2,
        max_runtime_seconds=600,
        enable_network=False,
    )
    host = ProcessingHost(tmp_path / "opt_ml")
    write_config(host, job_config=config, current_host="algo-2", hosts=["algo-2", "algo-1"])
    written = json.loads((tmp_path / "opt_ml/config/processingjobconfig.json").read_text())
    assert written == config
    assert set(written) == {
        "ProcessingJobArn",
        "ProcessingJobName",
        "AppSpecification",
        "Environment",
        "ProcessingInputs",
        "ProcessingOutputConfig",
        "ProcessingResources",
        "NetworkConfig",
        "RoleArn",
        "StoppingCondition",
    }
    assert written["ProcessingJobArn"] == (
        "arn:aws:sagemaker:local:000000000000:processing-job/prep-1"
    )
    assert written["AppSpecification"] == {
        "ImageUri": "studiolo/sklearn:latest",
        "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/prep.py"],
        "ContainerArguments": ["--split=0.2"],
    }
    assert written["ProcessingInputs"][0] == {
        "InputName": "raw",
        "AppManaged": False,
        "S3Input": {
            "S3Uri": "s3://bucket/raw",
            "LocalPath": "/opt/ml/processing/input",
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "ShardedByS3Key",
            "S3CompressionType": "None",
        },
    }
    assert written["ProcessingOutputConfig"] == {
        "Outputs": [
            {
                "OutputName": "train",
                "AppManaged": False,
                "S3Output": {
                    "S3Uri": "s3://bucket/out/train",
                    "LocalPath": "/opt/ml/processing/train",
                    "S3UploadMode": "EndOfJob",
                },
            }
        ]
    }
    assert written["ProcessingResources"] == {
        "ClusterConfig": {
            "InstanceCount": 2,
            "InstanceType": "ml.local.small",
            "VolumeSizeInGB": 30,
        }
    }
    assert written["StoppingCondition"] == {"MaxRuntimeInSeconds": 600}
    resource = json.loads((tmp_path / "opt_ml/config/resourceconfig.json").read_text())
    assert resource == {
        "current_host": "algo-2",
        "hosts": ["algo-1", "algo-2"],
        "network_interface_name": "eth0",
    }


def test_an_image_with_its_own_program_has_no_entrypoint_or_arguments_in_the_config() -> None:
    config = processing_job_config(
        name="p",
        image="img",
        entrypoint=None,
        arguments=None,
        environment={},
        settings={**SETTINGS, "inputs": [], "outputs": []},
        instance_type="ml.local.small",
        instance_count=1,
        max_runtime_seconds=60,
        enable_network=True,
    )
    assert config["AppSpecification"] == {"ImageUri": "img"}
    assert config["ProcessingInputs"] == []
    assert config["NetworkConfig"]["EnableNetworkIsolation"] is False


def test_every_input_and_output_folder_exists_empty_before_the_container_starts(
    tmp_path: Path,
) -> None:
    host = ProcessingHost(tmp_path)
    host.create(SETTINGS)
    for relative in ("config", "output", "processing/input/code", "processing/train"):
        assert (tmp_path / relative).is_dir(), relative
    assert list((tmp_path / "processing/train").iterdir()) == []
    assert host.path("/opt/ml/processing/input/code") == tmp_path / "processing/input/code"
    with pytest.raises(ValueError, match="not a processing LocalPath"):
        host.path("/opt/ml/processing/../model")


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/opt/ml/processing/input", True),
        ("/opt/ml/processing/a/b-c_d.e", True),
        ("/opt/ml/processing", False),
        ("/opt/ml/processing/", False),
        ("/opt/ml/processingx/a", False),
        ("opt/ml/processing/a", False),
        ("/opt/ml/processing/a/../../model", False),
        ("/opt/ml/processing//a", False),
        ("/opt/ml/processing/./a", False),
        ("/opt/ml/processing/a/", False),
        ("/opt/ml/processing/" + "a" * 237, True),  # 256 characters
        ("/opt/ml/processing/" + "a" * 238, False),
    ],
)
def test_a_local_path_is_a_normalised_folder_under_opt_ml_processing(path: str, ok: bool) -> None:
    assert (local_path_problem(path) is None) is ok


def test_sharded_by_s3_key_gives_each_instance_a_disjoint_share_covering_every_object() -> None:
    keys = [f"raw/part-{n:02}.csv" for n in range(7)][::-1]
    shares = [shard_share(keys, index, 3) for index in range(3)]
    assert shares[0] == ["raw/part-00.csv", "raw/part-03.csv", "raw/part-06.csv"]
    assert sorted(key for share in shares for key in share) == sorted(keys)
    assert sum(len(share) for share in shares) == len(keys)
    assert shard_share(keys, 0, 1) == sorted(keys)
    assert shard_share(["only"], 1, 2) == []  # more instances than objects: some get none


def test_an_output_folder_uploads_every_file_below_it_to_its_uri(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    folder = tmp_path / "train"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text("1\n")
    (folder / "sub" / "b.csv").write_text("22\n")
    (folder / "link").symlink_to(tmp_path / "train" / "a.csv")
    files, size = upload_output(store, folder, "teams/lab/out/train")
    assert (files, size) == (2, 5)
    assert store.get("teams/lab/out/train/a.csv") == b"1\n"
    assert store.get("teams/lab/out/train/sub/b.csv") == b"22\n"
    assert not store.exists("teams/lab/out/train/link")


def test_the_exit_message_is_the_first_kilobyte_of_output_message(tmp_path: Path) -> None:
    host = ProcessingHost(tmp_path)
    assert host.exit_message() == ""
    host.output.mkdir(parents=True)
    host.message_file.write_text("bad rows: " + "x" * 3000)
    message = host.exit_message()
    assert message.startswith("bad rows: ")
    assert len(message) == EXIT_MESSAGE_LIMIT
