"""``build_environment`` against the values contract section 1.5/1.6 spells out."""

from __future__ import annotations

import json

from studiolo_toolkit.environment import Paths, build_environment
from studiolo_toolkit.mapping import decode_hyperparameters

CONTRACT_HPS = {"epochs": 10, "use_cuda": True, "layers": [64, 32], "cfg": {"a": 1}}
CHANNELS = {"train": {"TrainingInputMode": "File"}, "test": {"TrainingInputMode": "File"}}


def _build(**overrides: object) -> dict[str, str]:
    kwargs: dict[str, object] = {
        "hyperparameters": {**CONTRACT_HPS, "sagemaker_program": "train.py"},
        "input_data_config": CHANNELS,
        "resource_config": None,
        "num_cpus": 4,
    }
    kwargs.update(overrides)
    return build_environment(**kwargs).env_vars  # type: ignore[arg-type]


def test_cli_args_are_sorted_python_str_values_as_in_the_contract() -> None:
    env = build_environment(
        hyperparameters=CONTRACT_HPS, input_data_config={}, resource_config=None
    )

    assert env.user_args == [
        "--cfg", "a=1", "--epochs", "10", "--layers", "[64, 32]", "--use_cuda", "True",
    ]  # fmt: skip
    assert env.env_vars["SM_USER_ARGS"] == (
        '["--cfg","a=1","--epochs","10","--layers","[64, 32]","--use_cuda","True"]'
    )


def test_hyperparameter_variables_are_compact_sorted_json_and_strings_stay_raw() -> None:
    env = _build(hyperparameters={**CONTRACT_HPS, "optimizer": "adam"})

    assert env["SM_HPS"] == (
        '{"cfg":{"a":1},"epochs":10,"layers":[64,32],"optimizer":"adam","use_cuda":true}'
    )
    assert env["SM_HP_LAYERS"] == "[64,32]"
    assert env["SM_HP_USE_CUDA"] == "true"
    assert env["SM_HP_EPOCHS"] == "10"
    assert env["SM_HP_CFG"] == '{"a":1}'
    assert env["SM_HP_OPTIMIZER"] == "adam"


def test_names_are_upper_cased_verbatim_so_hyphens_survive() -> None:
    env = _build(
        hyperparameters={"learning-rate": 0.1, "sagemaker_program": "train.py"},
        input_data_config={"my-data.v2": {}},
    )

    assert env["SM_HP_LEARNING-RATE"] == "0.1"
    assert env["SM_CHANNEL_MY-DATA.V2"] == "/opt/ml/input/data/my-data.v2"


