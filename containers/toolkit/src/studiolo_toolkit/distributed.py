"""Script mode's ``distribution`` for PyTorch, as the SageMaker SDK asks for it.

* ``torch_distributed`` (hyperparameter ``sagemaker_torch_distributed_enabled`` true): the
  script is launched with ``torchrun`` on every host (TTK ``torch_distributed.py``):
  ``--nnodes N --nproc_per_node P`` and, with N > 1, ``--master_addr <first host>
  --master_port 7777 --node_rank <index of this host>``. P is the number of GPUs, or of the CPUs
  the container may use when it has none (one gloo process per core, as torchrun's own
  ``--nproc_per_node cpu`` does on CPU-only hosts);
* no distribution: the script runs once per host and finds its peers in ``SM_HOSTS`` and
  ``SM_CURRENT_HOST``; ``MASTER_ADDR``/``MASTER_PORT`` point at the first host, as SageMaker's
  PyTorch container sets them, so ``init_process_group("gloo", init_method="env://")`` works.
"""

from __future__ import annotations

import sys

from studiolo_toolkit.entry_point import EntryPointPlan, EntryPointType, Step
from studiolo_toolkit.environment import TrainingEnvironment
from studiolo_toolkit.errors import ExecuteUserScriptError, ToolkitError

TORCH_DISTRIBUTED_FLAG = "sagemaker_torch_distributed_enabled"
# TTK's torch_distributed MASTER_PORT, also what SageMaker's PyTorch container exports.
MASTER_PORT = 7777


def _enabled(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def torch_distributed_enabled(env: TrainingEnvironment) -> bool:
    return _enabled(env.additional_framework_parameters.get(TORCH_DISTRIBUTED_FLAG))


def processes_per_host(env: TrainingEnvironment, cpus: int) -> int:
    return env.num_gpus if env.num_gpus > 0 else max(cpus, 1)


def torchrun_command(
    env: TrainingEnvironment, program: str, args: list[str], nproc: int, python: str | None = None
) -> list[str]:
    hosts = env.hosts
    command = [python or sys.executable, "-m", "torch.distributed.run"]
    command += ["--nnodes", str(len(hosts)), "--nproc_per_node", str(nproc)]
    # torchrun's default "--redirects 0 --tee 0" crashes torch 1.13 (Debian bookworm's) on
    # Python 3.11, whose Flag enums no longer find the zero member: Std.from_str("0") is None.
    # Teeing stderr (a single flag, which parses) is harmless on every version: stdout stays
    # the worker's own, stderr is also copied to a log under /tmp and shown prefixed by rank.
    command += ["--redirects", "2", "--tee", "2"]
    if len(hosts) > 1:
        command += [
            "--master_addr",
            env.master_hostname,
            "--master_port",
            str(MASTER_PORT),
            "--node_rank",
            str(hosts.index(env.current_host)),
        ]
    return [*command, program, *args]


def distributed_env(env: TrainingEnvironment) -> dict[str, str]:
    """What every host's process is told about the rendezvous, distribution or not."""
    return {
        "MASTER_ADDR": env.master_hostname,
        "MASTER_PORT": str(MASTER_PORT),
        # gloo and NCCL pick the interface the platform names (eth0 on the job's network).
        "GLOO_SOCKET_IFNAME": env.network_interface_name,
        "NCCL_SOCKET_IFNAME": env.network_interface_name,
    }


def apply_distribution(plan: EntryPointPlan, env: TrainingEnvironment, cpus: int) -> EntryPointPlan:
    """The plan, with its run step launched by torchrun when torch_distributed is on."""
    if not torch_distributed_enabled(env):
        return plan
    if plan.kind is not EntryPointType.PYTHON_PROGRAM:
        raise ToolkitError(
            f"torch_distributed runs a Python script; the entry point "
            f"{env.user_entry_point!r} is a {plan.kind.value.lower().replace('_', ' ')}"
        )
    program = str(env.user_entry_point)
    run = Step(
        torchrun_command(env, program, env.user_args, processes_per_host(env, cpus)),
        ExecuteUserScriptError,
        plan.run.extra_env,
    )
    return EntryPointPlan(kind=plan.kind, install=plan.install, run=run)
