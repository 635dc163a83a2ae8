"""The ``train`` console script: SageMaker script mode, as the training toolkit runs it.

Reads ``<base>/input/config/*.json``, stages the user's code in ``<base>/code``, exports the
``SM_*`` variables, installs requirements, runs the entry point with its hyperparameters as
command-line arguments, and reports the outcome the way the platform reads it: exit code plus
``<base>/output/failure`` or ``<base>/output/success``. ``<base>`` is ``/opt/ml`` or
``$SAGEMAKER_BASE_DIR``.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import traceback
from collections.abc import Mapping

from studiolo_toolkit.cluster import usable_cpus, wait_for_hosts
from studiolo_toolkit.distributed import (
    apply_distribution,
    distributed_env,
    torch_distributed_enabled,
)
from studiolo_toolkit.entry_point import Step, plan_entry_point
from studiolo_toolkit.environment import (
    DEFAULT_BASE_DIR,
    Paths,
    TrainingEnvironment,
    build_environment,
    detect_num_cpus,
    detect_num_gpus,
    read_config,
)
from studiolo_toolkit.errors import JobStoppedError, ToolkitError, UserError
from studiolo_toolkit.files import stage_code, write_failure_file, write_success_file
from studiolo_toolkit.process import SignalForwarder, run_streaming

logger = logging.getLogger("studiolo_toolkit")

SUCCESS_CODE = 0
FRAMEWORK_FAILURE_CODE = 1


def train(environ: Mapping[str, str] | None = None) -> int:
    """Run the training job described under the base dir; return the process exit code."""
    environ = dict(os.environ if environ is None else environ)
    paths = Paths.from_environ(environ)
    with SignalForwarder() as forwarder:
        return _run_job(paths, environ, forwarder)


def _run_job(paths: Paths, environ: dict[str, str], forwarder: SignalForwarder) -> int:
    try:
        env = _prepare(paths, environ)
        plan = plan_entry_point(
            paths.code_dir,
            env.user_entry_point,
            env.user_args,
            in_container=paths.base_dir == DEFAULT_BASE_DIR,
        )
        plan = apply_distribution(plan, env, usable_cpus())
        child_env = {**environ, **env.env_vars, "PYTHONUNBUFFERED": "1"}
        if len(env.hosts) > 1:
            if torch_distributed_enabled(env):
                # A peer's name resolves only once its container is up; the launcher's
                # rendezvous needs every peer's. (SageMaker's toolkits wait without a
                # distribution too, where a finished instance stays up. Here an instance's
                # name goes with its container: a script without a distribution that is done
                # quickly would leave a slower peer waiting for a name that never comes, so
                # such a script coordinates with its peers itself.)
                wait_for_hosts(env.hosts)
            child_env = {**distributed_env(env), **child_env}
        for step in [*plan.install, plan.run]:
            _run_step(step, paths, child_env, forwarder)
    except JobStoppedError as stopped:
        # The platform stops jobs on purpose; a stop is not a failure to explain.
        logger.warning("%s; exiting", stopped)
        return 128 + stopped.signum
    except UserError as error:
        _report_failure(paths, error.failure_message())
        return error.exit_code
    except ToolkitError as error:
        _report_failure(paths, f"Framework Error: {error}")
        return FRAMEWORK_FAILURE_CODE
    except Exception as error:
        # Anything unexpected is the toolkit's fault: say what it was first (FailureReason
        # keeps only 1024 characters), then the traceback for whoever reads the whole file.
        message = f"Framework Error: {type(error).__name__}: {error}\n{traceback.format_exc()}"
        _report_failure(paths, message)
        return FRAMEWORK_FAILURE_CODE
    logger.info("Reporting training SUCCESS")
    write_success_file(paths)
    return SUCCESS_CODE


def _prepare(paths: Paths, environ: Mapping[str, str]) -> TrainingEnvironment:
    config = read_config(paths)
    env = build_environment(
        hyperparameters=config.hyperparameters,
        input_data_config=config.input_data_config,
        resource_config=config.resource_config,
        paths=paths,
        num_gpus=detect_num_gpus(),
        num_cpus=detect_num_cpus(),
        environ=environ,
    )
    _set_log_level(env.log_level)
    logger.debug("Training environment: %s", env.env_vars["SM_TRAINING_ENV"])
    for directory in (paths.model_dir, paths.output_data_dir):
        os.makedirs(directory, exist_ok=True)
    stage_code(paths, env.submit_directory)
    return env


def _run_step(
    step: Step, paths: Paths, child_env: dict[str, str], forwarder: SignalForwarder
) -> None:
    if forwarder.pending is not None:
        raise JobStoppedError(forwarder.pending)
    command = shlex.join(step.command)
    logger.info("Invoking: %s", command)
    env = {**child_env, **{k: v for k, v in step.extra_env.items() if k not in child_env}}
    result = run_streaming(
        step.command,
        cwd=paths.code_dir,
        env=env,
        forwarder=forwarder,
        tee_stdout=step.tee_stdout,
    )
    if result.returncode != 0:
        raise step.error(
            command=command,
            exit_code=result.returncode,
            error_lines=result.tail,
            extra_info=_signal_note(forwarder.received),
        )


def _signal_note(received: list[int]) -> str | None:
    if not received:
        return None
    names = ", ".join(dict.fromkeys(signal.Signals(s).name for s in received))
    return f"the toolkit received and forwarded {names} to the process"


def _report_failure(paths: Paths, message: str) -> None:
    logger.error("Reporting training FAILURE\n%s", message)
    if not write_failure_file(paths, message):
        logger.info("Kept the existing %s (written by the user script)", paths.failure_file)


def _set_log_level(level: object) -> None:
    if isinstance(level, int) and not isinstance(level, bool):
        logger.setLevel(level)
    elif isinstance(level, str) and isinstance(logging.getLevelName(level.upper()), int):
        logger.setLevel(level.upper())


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s studiolo-toolkit %(levelname)s %(message)s")
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main() -> None:
    _configure_logging()
    raise SystemExit(train())


if __name__ == "__main__":
    main()