def test_channels_are_a_sorted_json_list_with_one_path_variable_each() -> None:
    env = _build()

    assert env["SM_CHANNELS"] == '["test","train"]'
    assert env["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert env["SM_CHANNEL_TEST"] == "/opt/ml/input/data/test"
    assert json.loads(env["SM_INPUT_DATA_CONFIG"]) == CHANNELS


def test_default_paths_are_under_opt_ml() -> None:
    env = _build()

    assert env["SM_MODEL_DIR"] == "/opt/ml/model"
    assert env["SM_INPUT_DIR"] == "/opt/ml/input"
    assert env["SM_INPUT_CONFIG_DIR"] == "/opt/ml/input/config"
    assert env["SM_OUTPUT_DIR"] == "/opt/ml/output"
    assert env["SM_OUTPUT_DATA_DIR"] == "/opt/ml/output/data"
    assert env["SM_OUTPUT_INTERMEDIATE_DIR"] == "/opt/ml/output/intermediate"
    assert env["SM_MODULE_DIR"] == "/opt/ml/code"
    assert env["PYTHONPATH"] == "/opt/ml/code"


def test_a_relocated_base_dir_moves_every_path() -> None:
    env = _build(paths=Paths("/jobs/42"), environ={"PYTHONPATH": "/usr/lib/extra"})

    assert env["SM_MODEL_DIR"] == "/jobs/42/model"
    assert env["SM_CHANNEL_TRAIN"] == "/jobs/42/input/data/train"
    assert env["SM_OUTPUT_DATA_DIR"] == "/jobs/42/output/data"
    assert env["SM_MODULE_DIR"] == "/jobs/42/code"
    assert env["PYTHONPATH"] == "/jobs/42/code:/usr/lib/extra"
    assert json.loads(env["SM_TRAINING_ENV"])["model_dir"] == "/jobs/42/model"


def test_reserved_hyperparameters_are_consumed_and_other_sagemaker_ones_are_framework_params() -> (
    None
):
    env = _build(
        hyperparameters={
            "epochs": 3,
            "sagemaker_program": "entry.py",
            "sagemaker_submit_directory": "s3://bucket/job/source/sourcedir.tar.gz",
            "sagemaker_container_log_level": 10,
            "sagemaker_job_name": "job-1",
            "sagemaker_region": "eu-west-1",
            "_tuning_objective_metric": "loss",
            "sagemaker_mpi_enabled": True,
        }
    )

    assert env["SM_HPS"] == '{"epochs":3}'
    assert env["SM_USER_ARGS"] == '["--epochs","3"]'
    assert env["SM_FRAMEWORK_PARAMS"] == '{"sagemaker_mpi_enabled":true}'
    assert env["SM_USER_ENTRY_POINT"] == "entry.py"
    assert env["SM_MODULE_NAME"] == "entry"
    # As in SageMaker: the submit directory as given, even an S3 URI.
    assert env["SM_MODULE_DIR"] == "s3://bucket/job/source/sourcedir.tar.gz"
    assert env["SM_LOG_LEVEL"] == "10"
    assert env["SAGEMAKER_JOB_NAME"] == "job-1"
    assert env["SAGEMAKER_REGION"] == "eu-west-1"
    assert not any(key.startswith("SM_HP_SAGEMAKER") for key in env)


def test_missing_resource_config_means_one_local_host() -> None:
    env = _build()

    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert env["CURRENT_HOST"] == "algo-1"
    assert env["SM_HOSTS"] == '["algo-1"]'
    assert env["SM_NETWORK_INTERFACE_NAME"] == "eth0"
    assert env["SM_CURRENT_INSTANCE_TYPE"] == "local"
    assert env["SM_CURRENT_INSTANCE_GROUP"] == "homogeneousCluster"
    assert env["SM_CURRENT_INSTANCE_GROUP_HOSTS"] == '["algo-1"]'
    assert env["SM_INSTANCE_GROUPS"] == '["homogeneousCluster"]'
    assert env["SM_IS_HETERO"] == "false"
    assert env["SM_DISTRIBUTION_INSTANCE_GROUPS"] == "[]"


def test_a_heterogeneous_cluster_is_described_from_the_resource_config() -> None:
    resource_config = {
        "current_host": "algo-3",
        "hosts": ["algo-1", "algo-2", "algo-3"],
        "current_group_name": "gpus",
        "current_instance_type": "ml.p3.2xlarge",
        "network_interface_name": "ethwe",
        "instance_groups": [
            {"instance_group_name": "cpus", "instance_type": "ml.c5.xlarge", "hosts": ["algo-1"]},
            {
                "instance_group_name": "gpus",
                "instance_type": "ml.p3.2xlarge",
                "hosts": ["algo-2", "algo-3"],
            },
        ],
    }
    env = build_environment(
        hyperparameters={"sagemaker_distribution_instance_groups": ["gpus"]},
        input_data_config={},
        resource_config=resource_config,
    )

    assert env.env_vars["SM_CURRENT_HOST"] == "algo-3"
    assert env.env_vars["SM_HOSTS"] == '["algo-1","algo-2","algo-3"]'
    assert env.env_vars["SM_NETWORK_INTERFACE_NAME"] == "ethwe"
    assert env.env_vars["SM_CURRENT_INSTANCE_TYPE"] == "ml.p3.2xlarge"
    assert env.env_vars["SM_CURRENT_INSTANCE_GROUP"] == "gpus"
    assert env.env_vars["SM_CURRENT_INSTANCE_GROUP_HOSTS"] == '["algo-2","algo-3"]'
    assert env.env_vars["SM_INSTANCE_GROUPS"] == '["cpus","gpus"]'
    assert json.loads(env.env_vars["SM_INSTANCE_GROUPS_DICT"])["cpus"]["hosts"] == ["algo-1"]
    assert env.env_vars["SM_DISTRIBUTION_INSTANCE_GROUPS"] == '["gpus"]'
    assert env.env_vars["SM_IS_HETERO"] == "true"
    assert env.env_vars["SM_RESOURCE_CONFIG"] == json.dumps(
        resource_config, sort_keys=True, separators=(",", ":")
    )
    assert env.distribution_hosts == ["algo-2", "algo-3"]
    assert env.master_hostname == "algo-2"
    assert env.is_master is False


def test_host_facts_and_unset_values_are_encoded_as_the_toolkit_does() -> None:
    env = _build(num_gpus=2, num_cpus=8)

    assert env["SM_NUM_GPUS"] == "2"
    assert env["SM_NUM_CPUS"] == "8"
    assert env["SM_NUM_NEURONS"] == "0"
    assert env["SM_LOG_LEVEL"] == "20"
    assert env["SM_FRAMEWORK_MODULE"] == ""  # None → ""
    assert env["SAGEMAKER_JOB_NAME"] == ""


def test_the_program_environment_variable_wins_over_the_hyperparameter() -> None:
    env = _build(environ={"SAGEMAKER_PROGRAM": "from_image.py", "TRAINING_JOB_NAME": "j"})

    assert env["SM_USER_ENTRY_POINT"] == "from_image.py"
    assert env["SM_MODULE_NAME"] == "from_image"
    assert json.loads(env["SM_TRAINING_ENV"])["job_name"] == "j"


def test_training_env_holds_every_environment_property() -> None:
    training_env = json.loads(_build(num_cpus=4)["SM_TRAINING_ENV"])

    assert set(training_env) == {
        "additional_framework_parameters", "channel_input_dirs", "current_host",
        "current_instance_group", "current_instance_group_hosts", "current_instance_type",
        "distribution_hosts", "distribution_instance_groups", "framework_module", "hosts",
        "hyperparameters", "input_config_dir", "input_data_config", "input_dir",
        "instance_groups", "instance_groups_dict", "is_hetero", "is_master",
        "is_modelparallel_enabled", "job_name", "log_level", "master_hostname", "model_dir",
        "module_dir", "module_name", "network_interface_name", "num_cpus", "num_gpus",
        "num_neurons", "output_data_dir", "output_dir", "output_intermediate_dir",
        "resource_config", "user_entry_point",
    }  # fmt: skip
    assert training_env["hyperparameters"] == CONTRACT_HPS
    assert training_env["channel_input_dirs"] == {
        "train": "/opt/ml/input/data/train",
        "test": "/opt/ml/input/data/test",
    }
    assert training_env["num_cpus"] == 4
    assert training_env["is_master"] is True


def test_every_variable_of_the_contract_is_produced() -> None:
    env = _build()

    expected = {
        "SM_MODEL_DIR", "SM_INPUT_DIR", "SM_INPUT_CONFIG_DIR", "SM_OUTPUT_DIR",
        "SM_OUTPUT_DATA_DIR", "SM_OUTPUT_INTERMEDIATE_DIR", "SM_CHANNELS", "SM_HPS",
        "SM_USER_ARGS", "SM_FRAMEWORK_PARAMS", "SM_CURRENT_HOST", "SM_HOSTS",
        "SM_NETWORK_INTERFACE_NAME", "SM_CURRENT_INSTANCE_TYPE", "SM_CURRENT_INSTANCE_GROUP",
        "SM_CURRENT_INSTANCE_GROUP_HOSTS", "SM_INSTANCE_GROUPS", "SM_INSTANCE_GROUPS_DICT",
        "SM_DISTRIBUTION_INSTANCE_GROUPS", "SM_IS_HETERO", "SM_NUM_GPUS", "SM_NUM_CPUS",
        "SM_NUM_NEURONS", "SM_LOG_LEVEL", "SM_MODULE_NAME", "SM_USER_ENTRY_POINT",
        "SM_MODULE_DIR", "SM_FRAMEWORK_MODULE", "SM_RESOURCE_CONFIG", "SM_INPUT_DATA_CONFIG",
        "SM_TRAINING_ENV", "CURRENT_HOST", "SAGEMAKER_JOB_NAME", "SAGEMAKER_REGION", "PYTHONPATH",
    }  # fmt: skip
    assert expected <= set(env)
    assert "SM_TOPOLOGY" not in env


def test_topology_is_exported_only_when_the_resource_config_has_one() -> None:
    env = _build(resource_config={"current_host": "algo-1", "hosts": ["algo-1"], "topology": {}})

    assert env["SM_TOPOLOGY"] == "{}"


def test_sdk_encoded_values_are_decoded_and_raw_strings_are_kept() -> None:
    decoded = decode_hyperparameters(
        {
            "optimizer": '"adam"',  # SDK: json.dumps("adam")
            "lr": "0.1",
            "flag": "true",
            "layers": "[64, 32]",
            "raw": "adam",  # boto3 caller: unencoded
            "sentence": "not json at all",
            "empty": "",
        }
    )

    assert decoded == {
        "optimizer": "adam",
        "lr": 0.1,
        "flag": True,
        "layers": [64, 32],
        "raw": "adam",
        "sentence": "not json at all",
        "empty": "",
    }


def test_one_character_keys_become_short_options_and_none_an_empty_value() -> None:
    env = build_environment(
        hyperparameters={"k": 5, "nothing": None, "nested": {"b": [1, 2], "a": True}},
        input_data_config={},
        resource_config=None,
    )

    assert env.user_args == ["-k", "5", "--nested", "a=True,b=[1, 2]", "--nothing", ""]
    assert env.env_vars["SM_HP_NOTHING"] == ""
