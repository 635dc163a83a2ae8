"""How the user's entry point is installed and run (TTK ``_entry_point_type``, ``process``).

* name ends ``.sh`` → a command run by ``/bin/sh -c``;
* ``setup.py`` in the code dir → a Python package: ``pip install .``, then ``python -m <module>``;
* name ends ``.py`` → a Python program: ``pip install -r requirements.txt`` when present, then
  ``python <script>``;
* anything else → made executable and run as a command.
"""

from __future__ import annotations

import enum
import os
import shlex
import stat
import sys
import sysconfig
from dataclasses import dataclass, field

from studiolo_toolkit.errors import (
    ExecuteUserScriptError,
    InstallModuleError,
    InstallRequirementsError,
    ToolkitError,
    UserError,
)

REQUIREMENTS_FILE = "requirements.txt"


class EntryPointType(enum.Enum):
    PYTHON_PACKAGE = "PYTHON_PACKAGE"
    PYTHON_PROGRAM = "PYTHON_PROGRAM"
    COMMAND = "COMMAND"


def entry_point_type(code_dir: str, program: str) -> EntryPointType:
    if program.endswith(".sh"):
        return EntryPointType.COMMAND
    if os.path.isfile(os.path.join(code_dir, "setup.py")):
        return EntryPointType.PYTHON_PACKAGE
    if program.endswith(".py"):
        return EntryPointType.PYTHON_PROGRAM
    return EntryPointType.COMMAND


@dataclass(frozen=True)
class Step:
    """One process to run, and the error that reports its failure."""

    command: list[str]
    error: type[UserError]
    extra_env: dict[str, str] = field(default_factory=dict)
    tee_stdout: bool = False
    """Also keep stdout's tail for the failure message (pip); a script's stdout is untouched."""


@dataclass(frozen=True)
class EntryPointPlan:
    kind: EntryPointType
    run: Step
    install: list[Step] = field(default_factory=list)


# Training containers usually have no network: pip's self-update check would only add a
# timeout to every job that has a requirements.txt.
_PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
# Inside a training container the image's Python is the job's to change, as in SageMaker's own
# images; Debian's python3 is marked externally managed (PEP 668) and pip would refuse even an
# already-satisfied requirement. Outside a container (the process runtime, SAGEMAKER_BASE_DIR
# set) the interpreter is the host's, and its protection stays on.
_CONTAINER_PIP_ENV = {"PIP_BREAK_SYSTEM_PACKAGES": "1", "PIP_ROOT_USER_ACTION": "ignore"}
# Where requirements go when the image's own site-packages cannot be written (a read-only root
# file system, as the Studiolo runtime gives every container, or an unprivileged user): a user
# site under /tmp, the one writable place besides /opt/ml that any runtime gives. Every Python
# the job starts finds it through PYTHONUSERBASE (site.py puts it on sys.path).
READ_ONLY_USER_BASE = "/tmp/studiolo-python"  # noqa: S108 - the container's own /tmp


def site_packages_writable() -> bool:
    return os.access(sysconfig.get_paths()["purelib"], os.W_OK)


def _pip_install(python: str, *targets: str, user: bool = False) -> list[str]:
    return [python, "-m", "pip", "install", "--no-input", *(["--user"] if user else []), *targets]


def plan_entry_point(
    code_dir: str,
    program: str | None,
    user_args: list[str],
    *,
    python: str | None = None,
    in_container: bool = False,
    site_writable: bool | None = None,
) -> EntryPointPlan:
    """Decide what to install and what to run; checks the entry point exists, changes nothing.

    ``in_container``: the job runs in a training container (base dir ``/opt/ml``), so pip may
    install into the image's system Python, or, when its site-packages cannot be written
    (``site_writable``, checked when not given), into ``READ_ONLY_USER_BASE``.
    """
    if not program:
        raise ToolkitError(
            "no entry point: set the sagemaker_program hyperparameter "
            "(or the SAGEMAKER_PROGRAM environment variable) to the script to run"
        )
    python = python or sys.executable
    kind = entry_point_type(code_dir, program)
    has_requirements = os.path.isfile(os.path.join(code_dir, REQUIREMENTS_FILE))
    pip_env = {**_PIP_ENV, **(_CONTAINER_PIP_ENV if in_container else {})}
    if site_writable is None:
        site_writable = site_packages_writable()
    user_site = in_container and not site_writable
    run_env = {"PYTHONUSERBASE": READ_ONLY_USER_BASE} if user_site else {}
    pip_env.update(run_env)

    if kind is EntryPointType.PYTHON_PACKAGE:
        # The module may live inside the package, so there is no single file to check for.
        targets = [".", "-r", REQUIREMENTS_FILE] if has_requirements else ["."]
        module = program.removesuffix(".py")
        return EntryPointPlan(
            kind=kind,
            install=[
                Step(
                    _pip_install(python, *targets, user=user_site),
                    InstallModuleError,
                    pip_env,
                    tee_stdout=True,
                )
            ],
            run=Step([python, "-m", module, *user_args], ExecuteUserScriptError, run_env),
        )

    path = os.path.join(code_dir, program)
    if not os.path.isfile(path):
        raise ToolkitError(
            f"entry point {program!r} not found: {path} does not exist "
            f"(code directory {code_dir} holds: {_listing(code_dir)})"
        )

    if kind is EntryPointType.PYTHON_PROGRAM:
        install = (
            [
                Step(
                    _pip_install(python, "-r", REQUIREMENTS_FILE, user=user_site),
                    InstallRequirementsError,
                    pip_env,
                    tee_stdout=True,
                )
            ]
            if has_requirements
            else []
        )
        return EntryPointPlan(
            kind=kind,
            install=install,
            run=Step([python, program, *user_args], ExecuteUserScriptError, run_env),
        )

    # COMMAND. `exec` makes the shell replace itself with the program, so a forwarded
    # SIGTERM reaches the program and not a shell that would die and orphan it. Arguments
    # are quoted (SageMaker's toolkit joins them bare, which splits "[64, 32]" in two).
    executable = "./" + program
    if _make_executable(path) or not program.endswith(".sh"):
        invocation = [executable]
    else:
        invocation = ["/bin/sh", executable]  # a read-only .sh still runs through the shell
    script = "exec " + shlex.join([*invocation, *user_args])
    return EntryPointPlan(
        kind=kind, run=Step(["/bin/sh", "-c", script], ExecuteUserScriptError, run_env)
    )


def _make_executable(path: str) -> bool:
    """Add the execute bits (the code dir may be read-only); report whether it is executable."""
    if not os.access(path, os.X_OK):
        try:
            mode = os.stat(path).st_mode
            # Execute bits only, as SageMaker's toolkit does (it uses 0o777); nothing becomes
            # writable.
            os.chmod(path, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)  # noqa: S103
        except OSError:
            pass
    return os.access(path, os.X_OK)


def _listing(directory: str, limit: int = 20) -> str:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return "nothing (it does not exist)"
    if not names:
        return "nothing"
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} entries)" if len(names) > limit else "")
