"""The training environment: ``/opt/ml`` paths, config files, and every ``SM_*`` variable.

``build_environment`` is a pure function of the config files' contents, the host facts
(GPU/CPU counts) and the process environment, so the whole of contract section 1.5 can be
tested without running anything. ``read_config`` and the ``detect_*`` helpers do the I/O.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from studiolo_toolkit.mapping import (
    decode_hyperparameters,
    split_hyperparameters,
    to_cmd_args,
    to_env_value,
    to_env_vars,
)

DEFAULT_BASE_DIR = "/opt/ml"
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
PROGRAM_ENV = "SAGEMAKER_PROGRAM"
FRAMEWORK_MODULE_ENV = "SAGEMAKER_TRAINING_MODULE"

DEFAULT_HOST = "algo-1"
DEFAULT_INSTANCE_GROUP = "homogeneousCluster"
DEFAULT_INSTANCE_TYPE = "local"
DEFAULT_NETWORK_INTERFACE = "eth0"

# Framework parameters that turn on distributed training; with any of them on, the current
# instance group is a distribution group (TTK
# ``get_distribution_instance_groups_from_resource_config``).
_DISTRIBUTION_FLAGS = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
)


@dataclass(frozen=True)
class Paths:
    """The ``/opt/ml`` tree, rooted wherever ``SAGEMAKER_BASE_DIR`` says."""

    base_dir: str = DEFAULT_BASE_DIR

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Paths:
        return cls(environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR)

    def _join(self, *parts: str) -> str:
        return os.path.join(self.base_dir, *parts)

    @property
    def code_dir(self) -> str:
        return self._join("code")

    @property
    def model_dir(self) -> str:
        return self._join("model")

    @property
    def input_dir(self) -> str:
        return self._join("input")

    @property
    def input_config_dir(self) -> str:
        return self._join("input", "config")

    @property
    def input_data_dir(self) -> str:
        return self._join("input", "data")

    @property
    def output_dir(self) -> str:
        return self._join("output")

    @property
    def output_data_dir(self) -> str:
        return self._join("output", "data")

    @property
    def output_intermediate_dir(self) -> str:
        return self._join("output", "intermediate")

    @property
    def failure_file(self) -> str:
        return self._join("output", "failure")

    @property
    def success_file(self) -> str:
        return self._join("output", "success")

    def channel_dir(self, channel: str) -> str:
        return os.path.join(self.input_data_dir, channel)

    def relocate(self, path: str) -> str:
        """Map an absolute ``/opt/ml/...`` path into a relocated base.

        The SDK writes container paths into hyperparameters (with network isolation
        ``sagemaker_submit_directory`` is ``/opt/ml/input/data/code/sourcedir.tar.gz``); under
        the process runtime they live below ``SAGEMAKER_BASE_DIR`` instead.
        """
        prefix = DEFAULT_BASE_DIR + "/"
        if self.base_dir != DEFAULT_BASE_DIR and path.startswith(prefix):
            return self._join(path[len(prefix) :])
        return path


@dataclass(frozen=True)
class TrainingConfig:
    """The three config files, as the platform wrote them (hyperparameters decoded)."""

    hyperparameters: dict[str, object]
    input_data_config: dict[str, Any]
    resource_config: dict[str, Any] | None


def default_resource_config() -> dict[str, Any]:
    """What a single local host looks like when the platform wrote no resourceconfig.json."""
    return {
        "current_host": DEFAULT_HOST,
        "hosts": [DEFAULT_HOST],
        "network_interface_name": DEFAULT_NETWORK_INTERFACE,
        "current_instance_type": DEFAULT_INSTANCE_TYPE,
        "current_group_name": DEFAULT_INSTANCE_GROUP,
        "instance_groups": [
            {
                "instance_group_name": DEFAULT_INSTANCE_GROUP,
                "instance_type": DEFAULT_INSTANCE_TYPE,
                "hosts": [DEFAULT_HOST],
            }
        ],
    }


def _read_json_object(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


def read_config(paths: Paths) -> TrainingConfig:
    config_dir = paths.input_config_dir
    hyperparameters = _read_json_object(os.path.join(config_dir, "hyperparameters.json")) or {}
    input_data_config = _read_json_object(os.path.join(config_dir, "inputdataconfig.json")) or {}
    resource_config = _read_json_object(os.path.join(config_dir, "resourceconfig.json"))
    return TrainingConfig(
        hyperparameters=decode_hyperparameters(hyperparameters),
        input_data_config=input_data_config,
        resource_config=resource_config,
    )


def detect_num_gpus() -> int:
    """Count ``GPU `` lines of ``nvidia-smi --list-gpus``; 0 when there is no nvidia-smi."""
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return 0
    try:
        # Fixed argv, no shell: the binary path comes from PATH lookup above.
        output = subprocess.run(  # noqa: S603
            [nvidia_smi, "--list-gpus"], capture_output=True, check=True, timeout=30
        ).stdout.decode("utf-8", errors="replace")
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in output.splitlines() if line.startswith("GPU "))


def detect_num_cpus() -> int:
    # Host CPU count, ignoring cgroup limits, as SageMaker's toolkit reports it.
    return os.cpu_count() or 1


@dataclass(frozen=True)
class TrainingEnvironment:
    """A read-only snapshot of everything the user process is told about its job."""

    paths: Paths
    hyperparameters: dict[str, object]
    additional_framework_parameters: dict[str, object]
    reserved_hyperparameters: dict[str, object]
    resource_config: dict[str, Any]
    input_data_config: dict[str, Any]
    channel_input_dirs: dict[str, str]
    current_host: str
    hosts: list[str]
    network_interface_name: str
    current_instance_type: str
    current_instance_group: str
    current_instance_group_hosts: list[str]
    instance_groups: list[str]
    instance_groups_dict: dict[str, Any]
    distribution_instance_groups: list[str]
    distribution_hosts: list[str]
    is_hetero: bool
    master_hostname: str
    is_master: bool
    is_modelparallel_enabled: bool
    job_name: str | None
    log_level: object
    framework_module: str | None
    module_dir: str
    module_name: str | None
    user_entry_point: str | None
    num_cpus: int
    num_gpus: int
    num_neurons: int
    region: str
    sagemaker_job_name: str
    user_args: list[str] = field(default_factory=list)
    env_vars: dict[str, str] = field(default_factory=dict)

    @property
    def submit_directory(self) -> str | None:
        value = self.reserved_hyperparameters.get("sagemaker_submit_directory")
        return None if value is None else str(value)

    def training_env(self) -> dict[str, object]:
        """The ``SM_TRAINING_ENV`` document: every property of TTK's ``Environment``."""
        return {
            "additional_framework_parameters": self.additional_framework_parameters,
            "channel_input_dirs": self.channel_input_dirs,
            "current_host": self.current_host,
            "current_instance_group": self.current_instance_group,
            "current_instance_group_hosts": self.current_instance_group_hosts,
            "current_instance_type": self.current_instance_type,
            "distribution_hosts": self.distribution_hosts,
            "distribution_instance_groups": self.distribution_instance_groups,
            "framework_module": self.framework_module,
            "hosts": self.hosts,
            "hyperparameters": self.hyperparameters,
            "input_config_dir": self.paths.input_config_dir,
            "input_data_config": self.input_data_config,
            "input_dir": self.paths.input_dir,
            "instance_groups": self.instance_groups,
            "instance_groups_dict": self.instance_groups_dict,
            "is_hetero": self.is_hetero,
            "is_master": self.is_master,
            "is_modelparallel_enabled": self.is_modelparallel_enabled,
            "job_name": self.job_name,
            "log_level": self.log_level,
            "master_hostname": self.master_hostname,
            "model_dir": self.paths.model_dir,
            "module_dir": self.module_dir,
            "module_name": self.module_name,
            "network_interface_name": self.network_interface_name,
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "num_neurons": self.num_neurons,
            "output_data_dir": self.paths.output_data_dir,
            "output_dir": self.paths.output_dir,
            "output_intermediate_dir": self.paths.output_intermediate_dir,
            "resource_config": self.resource_config,
            "user_entry_point": self.user_entry_point,
        }


def _module_name(program: str | None) -> str | None:
    if program and program.endswith(".py"):
        return program[: -len(".py")]
    return program


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _sm_env_vars(env: TrainingEnvironment) -> dict[str, str]:
    """TTK ``Environment.to_env_vars``: the ``SM_*`` variables (contract 1.5)."""
    paths = env.paths
    values: dict[str, object] = {
        "hosts": env.hosts,
        "network_interface_name": env.network_interface_name,
        "hps": env.hyperparameters,
        "user_entry_point": env.user_entry_point,
        "framework_params": env.additional_framework_parameters,
        "resource_config": env.resource_config,
        "input_data_config": env.input_data_config,
        "output_data_dir": paths.output_data_dir,
        "channels": sorted(env.channel_input_dirs),
        "current_host": env.current_host,
        "current_instance_type": env.current_instance_type,
        "current_instance_group": env.current_instance_group,
        "current_instance_group_hosts": env.current_instance_group_hosts,
        "instance_groups": env.instance_groups,
        "instance_groups_dict": env.instance_groups_dict,
        "distribution_instance_groups": env.distribution_instance_groups,
        "is_hetero": env.is_hetero,
        "module_name": env.module_name,
        "log_level": env.log_level,
        "framework_module": env.framework_module,
        "input_dir": paths.input_dir,
        "input_config_dir": paths.input_config_dir,
        "output_dir": paths.output_dir,
        "num_cpus": env.num_cpus,
        "num_gpus": env.num_gpus,
        "num_neurons": env.num_neurons,
        "model_dir": paths.model_dir,
        "module_dir": env.module_dir,
        "training_env": env.training_env(),
        "user_args": env.user_args,
        "output_intermediate_dir": paths.output_intermediate_dir,
    }
    if "topology" in env.resource_config:
        values["topology"] = env.resource_config["topology"]
    for name, path in env.channel_input_dirs.items():
        values[f"channel_{name}"] = path
    for key, value in env.hyperparameters.items():
        values[f"hp_{key}"] = value
    return to_env_vars(values)


def _python_path(code_dir: str, environ: Mapping[str, str]) -> str:
    # SageMaker's toolkit exports its own whole sys.path; the code dir in front of any
    # PYTHONPATH the image set is what scripts rely on, and leaving the interpreter's own
    # paths out keeps a different python (called from a .sh entry point) from loading them.
    entries = [code_dir, *(p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return os.pathsep.join(dict.fromkeys(entries))


def build_environment(
    *,
    hyperparameters: Mapping[str, object],
    input_data_config: Mapping[str, Any],
    resource_config: Mapping[str, Any] | None,
    paths: Paths | None = None,
    num_gpus: int = 0,
    num_cpus: int = 1,
    num_neurons: int = 0,
    environ: Mapping[str, str] | None = None,
) -> TrainingEnvironment:
    """Compute the training environment from already-read inputs; no I/O.

    ``hyperparameters`` are the decoded values (see ``decode_hyperparameters``);
    ``resource_config`` ``None`` means the file was absent (one local host ``algo-1``).
    ``environ`` is the toolkit's own process environment (``SAGEMAKER_PROGRAM``,
    ``SAGEMAKER_TRAINING_MODULE``, ``TRAINING_JOB_NAME``, ``AWS_REGION``, ``PYTHONPATH``).
    """
    paths = paths or Paths()
    environ = environ or {}
    resources: dict[str, Any] = (
        dict(resource_config) if resource_config is not None else default_resource_config()
    )
    split = split_hyperparameters(hyperparameters)
    reserved = split.reserved
    framework = split.framework

    current_host = str(resources.get("current_host", DEFAULT_HOST))
    hosts = [str(h) for h in resources.get("hosts", [current_host])]
    current_group = str(
        resources.get("current_group_name")
        or resources.get("current_instance_group")
        or DEFAULT_INSTANCE_GROUP
    )
    group_configs: list[dict[str, Any]] = list(resources.get("instance_groups") or [])
    instance_groups = [str(g["instance_group_name"]) for g in group_configs]
    instance_groups_dict = {str(g["instance_group_name"]): g for g in group_configs}
    current_group_hosts = next(
        (
            [str(h) for h in g.get("hosts", [])]
            for g in group_configs
            if g["instance_group_name"] == current_group
        ),
        [],
    )

    distribution_groups_param = framework.get("sagemaker_distribution_instance_groups")
    if isinstance(distribution_groups_param, list):
        distribution_groups = [str(g) for g in distribution_groups_param]
    else:
        enabled = any(framework.get(flag) for flag in _DISTRIBUTION_FLAGS)
        distribution_groups = [current_group] if enabled else []
    if group_configs:
        distribution_hosts = [
            str(h)
            for g in group_configs
            if g["instance_group_name"] in distribution_groups
            for h in g.get("hosts", [])
        ]
    else:
        distribution_hosts = list(hosts)
    master_hostname = (distribution_hosts or hosts or [current_host])[0]

    program = environ.get(PROGRAM_ENV) or _optional_str(reserved.get("sagemaker_program"))
    submit_directory = reserved.get("sagemaker_submit_directory")
    module_dir = str(submit_directory) if submit_directory is not None else paths.code_dir
    mp_parameters = environ.get("SM_HP_MP_PARAMETERS")
    region = reserved.get("sagemaker_region") or (
        environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or ""
    )

    env = TrainingEnvironment(
        paths=paths,
        hyperparameters=dict(split.user),
        additional_framework_parameters=dict(framework),
        reserved_hyperparameters=dict(reserved),
        resource_config=resources,
        input_data_config=dict(input_data_config),
        channel_input_dirs={name: paths.channel_dir(name) for name in input_data_config},
        current_host=current_host,
        hosts=hosts,
        network_interface_name=str(
            resources.get("network_interface_name", DEFAULT_NETWORK_INTERFACE)
        ),
        current_instance_type=str(resources.get("current_instance_type", DEFAULT_INSTANCE_TYPE)),
        current_instance_group=current_group,
        current_instance_group_hosts=current_group_hosts,
        instance_groups=instance_groups,
        instance_groups_dict=instance_groups_dict,
        distribution_instance_groups=distribution_groups,
        distribution_hosts=distribution_hosts,
        is_hetero=len(instance_groups) > 1,
        master_hostname=master_hostname,
        is_master=current_host == master_hostname,
        is_modelparallel_enabled=bool(mp_parameters and mp_parameters != "{}"),
        job_name=environ.get("TRAINING_JOB_NAME"),
        log_level=reserved.get("sagemaker_container_log_level", logging.INFO),
        framework_module=environ.get(FRAMEWORK_MODULE_ENV),
        module_dir=module_dir,
        module_name=_module_name(program),
        user_entry_point=program,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        num_neurons=num_neurons,
        region=to_env_value(region),
        sagemaker_job_name=to_env_value(reserved.get("sagemaker_job_name", "")),
        user_args=to_cmd_args(split.user),
    )
    env_vars = _sm_env_vars(env)
    env_vars.update(
        {
            "CURRENT_HOST": env.current_host,
            "SAGEMAKER_JOB_NAME": env.sagemaker_job_name,
            "SAGEMAKER_REGION": env.region,
            "PYTHONPATH": _python_path(paths.code_dir, environ),
        }
    )
    return dataclasses.replace(env, env_vars=env_vars)
